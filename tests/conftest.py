"""Shared fixtures: real brokers and real databases, chosen by environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from app.broker import EmbeddedBroker

TEST_MQTT_URL = os.environ.get("TEST_MQTT_URL")
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


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
        pytest.skip("TEST_MQTT_URL not set: no Mosquitto here (CI sets it)")
    return TEST_MQTT_URL


@pytest.fixture
def topic_prefix() -> str:
    """Give each test its own topic prefix so tests sharing a broker never see each other."""
    return f"wltest/{uuid.uuid4().hex[:10]}"
