"""Integration fixtures: a private Mosquitto a test may stop and start (the CI one it may not)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import MOSQUITTO, MosquittoProcess
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from simulator.fleet import Meter, build_fleet
from tests.conftest import TEST_MQTT_URL, skip_or_fail


@pytest.fixture
def mosquitto_url() -> str:
    """Return the shared Mosquitto's URL (TEST_MQTT_URL): for features amqtt lacks."""
    if not TEST_MQTT_URL:
        skip_or_fail("TEST_MQTT_URL not set: no Mosquitto here (CI sets it)")
    return TEST_MQTT_URL


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """Yield a running private Mosquitto the test may stop and start; stopped afterwards."""
    if MOSQUITTO is None or not os.access(MOSQUITTO, os.X_OK):
        # CI runs Mosquitto from its Debian package, binary included: missing there, the
        # broker-restart tests must fail, not skip.
        skip_or_fail("no mosquitto binary on PATH or in /usr/sbin: cannot restart a broker")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoProcess(MOSQUITTO, workdir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed ten meters into the database."""
    meters = build_fleet(10, seed=1)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, meters)
    engine.dispose()
    return meters
