"""Live simulator control messages: decoding, limits and presets (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulator.control import (
    ControlError,
    encode_incident,
    encode_speed,
    parse_control,
    preset,
)


def test_speed_round_trip_and_limits() -> None:
    assert parse_control(encode_speed(3600)).speed == 3600.0
    for bad in (b'{"action": "speed", "speed": 0}', b'{"action": "speed", "speed": true}',
                b'{"action": "speed", "speed": 1e9}', b'{"action": "speed"}'):  # fmt: skip
        with pytest.raises(ControlError, match="speed"):
            parse_control(bad)


def test_incident_presets_start_now_with_the_region_filled_in() -> None:
    request = parse_control(encode_incident(preset("storm", "Midwest")))
    assert request.incident is not None
    assert request.incident.kind == "outage"
    assert request.incident.at == timedelta(0)
    assert request.incident.duration == timedelta(hours=3)
    assert request.incident.select["region"] == "Midwest"
    heat = parse_control(encode_incident(preset("heat_wave", "Northeast"))).incident
    assert heat is not None
    assert (heat.region, heat.delta_c) == ("Northeast", 7.0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"nope", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"action": "explode"}', "action"),
        (b'{"action": "incident", "incident": 5}', "incident must be an object"),
        (b'{"action": "incident", "incident": {"kind": "meteor"}}', "kind"),
        (b'{"action": "incident", "incident": {"kind": "heat_wave", "region": "Mars"}}', "region"),
    ],
)
def test_bad_control_messages_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ControlError, match=reason):
        parse_control(payload)


def test_presets_need_their_region() -> None:
    with pytest.raises(ControlError, match="region"):
        preset("storm")
    with pytest.raises(ControlError, match="unknown incident"):
        preset("volcano", "Midwest")
