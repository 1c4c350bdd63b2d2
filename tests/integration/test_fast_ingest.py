"""The fast write path (COPY + rollups added from the batch) equals the slow, recomputing one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.localtime import zone_for
from app.ingest import bulk, rollups
from app.ingest.store import PG_COLUMNS, Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter, build_fleet
from tests.factories import fleet_sessions, make_reading

DAY0 = datetime(2026, 3, 7, 18, tzinfo=UTC)  # runs over the spring-forward Sunday
STEP = timedelta(minutes=15)


def message(meter: Meter, starts: list[datetime], *, doubtful: bool = True) -> Accepted:
    """An interval message whose values vary by slot, with tied peaks (and doubtful ones)."""
    readings = tuple(
        make_reading(
            s,
            kwh=1 + (k * 7 + len(meter.id)) % 13,
            kvarh=(k * 3) % 5 - 1.0,
            demand_kw=4 * (1 + (k * 7) % 13),
            flags=frozenset({"partial"}) if doubtful and k % 17 == 0 else frozenset(),
        )
        for k, s in ((int((s - DAY0) / STEP), s) for s in starts)
    )
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
        telemetry.IntervalMessage(meter.id, readings),
        b"",
        datetime.now(UTC),
    )


def snapshot(session: Any) -> dict[str, dict[tuple[str, datetime], tuple[Any, ...]]]:
    """Every hourly and daily rollup, keyed by (meter, start)."""
    out = {}
    for table in (models.HourlyRollup, models.DailyRollup):
        out[table.__tablename__] = {
            (r.meter_id, r.start): (
                pytest.approx(r.kwh),
                pytest.approx(r.kvarh),
                r.peak_kw,
                r.peak_at,
                pytest.approx(r.power_factor, abs=1e-4) if r.power_factor is not None else None,
                r.intervals,
                r.valid,
                r.estimated,
                r.questionable,
                r.edited,
            )
            for r in session.scalars(select(table))
        }
    return out


@pytest.mark.parametrize(
    "doubtful", [True, False], ids=["some-flagged-by-hour", "all-valid-sliced-hours"]
)
def test_streamed_rollups_equal_a_full_recompute(database_url: str, doubtful: bool) -> None:
    """Rollups added batch by batch equal those recomputed from the stored intervals.

    All-valid messages take the sliced-hours path, flagged ones by_hour; the last batch
    holds two overlapping messages per meter, whose shared readings count once.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 4, seed=11)
    directory = MeterDirectory()
    starts = telemetry.interval_range(DAY0, 3 * 96)
    # New data only, in pieces that split hours and local days, out of order.
    for piece in (starts[130:250], starts[0:7], starts[7:130]):
        with sessions.begin() as session:
            write_batch(session, [message(m, piece, doubtful=doubtful) for m in fleet], directory)
    overlapping = [starts[250:270], starts[260:]]
    with sessions.begin() as session:
        result = write_batch(
            session,
            [message(m, p, doubtful=doubtful) for p in overlapping for m in fleet],
            directory,
        )
    assert result.readings_offered == 4 * len(starts[250:])

    with sessions() as session:
        streamed = snapshot(session)
        count = session.scalar(select(func.count()).select_from(models.Reading))
    assert count == 4 * len(starts)
    assert len(streamed["readings_hourly"]) == 4 * 3 * 24
    assert recomputed(sessions, fleet, starts) == streamed
    engine.dispose()


def test_one_reading_a_message_streams_equal_a_full_recompute(database_url: str) -> None:
    """Batches of one-reading messages, several a meter, interleaved: stored once, rolled up.

    Meter 0 skips an interval (a later run), meter 1 sends a flagged reading first (its
    later ones take the general path), meter 2's earlier reading is redelivered in a batch.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 4, seed=13)
    directory = MeterDirectory()
    starts = telemetry.interval_range(DAY0, 40)
    for batch_starts in (starts[0:11], starts[11:17], starts[17:40]):
        batch = []
        for k, start in enumerate(batch_starts):
            for i, meter in enumerate(fleet):
                if i == 0 and start == starts[13]:
                    continue  # sent in the next batch, out of order
                batch.append(message(meter, [start], doubtful=i == 1 and k == 0))
                if i == 2 and k == 3:
                    batch.append(message(meter, [batch_starts[1]], doubtful=False))
        if batch_starts[0] == starts[17]:
            batch.append(message(fleet[0], [starts[13]], doubtful=False))
        with sessions.begin() as session:
            result = write_batch(session, batch, directory)
        assert result.dead_letters == 0
        distinct = {(b.topic.meter_id, r.start) for b in batch for r in b.message.readings}  # type: ignore[union-attr]
        assert result.readings_offered == len(distinct)
    with sessions() as session:
        streamed = snapshot(session)
        count = session.scalar(select(func.count()).select_from(models.Reading))
        received = session.execute(
            select(models.Reading.received_at).order_by(models.Reading.received_at)
        ).scalars()
        distinct_times = len(set(received))
    assert count == 4 * len(starts)
    # Each reading keeps the time its own message came in (message() stamps them apart).
    assert distinct_times > 4 * len(starts) // 2
    assert sum(v[5] for v in streamed["readings_hourly"].values()) == 4 * len(starts)
    assert recomputed(sessions, fleet, starts) == streamed
    engine.dispose()


def test_a_reading_twice_in_a_batch_keeps_its_first_copy_whatever_its_path(
    database_url: str,
) -> None:
    """As across batches (docs/protocol.md): the first copy is stored, later ones ignored."""
    engine, sessions, fleet = fleet_sessions(database_url, 3, seed=23)
    t0, t1 = telemetry.interval_range(DAY0, 2)

    def one(i: int, start: datetime, kwh: float, flags: frozenset[str] = frozenset()) -> Accepted:
        meter = fleet[i]
        reading = make_reading(start, kwh=kwh, demand_kw=4 * kwh, flags=flags)
        return Accepted(
            telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
            telemetry.IntervalMessage(meter.id, (reading,)),
            b"",
            datetime.now(UTC),
        )

    partial = frozenset({"partial"})
    batch = [
        one(0, t0, 1.0),
        one(0, t1, 2.0),  # continues meter 0's run: the block
        one(0, t1, 9.0),  # the same reading again: the general path
        one(1, t1, 2.0, partial),  # flagged: the general path ...
        one(1, t1, 9.0),  # ... and so the meter's later plain copy too
        one(2, t1, 2.0),
        one(2, t1, 9.0, partial),  # a later flagged copy replaces no actual
    ]
    with sessions.begin() as session:
        assert write_batch(session, batch, MeterDirectory()).readings_offered == 4
    with sessions() as session:
        stored = {
            r.meter_id: (r.kwh, r.flags)
            for r in session.scalars(select(models.Reading).where(models.Reading.start == t1))
        }
        streamed = snapshot(session)
    assert stored == {fleet[0].id: (2.0, ""), fleet[1].id: (2.0, "partial"), fleet[2].id: (2.0, "")}
    assert recomputed(sessions, fleet, [t0, t1]) == streamed
    engine.dispose()


def test_runs_that_meet_stored_rows_fall_back_and_count_once(database_url: str) -> None:
    """One-reading messages forming runs over rows stored before: the general path, exact.

    (The general path then recomputes the touched buckets from the stored rows; this holds
    its counts and rollups, whatever hours the fallback passes.)
    """
    engine, sessions, fleet = fleet_sessions(database_url, 3, seed=19)
    directory = MeterDirectory()
    starts = telemetry.interval_range(DAY0, 12)
    with sessions.begin() as session:
        write_batch(session, [message(m, starts[:5], doubtful=False) for m in fleet], directory)
    # Each meter's run starts two intervals back (a redelivery) and goes on with new ones.
    batch = [message(m, [s], doubtful=False) for s in starts[3:] for m in fleet]
    with sessions.begin() as session:
        assert write_batch(session, batch, directory).readings_offered == 3 * len(starts[3:])
    with sessions() as session:
        streamed = snapshot(session)
        count = session.scalar(select(func.count()).select_from(models.Reading))
    assert count == 3 * len(starts)
    assert sum(v[5] for v in streamed["readings_hourly"].values()) == 3 * len(starts)
    assert recomputed(sessions, fleet, starts) == streamed
    engine.dispose()


@pytest.mark.parametrize("per_message", [1, 6])
def test_a_batch_of_plain_and_flagged_messages_adds_each_rollup_once(
    database_url: str, per_message: int
) -> None:
    """Columnar (plain) and general (flagged) messages in one batch, both adding rollups.

    On PostgreSQL both parts stage part-hours and days in the same temporary tables in
    one transaction; each part's rows must be added once.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 4, seed=17)
    directory = MeterDirectory()
    starts = telemetry.interval_range(DAY0 + STEP, 5 * per_message)
    for k in range(0, len(starts), per_message):
        part = starts[k : k + per_message]
        batch = [message(m, part, doubtful=False) for m in fleet]
        for i in (1, 3):  # every reading flagged: the general path
            readings = batch[i].message.readings  # type: ignore[union-attr]
            flagged = tuple(r._replace(flags=frozenset({"partial"})) for r in readings)
            batch[i] = batch[i]._replace(message=telemetry.IntervalMessage(fleet[i].id, flagged))
        with sessions.begin() as session:
            assert write_batch(session, batch, directory).readings_offered == 4 * len(part)
    with sessions() as session:
        streamed = snapshot(session)
    assert sum(v[5] for v in streamed["readings_daily"].values()) == 4 * len(starts)
    assert recomputed(sessions, fleet, starts) == streamed
    engine.dispose()


def recomputed(sessions: Any, fleet: list[Meter], starts: list[datetime]) -> Any:
    """Wipe the rollups, rebuild them the slow way from the stored intervals, snapshot them."""
    with sessions.begin() as session:
        session.execute(models.HourlyRollup.__table__.delete())
        session.execute(models.DailyRollup.__table__.delete())
        rollups.refresh(
            session, {m.id: starts for m in fleet}, {m.id: zone_for(m.lon) for m in fleet}
        )
    with sessions() as session:
        return snapshot(session)


def test_a_start_twice_in_one_valid_message_is_stored_once(database_url: str) -> None:
    """A valid three-phase message repeating a start: one row, rollups as recomputed."""
    engine, sessions, fleet = fleet_sessions(database_url, 1, seed=5)
    starts = telemetry.interval_range(DAY0, 12)
    twice = [*starts[:6], starts[5], *starts[6:]]
    with sessions.begin() as session:
        result = write_batch(session, [message(fleet[0], twice, doubtful=False)], MeterDirectory())
    assert result.readings_offered == len(starts)
    with sessions() as session:
        streamed = snapshot(session)
        count = session.scalar(select(func.count()).select_from(models.Reading))
    assert count == len(starts)
    assert sum(v[5] for v in streamed["readings_hourly"].values()) == len(starts)
    assert recomputed(sessions, fleet, starts) == streamed
    engine.dispose()


def test_redelivered_batch_leaves_rollups_unchanged(database_url: str) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, 2, seed=3)
    directory = MeterDirectory()
    starts = telemetry.interval_range(DAY0, 96)
    with sessions.begin() as session:
        write_batch(session, [message(m, starts) for m in fleet], directory)
    with sessions() as session:
        before = snapshot(session)
    # A redelivery overlapping new data: half seen, half new.
    more = telemetry.interval_range(DAY0 + 48 * STEP, 96)
    with sessions.begin() as session:
        write_batch(session, [message(m, more) for m in fleet], directory)
        write_batch(session, [message(m, more) for m in fleet], directory)
    with sessions() as session:
        after = snapshot(session)
        count = session.scalar(select(func.count()).select_from(models.Reading))
    assert count == 2 * 144
    assert {k: v for k, v in after["readings_hourly"].items() if k[1] < DAY0 + 12 * 4 * STEP} == {
        k: v for k, v in before["readings_hourly"].items() if k[1] < DAY0 + 12 * 4 * STEP
    }
    assert sum(v[5] for v in after["readings_daily"].values()) == 2 * 144
    engine.dispose()


@pytest.mark.postgres
def test_copy_if_all_new_writes_all_or_nothing(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    fleet = build_fleet(1, seed=2)
    meter = fleet[0].id
    with sessions.begin() as session:
        seed_fleet(session, fleet)
        session.execute(
            models.Reading.__table__.delete().where(models.Reading.meter_id == meter)  # type: ignore[attr-defined]
        )
    now = datetime.now(UTC)

    def rows(first: int, n: int) -> list[tuple[Any, ...]]:
        return [
            (meter, DAY0 + (first + k) * STEP, 1.0, 0.0, 4.0, 230.0, None, None, "", "valid", now)
            for k in range(n)
        ]

    with sessions.begin() as session:
        assert bulk.copy_if_all_new(session, "readings", PG_COLUMNS, rows(0, 10))
        # One key already there: nothing of this COPY stays, and the transaction goes on.
        assert not bulk.copy_if_all_new(session, "readings", PG_COLUMNS, rows(5, 10))
        assert bulk.copy_if_all_new(session, "readings", PG_COLUMNS, rows(10, 5))
    with sessions() as session:
        stored = select(func.count()).where(models.Reading.meter_id == meter)
        assert session.scalar(stored) == 15
    engine.dispose()
