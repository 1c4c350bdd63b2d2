"""Test data factories with keyword overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import models
from app.db.seed import seed_fleet, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.rollups import hour_start
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter, build_fleet

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def make_reading(start: datetime, **overrides: object) -> telemetry.Reading:
    """Build a plausible reading; keyword overrides change fields."""
    fields: dict[str, object] = {
        "start": start,
        "kwh": 12.5,
        "kvarh": 4.1,
        "demand_kw": 50.0,
        "voltage": (277.1, 276.8, 277.4),
    }
    fields.update(overrides)
    return telemetry.Reading(**fields)  # type: ignore[arg-type]


def fleet_sessions(
    database_url: str, meters: int, seed: int
) -> tuple[Engine, sessionmaker[Session], list[Meter]]:
    """Seed `meters` meters built from `seed`; return the engine, its sessions and the fleet."""
    fleet = build_fleet(meters, seed=seed)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        seed_fleet(session, fleet)
    return engine, sessions, fleet


def seed_database(
    database_url: str, *, meters: int = 21, seed: int = 7, intervals: int = 96
) -> list[Meter]:
    """Seed a fleet, the demo logins (password PASSWORD) and `intervals` readings per meter from T0."""
    fleet = build_fleet(meters, seed=seed)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, fleet)
        seed_users(session, PASSWORD)
        seed_partners(session, datetime.now(UTC))
    with make_sessionmaker(engine).begin() as session:
        batch = [
            Accepted(
                telemetry.Topic(telemetry.DEFAULT_PREFIX, m.utility_id, m.id, "interval"),
                telemetry.IntervalMessage(
                    m.id,
                    tuple(
                        # Demand is the interval's average (kWh x 4): VEE's consistency rule holds.
                        make_reading(s, kwh=10.0 + i % 7, demand_kw=4 * (10.0 + i % 7))
                        for i, s in enumerate(telemetry.interval_range(T0, intervals))
                    ),
                ),
                b"",
                datetime.now(UTC),
            )
            for m in fleet
        ]
        write_batch(session, batch, MeterDirectory())
    engine.dispose()
    return fleet


def interval_batch(
    meters: list[Meter], start: datetime, count: int, *, register: bool = False
) -> list[Accepted]:
    """One interval message per meter, `count` readings from `start` (and a register read)."""
    starts = telemetry.interval_range(start, count)
    end = starts[-1] + timedelta(seconds=telemetry.INTERVAL_SECONDS)
    return [
        Accepted(
            telemetry.Topic(telemetry.DEFAULT_PREFIX, m.utility_id, m.id, "interval"),
            telemetry.IntervalMessage(
                m.id,
                tuple(make_reading(s) for s in starts),
                register=telemetry.Register(end, 1000.0, 400.0) if register else None,
            ),
            b"",
            datetime.now(UTC),
        )
        for m in meters
    ]


def readings_by_table(url: str, table: str = "readings") -> dict[str, int]:
    """Rows of `table` per table that holds them (a partition or a chunk), by qualified name."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")  # noqa: S608
        ).all()
    engine.dispose()
    return dict(rows)


def assert_hourly_rollups_match_readings(sessions: sessionmaker[Session], meter_id: str) -> None:
    """Every hourly rollup of the meter is its readings' kWh sum; no hour lacks or adds one."""
    with sessions() as session:
        stored = {
            h.start: h.kwh
            for h in session.scalars(
                select(models.HourlyRollup).where(models.HourlyRollup.meter_id == meter_id)
            )
        }
        raw: dict[datetime, float] = {}
        for r in session.scalars(select(models.Reading).where(models.Reading.meter_id == meter_id)):
            raw[hour_start(r.start)] = raw.get(hour_start(r.start), 0.0) + r.kwh
    assert stored.keys() == raw.keys()
    for hour, kwh in raw.items():
        assert stored[hour] == pytest.approx(kwh), hour
