"""Which dead letters may be replayed: a cause outside the message, a timeless kind, possible then."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.db import models
from app.domain import telemetry, vee
from app.ingest.replay import mendable, refusal
from tests.factories import T0, make_reading

PREFIX = telemetry.DEFAULT_PREFIX
LIMITS = vee.Plausibility()


def letter(kind: str, payload: bytes, reason: str, received_at: datetime = T0) -> models.DeadLetter:
    """A dead letter for meter glpl-1 on a `kind` topic."""
    return models.DeadLetter(
        topic=f"{PREFIX}/glpl/glpl-1/{kind}",
        payload=payload,
        reason=reason,
        received_at=received_at,
    )


def interval(*starts: datetime) -> bytes:
    """An interval message of glpl-1 with readings at `starts`."""
    message = telemetry.IntervalMessage("glpl-1", tuple(make_reading(s) for s in starts))
    return telemetry.encode_interval(message)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("unknown meter 'glpl-1'", True),
        ("meter 'glpl-1' belongs to utility 'atlantic', not 'glpl'", True),
        ("ingest error RuntimeError: boom", True),
        ("not valid JSON: expecting value", False),
        ("readings[0]: impossible value: demand_kw 1e+06 exceeds 100000", False),
        ("meter_id 'x' does not match the topic", False),
    ],
)
def test_only_causes_outside_the_message_are_mendable(reason: str, expected: bool) -> None:
    assert mendable(reason) is expected


def test_an_unknown_meters_intervals_may_be_replayed() -> None:
    assert (
        refusal(letter("interval", interval(T0), "unknown meter 'glpl-1'"), PREFIX, LIMITS) is None
    )


def test_an_event_may_be_replayed() -> None:
    event = telemetry.EventMessage("glpl-1", "ev-1", "tamper", T0, "critical")
    found = letter("event", telemetry.encode_event(event), "unknown meter 'glpl-1'")
    assert refusal(found, PREFIX, LIMITS) is None


def test_a_status_is_not_replayed_over_a_newer_state() -> None:
    status = telemetry.StatusMessage("glpl-1", "offline", T0)
    found = letter("status", telemetry.encode_status(status), "unknown meter 'glpl-1'")
    assert "overwrite" in (refusal(found, PREFIX, LIMITS) or "")


def test_a_reading_from_the_future_when_received_stays_refused() -> None:
    """Two hours ahead of its receipt: replayed a day later it would pass the ingest's check."""
    ahead = T0 + timedelta(hours=2)
    found = letter("interval", interval(ahead), "unknown meter 'glpl-1'", received_at=T0)
    assert (refusal(found, PREFIX, LIMITS) or "").startswith("impossible when it was received")
    later = letter("interval", interval(ahead), "unknown meter 'glpl-1'", received_at=ahead)
    assert refusal(later, PREFIX, LIMITS) is None


@pytest.mark.parametrize(
    ("topic_prefix", "payload"),
    [("other/v1", interval(T0)), (PREFIX, b"not json")],
)
def test_a_letter_that_no_longer_decodes_is_refused(topic_prefix: str, payload: bytes) -> None:
    found = letter("interval", payload, "ingest error RuntimeError: boom")
    assert "does not decode" in (refusal(found, topic_prefix, LIMITS) or "")


def test_a_payload_refused_for_itself_is_refused_again() -> None:
    found = letter("interval", b"{}", "missing field 'readings'")
    assert "refused again" in (refusal(found, PREFIX, LIMITS) or "")
