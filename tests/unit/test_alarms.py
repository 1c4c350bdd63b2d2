"""Alarm rules: power factor, stable keys and who may acknowledge (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain import alarms
from app.domain.access import Role


def test_power_factor_by_hand() -> None:
    assert alarms.power_factor(3.0, 4.0) == pytest.approx(0.6)
    assert alarms.power_factor(10.0, 0.0) == 1.0
    assert alarms.power_factor(0.0, 0.0) is None


def test_keys_round_trip_through_parse() -> None:
    at = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
    assert alarms.parse_key(alarms.event_key(42)) == ("event", "42")
    assert alarms.parse_key(alarms.comms_key("glpl-m0001", at)) == ("comms", "glpl-m0001")
    assert alarms.low_pf_key("m:1", at) == "lowpf:m:1:20260302"
    assert alarms.parse_key("lowpf:m:1:20260302") == ("lowpf", "m:1")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "event",
        "event:",
        "event:abc",
        "event:\u00b2",  # a digit to str.isdigit that int() refuses
        "event:0",
        "event:2147483648",  # past the events.id INTEGER column (a 500 on PostgreSQL)
        "nope:1",
        "comms:m1",
        "comms::123",
        "lowpf:m1:x",
        "lowpf:m1:\u00b3",
    ],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not an alarm key"):
        alarms.parse_key(key)


@pytest.mark.parametrize("role", list(Role))
def test_only_operators_acknowledge(role: Role) -> None:
    assert alarms.may_acknowledge(role) is (role != Role.DISTRIBUTOR_REP)


def test_every_event_alarm_kind_has_a_label() -> None:
    assert set(alarms.EVENT_ALARMS.values()) <= set(alarms.KIND_LABELS)


def test_a_low_power_factor_acknowledgement_carries_for_a_week_of_the_meters_days() -> None:
    from app.domain.alarms import carries_ack, low_pf_day

    assert low_pf_day("lowpf:glpl-00001:20261203") is not None
    assert low_pf_day("lowpf:glpl-00001:2026120x") is None
    assert low_pf_day("comms:glpl-00001:1700000000") is None
    assert carries_ack("lowpf:m-1:20261210", "lowpf:m-1:20261203")  # 7 days on
    assert not carries_ack("lowpf:m-1:20261211", "lowpf:m-1:20261203")  # 8 days on
    assert not carries_ack("lowpf:m-1:20261202", "lowpf:m-1:20261203")  # before it
    assert not carries_ack("lowpf:m-2:20261204", "lowpf:m-1:20261203")  # another meter
    assert not carries_ack("lowpf:m-1:20261204", "comms:m-1:1700000000")
