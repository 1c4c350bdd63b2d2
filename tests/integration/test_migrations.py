"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db.models import Base
from app.db.partitions import include_object
from app.db.session import make_engine
from tests.factories import seed_database


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            ),
            Base.metadata,
        )
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(tmp_path: object) -> None:
    from pathlib import Path

    from alembic import command
    from sqlalchemy import inspect

    from app.db.migrate import alembic_config, upgrade

    url = f"sqlite:///{Path(str(tmp_path)) / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert "readings" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.postgres
def test_health_counts_readings_of_a_table_migrated_back_below_partitions(
    postgres_url: str,
) -> None:
    """Below 0006 `readings` has no partitions: its own statistics, or a count before any."""
    from alembic import command
    from sqlalchemy import text

    from app.db import queries
    from app.db.migrate import alembic_config, upgrade
    from app.db.session import make_sessionmaker

    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE readings"))
    engine.dispose()
    command.downgrade(alembic_config(postgres_url), "0005_hourly_cover")
    try:
        engine = make_engine(postgres_url)
        with engine.begin() as conn:
            assert (
                conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass"))
                == "r"
            )
            conn.execute(text("TRUNCATE readings"))
        seed_database(postgres_url, meters=2, intervals=8)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            assert queries.reading_count(session) == (16, True)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE readings"))
        with sessions() as session:
            assert queries.reading_count(session) == (16, False)
        engine.dispose()
    finally:
        # Back to head (partitioned again) for the tests after this one.
        upgrade(postgres_url)


def test_downgrade_below_0012_keeps_withdrawn_estimates_on_the_trail(database_url: str) -> None:
    """The audit trail is history: a downgrade that cannot hold a row refuses, it never deletes."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import func, select

    from app.db import models
    from app.db.migrate import alembic_config, upgrade
    from app.db.session import make_sessionmaker

    meter = seed_database(database_url, meters=1, intervals=1)[0]
    engine = make_engine(database_url)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with make_sessionmaker(engine).begin() as session:
        session.add(
            models.ReadingAudit(
                meter_id=meter.id, start=at, changed_at=at, source="vee",
                old_kwh=1.0, old_demand_kw=4.0, old_quality="estimated-linear",
            )
        )  # fmt: skip
    with pytest.raises(RuntimeError, match="1 reading_audit rows record withdrawn estimates"):
        command.downgrade(alembic_config(database_url), "0011_partitioned_register_reads")
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(models.ReadingAudit)) == 1
    engine.dispose()
    upgrade(database_url)


def test_0018_lower_cases_stored_addresses_and_refuses_ones_differing_in_case(
    database_url: str,
) -> None:
    """Addresses typed in mixed case become lower case; two that collide stop the upgrade."""
    from alembic import command
    from sqlalchemy import text

    from app.db.migrate import alembic_config, upgrade

    config = alembic_config(database_url)
    command.downgrade(config, "0017_hourly_cover_quality")
    engine = make_engine(database_url)
    insert = text(
        "INSERT INTO users (email, name, password_hash, role, active) "
        "VALUES (:email, 'x', 'x', 'vendor_se', true)"
    )
    with engine.begin() as conn:
        conn.execute(
            insert,
            [{"email": "Ann@Example.com"}, {"email": "bob@example.com"}, {"email": "ÉMILE@x.fr"}],
        )
    upgrade(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT email FROM users ORDER BY id")).scalars().all()
    assert stored == ["ann@example.com", "bob@example.com", "émile@x.fr"]

    command.downgrade(config, "0017_hourly_cover_quality")
    with engine.begin() as conn:
        conn.execute(insert, [{"email": "BOB@example.com"}, {"email": "Émile@X.fr"}])
    clash = "differ only in case: bob@example.com, émile@x.fr; merge"
    with pytest.raises(RuntimeError, match=re.escape(clash)):
        upgrade(database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE email IN ('BOB@example.com', 'Émile@X.fr')"))
    engine.dispose()
    upgrade(database_url)
