"""A message that trips the write path becomes a dead letter, however badly its error behaves."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain import telemetry
from app.ingest.store import Accepted, Rejected
from app.ingest.worker import _failed
from tests.factories import T0, make_reading


class Unprintable(Exception):
    """An error whose own message fails, as SQLAlchemy's did around a 1,000-deep value."""

    def __str__(self) -> str:
        raise RecursionError("maximum recursion depth exceeded")


def test_an_error_that_cannot_describe_itself_still_makes_a_dead_letter() -> None:
    item = Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, "u-1", "m-1", "interval"),
        telemetry.IntervalMessage("m-1", (make_reading(T0),)),
        b'{"raw": true}',
        datetime(2026, 3, 2, tzinfo=UTC),
        mid=7,
        connection=1,
    )
    letter = _failed(item, Unprintable())
    assert isinstance(letter, Rejected)
    assert letter.reason == "ingest error Unprintable: (its message could not be formatted)"
    assert (letter.payload, letter.mid, letter.connection) == (b'{"raw": true}', 7, 1)
    assert letter.topic == "wattline/v1/u-1/m-1/interval"
