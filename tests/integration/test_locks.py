"""Meter locks: every writer of a meter's intervals holds its row until it commits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select

from app.db import models
from app.db.locks import hold_meters
from tests.factories import fleet_sessions


def test_a_second_writer_waits_for_the_first_to_commit(database_url: str) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, 3, 1)
    ids = [m.id for m in fleet]
    order: list[str] = []
    holding = threading.Event()

    def second() -> None:
        holding.wait()
        with sessions.begin() as session:
            hold_meters(session, [ids[1]])
            order.append("second")

    other = threading.Thread(target=second)
    other.start()
    with sessions.begin() as session:
        hold_meters(session, reversed(ids))  # any order given: taken in id order
        holding.set()
        other.join(timeout=1.5)  # it cannot get in while this holds the meter
        order.append("first")
    other.join(timeout=60)
    assert order == ["first", "second"]
    engine.dispose()


def test_a_batch_naming_more_meters_than_a_statement_has_parameters_for(
    database_url: str,
) -> None:
    """A batch of single readings names up to 40,000 meters; unknown ids lock nothing."""
    engine, sessions, fleet = fleet_sessions(database_url, 2, 1)
    ids = [m.id for m in fleet] + [f"x-{k:06d}" for k in range(70_000)]
    with sessions.begin() as session:
        # One statement of 70,002 parameters was refused on PostgreSQL (at most 65,535).
        hold_meters(session, ids)
        assert session.scalars(select(models.Meter.id)).all()
    engine.dispose()


def test_rows_referring_to_a_held_meter_can_still_be_inserted(empty_postgres_url: str) -> None:
    """FOR UPDATE blocked them: a demo reset inserting acknowledgements for a meter a batch
    held, while the batch waited on the commands the reset had deleted, was a deadlock."""
    engine, sessions, fleet = fleet_sessions(empty_postgres_url, 1, 1)
    meter_id = fleet[0].id
    done = threading.Event()

    def refer() -> None:
        now = datetime.now(UTC)
        with sessions.begin() as session:
            session.add(
                models.Event(
                    meter_id=meter_id,
                    event_id="e-1",
                    type="tamper",
                    severity="critical",
                    at=now,
                    details={},
                    received_at=now,
                )
            )
        done.set()

    other = threading.Thread(target=refer)
    with sessions.begin() as session:
        hold_meters(session, [meter_id])
        other.start()
        # While the meter is held: an insert waiting for this commit would never set it.
        assert done.wait(timeout=30)
    other.join(timeout=60)
    engine.dispose()
