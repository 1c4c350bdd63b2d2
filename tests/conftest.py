"""Shared fixtures: real brokers and real databases, chosen by environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest

from app.broker import EmbeddedBroker

TEST_MQTT_URL = os.environ.get("TEST_MQTT_URL")
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
# CI sets this: there a missing service is a failure, never a skip.
REQUIRE_SERVICES = os.environ.get("WATTLINE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with a reason on a machine without the service; fail in CI, where it must exist."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (WATTLINE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """Start one embedded amqtt broker for the whole session."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(
    params=[
        pytest.param("embedded", marks=pytest.mark.mqtt),
        pytest.param("mosquitto", marks=pytest.mark.mqtt),
    ]
)
def mqtt_url(request: pytest.FixtureRequest) -> str:
    """Yield a broker URL: the embedded broker, and Mosquitto when TEST_MQTT_URL is set."""
    if request.param == "embedded":
        broker: EmbeddedBroker = request.getfixturevalue("embedded_broker")
        return broker.url
    if not TEST_MQTT_URL:
        skip_or_fail("TEST_MQTT_URL not set: no Mosquitto here (CI sets it)")
    return TEST_MQTT_URL


@pytest.fixture
def topic_prefix() -> str:
    """Give each test its own topic prefix so tests sharing a broker never see each other."""
    return f"wltest/{uuid.uuid4().hex[:10]}"


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from app.db.session import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def worker_database(url: str) -> str:
    """Return `url`, or under pytest-xdist a database of the worker's own beside it.

    Each worker resets its database's schema and empties its tables; sharing one would
    have each worker wipe the other's rows mid-test. Created on first use, kept after.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from app.db.session import make_engine

    base = make_url(url)
    name = f"{base.database or 'postgres'}_{worker}"  # no name: the server's default one
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not found:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Reset and migrate the PostgreSQL test database once per session (one per xdist worker)."""
    if not TEST_DATABASE_URL:
        skip_or_fail("TEST_DATABASE_URL not set: no PostgreSQL here (CI sets it)")
    from app.db.migrate import upgrade

    url = worker_database(TEST_DATABASE_URL)
    _reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """Yield a migrated, empty database: an SQLite file, and PostgreSQL when configured."""
    from pathlib import Path

    from app.db.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{Path(str(tmp_path)) / 'test.db'}"
        upgrade(url)
        yield url
        return
    yield request.getfixturevalue("empty_postgres_url")


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> str:
    """Return the migrated PostgreSQL test database with every table emptied."""
    from sqlalchemy import text

    from app.db.models import Base
    from app.db.session import make_engine

    engine = make_engine(postgres_url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_url
