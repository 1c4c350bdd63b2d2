"""Backfill into SQLite and PostgreSQL: model values, idempotency, flags, progress, CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, func, select

from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain.localtime import zone_for
from app.ingest.rollups import refresh
from simulator.backfill import backfill
from simulator.cli import cli
from simulator.fleet import build_fleet
from simulator.incidents import Incident
from simulator.model import meter_readings

SEED = 4
START = datetime(2026, 3, 2, tzinfo=UTC)


def count_rows(url: str) -> int:
    """Return the number of stored readings."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(models.Reading)) or 0
    engine.dispose()
    return n


def test_backfill_writes_the_model_once_with_flags(database_url: str) -> None:
    meters = build_fleet(9, SEED)
    storm = Incident(
        "outage",
        "storm",
        START + timedelta(hours=5),
        START + timedelta(hours=7),
        np.eye(9, dtype=bool)[2],
    )
    engine = make_engine(database_url)
    seen: list[int] = []
    stats = backfill(engine, meters, SEED, START, 2, [storm], progress=seen.append)
    assert stats.intervals == stats.written == 9 * 192
    assert sum(seen) == 9 * 192
    again = backfill(engine, meters, SEED, START, 2, [storm])
    assert again.written == 0
    # An overlapping, longer run only adds what is missing.
    longer = backfill(engine, meters[:3], SEED, START + timedelta(days=1), 2)
    assert longer.written == 3 * 96
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(models.Reading)) == 9 * 192 + 3 * 96
        meter = meters[4]
        stored = session.scalars(
            select(models.Reading)
            .where(models.Reading.meter_id == meter.id)
            .order_by(models.Reading.start)
        ).all()
        expected = meter_readings(meter, START, 192, SEED)
        assert [r.start for r in stored] == [e.start for e in expected]
        assert [r.kwh for r in stored] == [e.kwh for e in expected]
        # Meter 4 is a 12S, a two-element network meter: no phase C (NULL, not NaN).
        assert meter.phases == 2
        assert [(r.voltage_a, r.voltage_b, r.voltage_c) for r in stored] == [
            (*e.voltage, None) for e in expected
        ]
        three = meters[5]
        assert three.phases == 3
        volts = session.execute(
            select(models.Reading.voltage_a, models.Reading.voltage_b, models.Reading.voltage_c)
            .where(models.Reading.meter_id == three.id)
            .order_by(models.Reading.start)
        ).all()
        assert [tuple(v) for v in volts] == [
            e.voltage for e in meter_readings(three, START, 192, SEED)
        ]
        dark = session.scalars(
            select(models.Reading.start)
            .where(models.Reading.meter_id == meters[2].id, models.Reading.flags == "power_fail")
            .order_by(models.Reading.start)
        ).all()
        assert dark == [START + timedelta(hours=5, minutes=15 * k) for k in range(8)]
        row = session.get(models.Meter, meter.id)
        assert row is not None
        assert row.last_interval_start == START + timedelta(days=2) - timedelta(minutes=15)
        # The hourly rollups the portal reads sum exactly the backfilled intervals.
        hourly = session.scalars(
            select(models.HourlyRollup)
            .where(models.HourlyRollup.meter_id == meter.id)
            .order_by(models.HourlyRollup.start)
        ).all()
        assert len(hourly) == 48
        assert [h.intervals for h in hourly] == [4] * 48
        for h, k in zip(hourly, range(0, 192, 4), strict=True):
            assert h.kwh == pytest.approx(sum(e.kwh for e in expected[k : k + 4]))
    engine.dispose()


def test_cli_backfill_with_shards_and_scenario(database_url: str) -> None:
    runner = CliRunner()
    base = [
        "backfill",
        "--scenario",
        "federal-tamper",
        "--days",
        "1",
        "--database-url",
        database_url,
        "--start",
        "2026-03-03T00:00:00Z",
        "--quiet",
    ]
    for shard in ("0/2", "1/2"):
        result = runner.invoke(cli, [*base, "--shard", shard])
        assert result.exit_code == 0, result.output
        assert "new rows" in result.output
    meters = [m for m in build_fleet(120, 11) if m.utility_id in ("fedcenter", "riverton")]
    assert count_rows(database_url) == len(meters) * 96
    # The scenario's tamper (count: 1) hits one meter, as unsharded: each shard chose its
    # own before, and two shards tampered two meters.
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        tampered = session.scalars(
            select(models.Reading.meter_id).where(models.Reading.flags.like("%tamper%")).distinct()
        ).all()
    engine.dispose()
    assert len(tampered) == 1
    result = runner.invoke(cli, base)
    assert result.exit_code == 0, result.output
    assert " 0 new rows" in result.output
    assert count_rows(database_url) == len(meters) * 96


@pytest.mark.parametrize("days", ["0", "-1", "many", "nan", "1.3"])
def test_cli_backfill_rejects_bad_days(days: str) -> None:
    # 1.3 days is 124.8 intervals: a traceback ("not on the 15-minute grid") before.
    result = CliRunner().invoke(cli, ["backfill", "--days", days, "--database-url", "sqlite://"])
    assert result.exit_code == 2
    assert "--days" in result.output


@pytest.mark.parametrize(
    "start", ["1990-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:45:00Z"]
)
def test_cli_backfill_refuses_history_outside_the_ingest_years(start: str) -> None:
    args = ["backfill", "--days", "1", "--start", start, "--database-url", "sqlite://"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "is outside 2000 to 2200" in result.output


def _rollups(engine: Engine) -> list[list[tuple[object, ...]]]:
    with make_sessionmaker(engine)() as session:
        return [
            [
                tuple(getattr(r, c.name) for c in table.__table__.columns)
                for r in session.scalars(select(table).order_by(table.meter_id, table.start))
            ]
            for table in (models.HourlyRollup, models.DailyRollup)
        ]


def test_backfill_rollups_equal_a_refresh_from_the_stored_intervals(database_url: str) -> None:
    # Starts off the hour, groups of 5 meters, two overlapping runs and readings stored
    # beforehand with other values (an estimate and an edit): every bucket must equal what
    # the ingest's refresh computes from the intervals actually stored.
    meters = build_fleet(12, SEED)
    engine = make_engine(database_url)
    first = START + timedelta(hours=1, minutes=45)
    backfill(engine, meters[:4], SEED, first + timedelta(days=1), 0.5, rows_per_chunk=5)
    with make_sessionmaker(engine).begin() as session:
        for at, quality in ((timedelta(days=1, hours=3), "edited"), (timedelta(days=2), "valid")):
            row = session.get(models.Reading, (meters[1].id, first + at))
            if row is None:
                row = models.Reading(
                    meter_id=meters[1].id,
                    start=first + at,
                    kvarh=0.0,
                    demand_kw=0.0,
                    received_at=START,
                )
                session.add(row)
            row.kwh, row.demand_kw, row.quality = 999.5, 3999.0, quality
    backfill(engine, meters, SEED, first, 2.75, rows_per_chunk=5)
    backfill(engine, meters[3:], SEED, first + timedelta(days=2), 1.5, rows_per_chunk=5)
    got = _rollups(engine)
    assert got[0]
    assert got[1]
    assert max(h[4] for h in got[0]) == 3999.0  # the stored edit, not the model, is rolled up
    zones = {m.id: zone_for(m.lon) for m in meters}
    with make_sessionmaker(engine).begin() as session:
        session.execute(delete(models.HourlyRollup))
        session.execute(delete(models.DailyRollup))
        starts = session.scalars(select(models.Reading.start).distinct()).all()
        hours = sorted({s.replace(minute=0) for s in starts})
        refresh(session, {m.id: hours for m in meters}, zones)
    assert got == _rollups(engine)
    engine.dispose()
