"""Rollups kept by the ingest equal their intervals under redelivery, late data and estimates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import rollups, telemetry
from app.domain.localtime import zone_for
from app.ingest.estimation import run_vee
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import fleet_sessions, make_reading

STEP = timedelta(minutes=15)
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
