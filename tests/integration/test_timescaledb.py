"""Where TimescaleDB is installed, `readings` is a hypertable and the ingest works on it alike.

Migration 0006 makes `readings` a hypertable of weekly chunks when the server offers the
extension, and monthly partitions otherwise. CI runs a PostgreSQL with TimescaleDB
(`scripts/timescaledb.sh`, Debian 13's packages) beside the machine's own PostgreSQL, which
has none; `make test` also runs the storage tests on it (see the Makefile).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, delete, func, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import models, partitions, queries
from app.db.migrate import alembic_config, upgrade
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.ingest import rollups
from app.ingest.estimation import run_vee
from app.ingest.store import MeterDirectory, write_batch
from simulator.fleet import Meter, build_fleet
from tests.conftest import skip_or_fail
from tests.factories import interval_batch, readings_by_table

pytestmark = pytest.mark.postgres

TEST_TIMESCALEDB_URL = os.environ.get("TEST_TIMESCALEDB_URL")
CHUNKS = "_timescaledb_internal."
# Three days of 96 readings: the last week of 2024, across the year end, and mid-January.
STARTS = (
    datetime(2024, 12, 24, tzinfo=UTC),
    datetime(2024, 12, 31, 12, tzinfo=UTC),
    datetime(2025, 1, 14, tzinfo=UTC),
)


def fresh_database(server_url: str, name: str) -> str:
    """Create database `name` (xdist: one per worker) on the server, dropping an earlier one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    name = f"{name}_{worker}" if worker else name
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def server() -> str:
    """The URL of a PostgreSQL server that offers TimescaleDB."""
    if not TEST_TIMESCALEDB_URL:
        skip_or_fail(
            "TEST_TIMESCALEDB_URL not set: no PostgreSQL with TimescaleDB here "
            "(.ci/run starts one with scripts/timescaledb.sh)"
        )
    return TEST_TIMESCALEDB_URL


@pytest.fixture(scope="module")
def url(server: str) -> str:
    """A database migrated to head on the TimescaleDB server."""
    migrated = fresh_database(server, "wattline_tsdb")
    upgrade(migrated)
    return migrated


@pytest.fixture
def fleet(url: str) -> Iterator[tuple[Engine, sessionmaker[Session], list[Meter]]]:
    """Empty readings and rollups, two meters seeded; the engine, its sessions and meters."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    meters = build_fleet(2, seed=8)
    with sessions.begin() as session:
        session.execute(
            text(
                "TRUNCATE readings, readings_hourly, readings_daily, reading_audit, register_reads"
            )
        )
        seed_fleet(session, meters)
    yield engine, sessions, meters
    engine.dispose()


def store_days(sessions: sessionmaker[Session], meters: list[Meter]) -> MeterDirectory:
    """Write STARTS' days for every meter, a transaction each, as the ingest would."""
    directory = MeterDirectory()
    for start in STARTS:
        with sessions.begin() as session:
            write_batch(session, interval_batch(meters, start, 96, register=True), directory)
    return directory


def rollup_rows(session: Session) -> list[tuple[Any, ...]]:
    """Every hourly and daily rollup row, in order."""
    return [
        tuple(row)
        for table in (models.HourlyRollup, models.DailyRollup)
        for row in session.execute(select(table.__table__).order_by("meter_id", "start"))
    ]


def test_readings_and_register_reads_are_hypertables(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        assert partitions.layout(conn) == "timescaledb"
        assert partitions.layout(conn, partitions.REGISTERS) == "timescaledb"
        dims = conn.execute(
            text(
                "SELECT hypertable_name, column_name, time_interval "
                "FROM timescaledb_information.dimensions ORDER BY 1"
            )
        ).all()
    engine.dispose()
    assert [tuple(d) for d in dims] == [
        ("readings", "start", timedelta(days=7)),
        ("register_reads", "at", timedelta(days=30)),
    ]


def test_the_ingest_stores_each_reading_once_in_chunks_with_exact_rollups(
    fleet: tuple[Engine, sessionmaker[Session], list[Meter]],
) -> None:
    engine, sessions, meters = fleet
    directory = store_days(sessions, meters)
    # A redelivery of a whole day takes the upsert path and adds nothing.
    with sessions.begin() as session:
        write_batch(session, interval_batch(meters, STARTS[0], 96), directory)
    # Four intervals lost, estimated by VEE, then their actuals arrive late.
    gap = [STARTS[2] + timedelta(minutes=15 * k) for k in range(40, 44)]
    with sessions.begin() as session:
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == meters[0].id, models.Reading.start.in_(gap)
            )
        )
        summary = run_vee(
            session, meters[0].id, STARTS[2], STARTS[2] + timedelta(days=1), now=datetime.now(UTC)
        )
        assert summary.estimated_linear == 4
    with sessions.begin() as session:
        write_batch(session, interval_batch(meters[:1], STARTS[2], 96), directory)

    stored = readings_by_table(engine.url.render_as_string(hide_password=False))
    assert sum(stored.values()) == len(meters) * len(STARTS) * 96
    assert all(name.startswith(CHUNKS) for name in stored), stored
    reads = readings_by_table(engine.url.render_as_string(hide_password=False), "register_reads")
    assert sum(reads.values()) == len(meters) * len(STARTS)
    assert all(name.startswith(CHUNKS) for name in reads), reads
    with sessions() as session:
        conn = session.connection()
        # Chunks, never the monthly partitions of the other layout.
        assert directory.months.ensure(conn, STARTS) == []
        assert conn.scalar(text("SELECT to_regclass('readings_p202412')")) is None
        chunks = conn.execute(
            text(
                "SELECT range_start, range_end FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'readings' ORDER BY 1"
            )
        ).all()
        assert len(chunks) == len(stored)
        assert all(end - start == timedelta(days=7) for start, end in chunks)
        qualities = session.execute(
            select(models.Reading.quality, func.count())
            .where(models.Reading.meter_id == meters[0].id)
            .group_by(models.Reading.quality)
        ).all()
        assert [tuple(q) for q in qualities] == [("valid", len(STARTS) * 96)]
        audit = session.execute(
            select(models.ReadingAudit.start, models.ReadingAudit.source).order_by(
                models.ReadingAudit.changed_at, models.ReadingAudit.start
            )
        ).all()
        assert [tuple(a) for a in audit] == [(t, "vee") for t in gap] + [(t, "ingest") for t in gap]
        # The ingest's incremental rollups equal a rebuild from the stored intervals.
        kept = rollup_rows(session)
    with sessions.begin() as session:
        span = rollups.rebuild_span(session, [m.id for m in meters])
        assert span is not None
        rollups.rebuild(session, [m.id for m in meters], directory.zones, *span)
    with sessions() as session:
        assert rollup_rows(session) == kept


def test_health_reads_chunk_statistics_and_counts_a_new_chunk(
    fleet: tuple[Engine, sessionmaker[Session], list[Meter]],
) -> None:
    engine, sessions, meters = fleet
    directory = store_days(sessions, meters)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE readings"))
    with sessions() as session:
        assert queries.reading_count(session) == (len(meters) * len(STARTS) * 96, False)
    # A week never analysed is counted row by row, so the health figure still has it.
    with sessions.begin() as session:
        write_batch(session, interval_batch(meters, datetime(2025, 3, 3, tzinfo=UTC), 8), directory)
    with sessions() as session:
        assert queries.reading_count(session) == (len(meters) * (len(STARTS) * 96 + 8), False)


def test_a_range_read_scans_only_its_chunks_by_primary_key(
    fleet: tuple[Engine, sessionmaker[Session], list[Meter]],
) -> None:
    engine, sessions, meters = fleet
    store_days(sessions, meters)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE readings"))
        wanted = conn.scalars(
            text(
                "SELECT chunk_name FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'readings' AND range_end > :a AND range_start < :b"
            ),
            {"a": STARTS[1], "b": STARTS[1] + timedelta(days=1)},
        ).all()
        conn.execute(text("SET enable_seqscan = off"))  # a few hundred rows: force the index
        plan = conn.scalar(
            text(
                "EXPLAIN (FORMAT JSON) SELECT * FROM readings WHERE meter_id = :m "
                "AND start >= :a AND start < :b"
            ),
            {"m": meters[0].id, "a": STARTS[1], "b": STARTS[1] + timedelta(days=1)},
        )
    nodes = list(_nodes(plan[0]["Plan"]))
    relations = [n["Relation Name"] for n in nodes if "Relation Name" in n]
    indexes = [n["Index Name"] for n in nodes if "Index Name" in n]
    assert sorted(relations) == sorted(wanted)
    assert len(indexes) == len(relations), nodes
    assert all(name.endswith("_pk_readings") for name in indexes), indexes


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_downgrade_and_upgrade_keep_every_reading(
    fleet: tuple[Engine, sessionmaker[Session], list[Meter]],
) -> None:
    engine, sessions, meters = fleet
    store_days(sessions, meters)
    url = engine.url.render_as_string(hide_password=False)
    config = alembic_config(url)
    # register_reads: back to one table below 0011 and into a hypertable again, reads kept
    # (below 0009 the table is gone, so this stops above it).
    command.downgrade(config, "0010_audit_kvarh")
    with sessions() as session:
        assert partitions.layout(session.connection(), partitions.REGISTERS) == "plain"
        assert session.scalar(select(func.count()).select_from(models.RegisterRead)) == 6
    command.upgrade(config, "head")
    with sessions() as session:
        assert partitions.layout(session.connection(), partitions.REGISTERS) == "timescaledb"
    reads = readings_by_table(url, partitions.REGISTERS)
    assert sum(reads.values()) == 6
    assert all(name.startswith(CHUNKS) for name in reads), reads
    command.downgrade(config, "0005_hourly_cover")
    with sessions() as session:
        assert partitions.layout(session.connection()) == "plain"
        assert session.scalar(select(func.count()).select_from(models.Reading)) == 576
    command.upgrade(config, "head")
    with sessions() as session:
        assert partitions.layout(session.connection()) == "timescaledb"
        assert session.scalar(select(func.count()).select_from(models.Reading)) == 576
    stored = readings_by_table(url)
    assert all(name.startswith(CHUNKS) for name in stored), stored


def test_the_switch_keeps_monthly_partitions_beside_timescaledb(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTLINE_TIMESCALEDB", "off")
    url = fresh_database(server, "wattline_tsdb_off")
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert partitions.layout(conn) == "monthly"
        assert partitions.layout(conn, partitions.REGISTERS) == "monthly"
        assert not conn.scalar(
            text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        )
    engine.dispose()
