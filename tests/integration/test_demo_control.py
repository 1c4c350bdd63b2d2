"""Presenter controls on a real broker: the portal speeds up the simulator and starts incidents."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app import create_app
from app import mqtt as mqtt_adapter
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from simulator.fleet import Meter
from simulator.publisher import FleetPublisher
from tests.factories import T0, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

pytestmark = pytest.mark.mqtt


class Events:
    """Collect the event messages published under a prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.seen: list[telemetry.EventMessage] = []
        self.ready = threading.Event()
        self.client = mqtt_adapter.make_client(url, f"wltest-events-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *a: c.subscribe(
            telemetry.subscription("event", prefix), qos=1
        )
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        mqtt_adapter.connect(self.client)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.seen.append(telemetry.decode_event(bytes(msg.payload)))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def stack(
    mqtt_url: str, database_url: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[Flask, FleetPublisher, Events]]:
    """A portal and a running simulator sharing a broker and a topic prefix."""
    fleet: list[Meter] = seed_database(database_url, meters=21, intervals=1)
    events = Events(mqtt_url, topic_prefix)
    assert events.ready.wait(10)
    publisher = FleetPublisher(fleet, mqtt_url=mqtt_url, seed=7, start=T0, speed=900.0,
                               prefix=topic_prefix)  # fmt: skip
    thread = threading.Thread(target=publisher.run, kwargs={"duration": 120}, daemon=True)
    thread.start()
    assert publisher.ready.wait(15)
    settings = replace(make_settings(database_url, tmp_path), mqtt_url=mqtt_url,
                       topic_prefix=topic_prefix)  # fmt: skip
    app = create_app(settings)
    yield app, publisher, events
    app.extensions["wattline"]["commands"].close()
    app.extensions["wattline"]["engine"].dispose()
    publisher.stop()
    thread.join(15)
    events.close()


def wait_until(predicate: Any, timeout: float = 15) -> bool:
    """Poll a condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


def test_speed_and_a_live_tamper_reach_the_simulator(
    stack: tuple[Flask, FleetPublisher, Events],
) -> None:
    app, publisher, events = stack
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    token = csrf_from(client.get("/demo/").get_data(as_text=True))
    response = client.post("/demo/speed", data={"speed": "3600", "csrf_token": token})
    assert response.status_code == 302
    assert wait_until(lambda: publisher.speed == 3600.0)
    assert not any(e.type == "tamper" for e in events.seen)
    response = client.post("/demo/incident", data={"incident": "tamper", "csrf_token": token})
    assert response.status_code == 302
    assert wait_until(lambda: any(e.type == "tamper" for e in events.seen)), "no tamper event"
    page = client.get("/demo/").get_data(as_text=True)
    log = page.split('id="demo-log"', 1)[1]
    # In words, not the audit trail's codes ("demo.speed · 3600x").
    assert "Incident: Meter cover removed at a federal building (live)" in log
    assert "Speed: 3600x" in log
    assert "demo.speed" not in log


def test_controls_refuse_other_roles_bad_input_and_reset_clears(
    stack: tuple[Flask, FleetPublisher, Events], database_url: str
) -> None:
    app, _publisher, _events = stack
    rep = app.test_client()
    assert login(rep, "rep@northgrid.example") == 302
    assert rep.get("/demo/").status_code == 403
    se = app.test_client()
    assert login(se, "se@wattline.example") == 302
    token = csrf_from(se.get("/demo/").get_data(as_text=True))
    assert se.post("/demo/speed", data={"speed": "1e9", "csrf_token": token}).status_code == 400
    assert se.post("/demo/speed", data={"speed": "3600"}).status_code == 400  # no CSRF
    bad = se.post("/demo/incident", data={"incident": "storm", "csrf_token": token})
    assert bad.status_code == 400  # a storm needs a region
    engine = make_engine(database_url)

    def events_stored() -> int:
        with make_sessionmaker(engine)() as session:
            return session.scalar(select(func.count()).select_from(models.Event)) or 0

    with make_sessionmaker(engine).begin() as session:
        meter = session.scalars(select(models.Meter)).first()
        assert meter is not None
        session.add(models.Event(meter_id=meter.id, event_id="x", type="tamper", severity="critical",
                                 at=T0, details={}, received_at=datetime.now(UTC)))  # fmt: skip
    assert events_stored() == 1
    # A meter left offline by an earlier incident: an alarm from its state, not a stored row.
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            update(models.Meter)
            .where(models.Meter.id == meter.id)
            .values(status="offline", status_at=datetime.now(UTC) - timedelta(hours=2))
        )
    assert se.get("/api/v1/alarms?state=open").get_json()["alarms"]
    reset = se.post("/demo/reset", data={"csrf_token": token}, follow_redirects=True)
    assert events_stored() == 0
    # The next audience starts from a clean board: the standing alarm is marked as seen.
    assert se.get("/api/v1/alarms?state=open").get_json()["alarms"] == []
    seen = se.get("/api/v1/alarms?state=acknowledged").get_json()["alarms"]
    assert [(a["kind"], a["meter_id"]) for a in seen] == [("comms_loss", meter.id)]
    text = reset.get_data(as_text=True)
    assert "cleared 1 events" in text
    assert "1 standing alarms (comms loss, low power factor) marked as seen" in text
    engine.dispose()
