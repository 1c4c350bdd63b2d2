"""The store's edges: impossible registers and reactive energy, unknown meters, repeated events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.db import models
from app.domain import telemetry
from app.ingest.store import Accepted, MeterDirectory, write_batch
from tests.factories import T0, fleet_sessions, interval_batch, make_reading

NOW = T0 + timedelta(days=1)


def test_an_impossible_register_time_or_reactive_energy_dead_letters_the_message(
    database_url: str,
) -> None:
    # A register read in year 9999 also broke PostgreSQL: its month's partition (and the
    # next month's bound) cannot be made, so the whole batch failed and was halved.
    engine, sessions, fleet = fleet_sessions(database_url, meters=3, seed=7)
    good, far, reactive = interval_batch(fleet, T0, 4, register=True)
    far_register = telemetry.Register(datetime(9999, 12, 31, 23, tzinfo=UTC), 1000.0, 400.0)
    far = far._replace(message=replace(far.message, register=far_register))
    huge = make_reading(T0, kvarh=1.7e308)
    reactive = reactive._replace(
        message=telemetry.IntervalMessage(reactive.topic.meter_id, (huge,))
    )
    with sessions.begin() as session:
        result = write_batch(session, [good, far, reactive], MeterDirectory())
    assert result.dead_letters == 2
    with sessions() as session:
        reasons = sorted(session.scalars(select(models.DeadLetter.reason)))
        stored = session.scalar(select(func.count()).select_from(models.Reading))
        registers = session.scalar(select(func.count()).select_from(models.RegisterRead))
    assert "register.at 9999-12-31T23:00:00+00:00 is outside" in reasons[0]
    assert "kvarh 1.7e+308 exceeds 25000 in 15 minutes" in reasons[1]
    assert (stored, registers) == (4, 1)
    engine.dispose()


def test_an_unknown_meter_is_looked_up_by_its_id_not_by_reloading_the_fleet(
    database_url: str,
) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, meters=3, seed=7)
    directory = MeterDirectory()
    known, stranger = interval_batch([fleet[0], fleet[1]], T0, 2)
    stranger = stranger._replace(
        topic=replace(stranger.topic, meter_id="NOT-A-METER"),
        message=replace(stranger.message, meter_id="NOT-A-METER"),
    )
    for _ in range(2):
        with sessions.begin() as session:
            write_batch(session, [known, stranger], directory)
    assert fleet[0].id in directory
    assert fleet[2].id not in directory  # a reload would have loaded every meter
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.Reading)) == 2
        reasons = list(session.scalars(select(models.DeadLetter.reason)))
    assert reasons == ["unknown meter 'NOT-A-METER'"] * 2
    engine.dispose()


def test_an_event_twice_in_one_batch_keeps_the_first_copy_as_across_batches(
    database_url: str,
) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, meters=1, seed=7)
    meter = fleet[0]
    topic = telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "event")

    def event(copy: str) -> Accepted:
        message = telemetry.EventMessage(meter.id, "e-1", "tamper", T0, "warning", {"copy": copy})
        return Accepted(topic, message, b"", NOW)

    with sessions.begin() as session:
        write_batch(session, [event("first"), event("second")], MeterDirectory())
    with sessions.begin() as session:
        write_batch(session, [event("third")], MeterDirectory())
    with sessions() as session:
        details = list(session.scalars(select(models.Event.details)))
    assert details == [{"copy": "first"}]
    engine.dispose()


def test_a_meters_newest_interval_is_the_newest_in_the_batch_whatever_the_order(
    database_url: str,
) -> None:
    """A day's backlog after today's reading, in one batch: the newest start still wins."""
    engine, sessions, fleet = fleet_sessions(database_url, meters=1, seed=7)
    (today,) = interval_batch(fleet, T0 + timedelta(days=1), 1)
    (backlog,) = interval_batch(fleet, T0, 4)
    with sessions.begin() as session:
        write_batch(session, [today, backlog], MeterDirectory())
    with sessions() as session:
        meter = session.get(models.Meter, fleet[0].id)
        assert meter is not None
        assert meter.last_interval_start == T0 + timedelta(days=1)
    engine.dispose()
