"""amqtt's per-message PUBACK timeout logs fold into one counted warning a period."""

from __future__ import annotations

import logging

import pytest

from app.broker import PubackTimeouts


def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    """A log record as amqtt makes one: `msg`, with `exc` as its exception if given."""
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("amqtt", logging.WARNING, __file__, 1, msg, None, exc_info)


def test_the_first_timeout_passes_as_a_summary_and_the_rest_are_counted_until_the_period_ends() -> (
    None
):
    now = [100.0]
    folded = PubackTimeouts(every_s=60.0, clock=lambda: now[0])
    first = record("Timeout waiting for PUBACK for packet ID 7")
    assert folded.filter(first)
    assert first.getMessage().startswith("amqtt stopped waiting")
    assert "for 1 PUBACK(s) and then got 0 late (1 and 0 in all)" in first.getMessage()
    for packet in range(8, 12):
        now[0] += 10.0
        assert not folded.filter(record(f"Timeout waiting for PUBACK for packet ID {packet}"))
        # The subscriber's PUBACK, come after amqtt gave up: counted, not logged.
        assert not folded.filter(
            record(f"Received PUBACK for unknown pending message Id: '{packet - 1}'")
        )
    now[0] = 160.0  # a minute after the first summary: the next one reports what it held
    later = record("Timeout waiting for PUBACK for packet ID 12")
    assert folded.filter(later)
    assert "for 5 PUBACK(s) and then got 4 late (6 and 4 in all)" in later.getMessage()
    assert (folded.total, folded.late) == (6, 4)


def test_the_traceback_of_a_timeout_is_dropped_and_other_records_pass_unchanged() -> None:
    folded = PubackTimeouts()
    timeout = TimeoutError("Timeout waiting for PUBACK for packet ID 3")
    assert not folded.filter(record("Task failed and will be skipped: <Task>", timeout))
    other_failure = record("Task failed and will be skipped: <Task>", TimeoutError("connect"))
    assert folded.filter(other_failure)
    plain = record("Client disconnected")
    assert folded.filter(plain)
    assert plain.getMessage() == "Client disconnected"
    assert other_failure.getMessage() == "Task failed and will be skipped: <Task>"
    assert folded.total == 0


def test_a_burst_then_silence_is_reported_in_full_when_flushed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    folded = PubackTimeouts(every_s=60.0, clock=lambda: 5.0)
    for packet in range(1, 1_558):
        folded.filter(record(f"Timeout waiting for PUBACK for packet ID {packet}"))
    with caplog.at_level(logging.WARNING, logger="app.broker"):
        folded.flush()
        folded.flush()  # nothing more to say
    said = [r.getMessage() for r in caplog.records if r.name == "app.broker"]
    assert len(said) == 1
    assert "for 1556 PUBACK(s) and then got 0 late (1557 and 0 in all)" in said[0]
