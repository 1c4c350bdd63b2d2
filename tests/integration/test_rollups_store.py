"""Rollups kept by the ingest equal their intervals under redelivery, late data and estimates."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.db import models, partitions
from app.db.session import make_engine, make_sessionmaker
from app.domain import rollups, telemetry
from app.domain.localtime import zone_for
from app.ingest import rollups as rollups_store
from app.ingest.estimation import run_vee
from app.ingest.store import Accepted, MeterDirectory, write_batch
from app.manage import cli
from simulator.fleet import Meter
from tests.factories import assert_hourly_rollups_match_readings, fleet_sessions, make_reading

STEP = timedelta(minutes=15)
ONE_DAY = timedelta(days=1)
# Spring-forward Sunday in the US: a 23-hour local day for every meter of the fleet.
DAY0 = datetime(2026, 3, 8, tzinfo=UTC)


def message(meter: Meter, starts: list[datetime]) -> Accepted:
    """An accepted interval message with energy rising through the day, demand = kWh x 4."""
    readings = tuple(
        make_reading(s, kwh=1 + (s - DAY0) / STEP % 17, demand_kw=4 * (1 + (s - DAY0) / STEP % 17))
        for s in starts
    )
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
        telemetry.IntervalMessage(meter.id, readings),
        b"",
        datetime.now(UTC),
    )


def expected_daily(database_url: str, meter: Meter) -> dict[datetime, tuple[float, float, int]]:
    """Recompute (kWh, peak kW, intervals) per local day from the raw readings."""
    tz = zone_for(meter.lon)
    engine = make_engine(database_url)
    out: dict[datetime, list[models.Reading]] = {}
    with make_sessionmaker(engine)() as session:
        for r in session.scalars(select(models.Reading).where(models.Reading.meter_id == meter.id)):
            out.setdefault(rollups.day_start(r.start, tz), []).append(r)
    engine.dispose()
    return {
        day: (math.fsum(r.kwh for r in rows), max(r.demand_kw for r in rows), len(rows))
        for day, rows in out.items()
    }


def stored_daily(database_url: str, meter: Meter) -> dict[datetime, models.DailyRollup]:
    """Return the daily rollups of a meter by start."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = {
            d.start: d
            for d in session.scalars(
                select(models.DailyRollup).where(models.DailyRollup.meter_id == meter.id)
            )
        }
    engine.dispose()
    return found


def test_rollups_follow_redelivery_late_data_and_estimates(database_url: str) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, 3, seed=5)
    meter = fleet[0]
    starts = telemetry.interval_range(DAY0, 4 * 96)
    directory = MeterDirectory()
    # Out of order, with a gap of 5 intervals, and everything delivered twice.
    gap = set(starts[200:205])
    first, second = starts[96:], starts[:96]
    for part in (first, second, first):
        with sessions.begin() as session:
            write_batch(session, [message(meter, [s for s in part if s not in gap])], directory)

    daily = stored_daily(database_url, meter)
    want = expected_daily(database_url, meter)
    assert {d: (r.kwh, r.peak_kw, r.intervals) for d, r in daily.items()} == {
        d: (pytest.approx(k), p, n) for d, (k, p, n) in want.items()
    }
    tz = zone_for(meter.lon)
    sunday = rollups.day_start(datetime(2026, 3, 8, 18, tzinfo=UTC), tz)
    assert daily[sunday].intervals == 92  # 23 local hours

    with sessions.begin() as session:
        summary = run_vee(
            session, meter.id, min(gap), max(gap) + STEP, now=datetime.now(UTC), tz=tz
        )
    assert summary.estimated_linear == 5
    daily = stored_daily(database_url, meter)
    gap_day = rollups.day_start(min(gap), tz)
    assert daily[gap_day].estimated == 5
    assert (daily[gap_day].kwh, daily[gap_day].intervals) == (
        pytest.approx(expected_daily(database_url, meter)[gap_day][0]),
        expected_daily(database_url, meter)[gap_day][2],
    )

    # The actuals arrive late: the estimates go, the rollup follows.
    with sessions.begin() as session:
        write_batch(session, [message(meter, sorted(gap))], directory)
    daily = stored_daily(database_url, meter)
    assert daily[gap_day].estimated == 0
    assert daily[gap_day].kwh == pytest.approx(expected_daily(database_url, meter)[gap_day][0])

    with sessions() as session:
        hours = session.scalar(
            select(func.count())
            .select_from(models.HourlyRollup)
            .where(models.HourlyRollup.meter_id == meter.id)
        )
        peak = session.scalars(
            select(models.HourlyRollup)
            .where(models.HourlyRollup.meter_id == meter.id)
            .order_by(models.HourlyRollup.peak_kw.desc(), models.HourlyRollup.start)
        ).first()
    engine.dispose()
    assert hours == 4 * 24
    assert peak is not None
    assert peak.peak_kw == 68.0  # 17 kWh x 4
    assert peak.power_factor == pytest.approx(peak.kwh / math.hypot(peak.kwh, peak.kvarh), abs=1e-4)


def stored_rollups(database_url: str) -> dict[tuple[str, str, datetime], tuple[object, ...]]:
    """Every hourly and daily rollup row, floats rounded to 6 places, by (table, meter, start)."""
    engine = make_engine(database_url)
    out: dict[tuple[str, str, datetime], tuple[object, ...]] = {}
    with make_sessionmaker(engine)() as session:
        for model in (models.HourlyRollup, models.DailyRollup):
            table = model.__table__
            for row in session.execute(select(table)).mappings():
                out[(table.name, row["meter_id"], row["start"])] = tuple(
                    round(v, 6) if isinstance(v, float) else v for v in row.values()
                )
    engine.dispose()
    return out


def test_rebuild_rollups_recomputes_them_from_the_stored_intervals(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m app.manage rebuild-rollups` puts back what the ingest keeps, meter by meter.

    The rollups are kept by the ingest through late data, a gap, redeliveries and a VEE
    estimate; then one meter's are doubled, a day and an hour deleted and a stray hour
    added, another's doubled too. Rebuilding the first leaves the second as it is;
    rebuilding all puts every row back as the ingest had it.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 3, seed=5)
    starts = telemetry.interval_range(DAY0, 3 * 96)
    gap = set(starts[200:205])
    directory = MeterDirectory()
    for meter in fleet[:2]:
        for part in (starts[96:], starts[:96], starts[96:]):
            with sessions.begin() as session:
                write_batch(session, [message(meter, [s for s in part if s not in gap])], directory)
    with sessions.begin() as session:
        # No zone given: VEE refreshes the meter's daily rollups in its own local days.
        run_vee(session, fleet[0].id, min(gap), max(gap) + STEP, now=datetime.now(UTC))
    kept = stored_rollups(database_url)
    # Two meters' 72 hours each, less the one hour the gap empties for the meter without
    # estimates, and 3 or 4 local days each (the UTC days split).
    assert sum(k[0] == "readings_hourly" for k in kept) == 2 * 72 - 1
    assert 6 <= sum(k[0] == "readings_daily" for k in kept) <= 8

    hourly, daily = models.HourlyRollup, models.DailyRollup
    broken, other = fleet[0].id, fleet[1].id
    with sessions.begin() as session:
        session.execute(
            update(hourly)
            .where(hourly.meter_id.in_([broken, other]))
            .values(kwh=hourly.kwh * 2, intervals=hourly.intervals * 2)
        )
        session.execute(delete(daily).where(daily.meter_id == broken, daily.start == DAY0))
        first = session.scalars(select(hourly).where(hourly.meter_id == broken)).first()
        assert first is not None
        session.execute(
            delete(hourly).where(hourly.meter_id == broken, hourly.start == first.start)
        )
        session.execute(
            insert(hourly).values(
                {
                    **{c.key: getattr(first, c.key) for c in hourly.__table__.columns},
                    "start": DAY0 - timedelta(days=10),
                }
            )
        )
    engine.dispose()

    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    result = runner.invoke(cli, ["rebuild-rollups", "--meter", broken])
    assert result.exit_code == 0, result.output
    days = sum(k[:2] == ("readings_daily", broken) for k in kept)
    assert f"rebuilt 72 hourly and {days} daily rollups of 1 meters" in result.output
    now = stored_rollups(database_url)
    mine = {k: v for k, v in now.items() if k[1] == broken}
    assert mine == {k: v for k, v in kept.items() if k[1] == broken}
    assert {k: v for k, v in now.items() if k[1] == other} != {
        k: v for k, v in kept.items() if k[1] == other
    }

    # Windows of one UTC day: the local days (a DST one among them) cross every edge.
    result = runner.invoke(cli, ["rebuild-rollups", "--chunk", "2", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "of 3 meters" in result.output
    assert stored_rollups(database_url) == kept

    result = runner.invoke(cli, ["rebuild-rollups", "--meter", "nope"])
    assert result.exit_code == 2
    assert "no such meter: nope" in result.output
    result = runner.invoke(cli, ["rebuild-rollups", "--days", "3000000"])  # overflowed
    assert result.exit_code == 2
    assert "--days" in result.output


def test_rebuild_beside_a_writing_ingest_loses_and_doubles_nothing(database_url: str) -> None:
    """Rebuilds racing batches that add to the same hours leave every hour equal to its intervals.

    A writer thread stores half-hours of three meters, batch after batch, as the ingest
    does (each hour is added to twice); meanwhile the main thread rebuilds all three
    meters' rollups again and again. Afterwards every hourly bucket holds exactly the sum
    and count of its stored intervals.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 3, seed=5)
    starts = telemetry.interval_range(DAY0, 96)
    zones = {m.id: zone_for(m.lon) for m in fleet}
    done, rebuilt = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        directory = MeterDirectory()
        try:
            for n, at in enumerate(range(0, len(starts), 2)):
                with sessions.begin() as session:
                    write_batch(
                        session, [message(m, starts[at : at + 2]) for m in fleet], directory
                    )
                if n % 8 == 7:
                    # Let a rebuild finish now and then: SQLite's busy handler lets a writer
                    # that commits back to back starve the rebuild until it is done (seen in
                    # CI). On PostgreSQL the two also run at the same time in between.
                    rebuilt.clear()
                    rebuilt.wait(10)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    rebuilds = overlapped = 0
    while not done.is_set() or rebuilds < 3:
        with sessions.begin() as session:
            rollups_store.rebuild(
                session, [m.id for m in fleet], zones, DAY0 - timedelta(days=1), DAY0 + ONE_DAY
            )
        rebuilds += 1
        overlapped += not done.is_set()
        rebuilt.set()
        # And the other way round: rebuilds committed back to back starved the writer.
        time.sleep(0.01)
    writer.join()
    assert not failures, failures
    assert overlapped >= 3, "too few rebuilds ran while the writer wrote"

    with sessions() as session:
        hours = {
            (h.meter_id, h.start): (h.kwh, h.intervals)
            for h in session.scalars(select(models.HourlyRollup))
        }
        readings: dict[tuple[str, datetime], list[float]] = {}
        for r in session.scalars(select(models.Reading)):
            readings.setdefault((r.meter_id, rollups.hour_start(r.start)), []).append(r.kwh)
    engine.dispose()
    assert len(readings) == 3 * 24
    assert hours == {
        key: (pytest.approx(math.fsum(kwh)), len(kwh)) for key, kwh in readings.items()
    }


# Partitions and table locks are PostgreSQL's; SQLite has one write lock.
@pytest.mark.parametrize(
    "database_url",
    [pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")],
    indirect=True,
)
def test_a_batch_opening_a_month_beside_a_rebuild_does_not_deadlock(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose flagged reading opens a new month's partition, with a rebuild waiting.

    The batch's plain message is written first (it adds to the rollups); its flagged one
    falls in a month without a partition. The batch is held just before it creates that
    partition while a rebuild starts. Creating the partition once the batch had added to
    the rollups deadlocked (the batch held the rollups and wanted `readings`, the rebuild
    held `readings` and wanted the rollups); now every partition is made first.
    """
    engine, sessions, fleet = fleet_sessions(database_url, 2, seed=5)
    plain_meter, flagged_meter = fleet
    zones = {m.id: zone_for(m.lon) for m in fleet}
    end_of_april = datetime(2026, 4, 30, 23, 0, tzinfo=UTC)
    directory = MeterDirectory()
    with sessions.begin() as session:  # April's partition exists and the worker knows it
        write_batch(session, [message(plain_meter, [end_of_april - STEP])], directory)
    held, release = threading.Event(), threading.Event()
    ensure = partitions.Months.ensure

    def ensure_after_a_pause(
        self: partitions.Months,
        conn: Any,
        starts: Iterable[datetime],
        pending: set[str] | None = None,
    ) -> list[str]:
        starts = set(starts)
        if any(s.month == 5 for s in starts) and not held.is_set():
            held.set()
            release.wait(10)
        return ensure(self, conn, starts, pending)

    monkeypatch.setattr(partitions.Months, "ensure", ensure_after_a_pause)
    may_first = datetime(2026, 5, 1, tzinfo=UTC)
    flagged = Accepted(
        telemetry.Topic(
            telemetry.DEFAULT_PREFIX, flagged_meter.utility_id, flagged_meter.id, "interval"
        ),
        telemetry.IntervalMessage(
            flagged_meter.id, (make_reading(may_first, flags=("clock_adjusted",)),)
        ),
        b"",
        datetime.now(UTC),
    )
    errors: list[BaseException] = []

    def run(work: Callable[[Session], object]) -> None:
        try:
            with sessions.begin() as session:
                work(session)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    batch = threading.Thread(
        target=run,
        args=(
            lambda s: write_batch(
                s, [message(plain_meter, [end_of_april, end_of_april + STEP]), flagged], directory
            ),
        ),
    )
    batch.start()
    assert held.wait(10)
    ids = [m.id for m in fleet]
    rebuild = threading.Thread(
        target=run,
        args=(
            lambda s: rollups_store.rebuild(
                s, ids, zones, end_of_april - ONE_DAY, may_first + ONE_DAY
            ),
        ),
    )
    rebuild.start()
    rebuild.join(0.5)
    release.set()
    batch.join()
    rebuild.join()
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(models.Reading))
    engine.dispose()
    assert not errors, errors
    assert stored == 4


@pytest.mark.parametrize("recompute", ["redelivery", "vee"])
def test_a_recompute_waits_for_a_writer_adding_to_its_hour(
    empty_postgres_url: str, recompute: str
) -> None:
    """PostgreSQL: a late actual added while a redelivery or VEE recomputes its hour survives.

    Writer A adds 15:30 to hour 15 and holds its transaction open; B recomputes hour 15
    (a redelivered 15:00, or VEE flagging a spike there). B read the raw rows before A
    committed and overwrote A's addition: 30 kWh stored where the readings hold 50.
    """
    engine, sessions, fleet = fleet_sessions(empty_postgres_url, 1, seed=1)
    meter = fleet[0]
    hour = DAY0 + timedelta(hours=15)
    before = [hour - 4 * STEP + k * STEP for k in range(6)]  # 14:00 .. 15:15
    spike = {hour: 400.0}
    with sessions.begin() as session:
        write_batch(session, [message(meter, before)], MeterDirectory())
        session.execute(
            update(models.Reading)
            .where(models.Reading.meter_id == meter.id, models.Reading.start.in_(list(spike)))
            .values(kwh=400.0, demand_kw=1600.0)
        )
        rollups_store.refresh(session, {meter.id: list(spike)}, {meter.id: zone_for(meter.lon)})
    writer = sessions()
    write_batch(writer, [message(meter, [hour + 2 * STEP])], MeterDirectory())  # uncommitted
    failures: list[BaseException] = []

    def other() -> None:
        try:
            with sessions.begin() as session:
                if recompute == "redelivery":
                    write_batch(session, [message(meter, [hour])], MeterDirectory())
                else:
                    run_vee(session, meter.id, hour - timedelta(hours=1), hour + STEP,
                            now=hour + ONE_DAY)  # fmt: skip
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(1.5)
    assert thread.is_alive()  # waiting for the writer's bucket
    writer.commit()
    writer.close()
    thread.join(30)
    assert not failures, failures
    assert_hourly_rollups_match_readings(sessions, meter.id)
    engine.dispose()
