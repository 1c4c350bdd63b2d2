"""Shared fixtures: real brokers and real databases, chosen by environment."""

from __future__ import annotations

import gc
import os
import time
import uuid
import warnings
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


@pytest.fixture(autouse=True)
def _collect_embedded_broker_garbage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the embedded broker, finalize the connections amqtt dropped."""
    yield
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("mqtt_url") != "embedded":
        return
    # amqtt leaves the server side of every closed client connection to the garbage
    # collector, whose "unclosed transport" ResourceWarning then fails whichever later test
    # is running (filterwarnings = error). Collect them here, where they are known noise.
    time.sleep(0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Reset and migrate the PostgreSQL test database once per session."""
    if not TEST_DATABASE_URL:
        skip_or_fail("TEST_DATABASE_URL not set: no PostgreSQL here (CI sets it)")
    from app.db.migrate import upgrade

    _reset_postgres(TEST_DATABASE_URL)
    upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """Yield a migrated, empty database: an SQLite file, and PostgreSQL when configured."""
    from pathlib import Path

    from sqlalchemy import text

    from app.db.migrate import upgrade
    from app.db.models import Base
    from app.db.session import make_engine

    if request.param == "sqlite":
        url = f"sqlite:///{Path(str(tmp_path)) / 'test.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url
