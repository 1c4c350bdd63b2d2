"""Commands end to end on a real broker and database: portal API → MQTT → meter → ingest → API."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app import mqtt as mqtt_adapter
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import commands as rules
from app.domain import telemetry
from app.ingest import worker as worker_module
from app.ingest.worker import IngestWorker
from simulator.fleet import Meter
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import make_settings

pytestmark = pytest.mark.mqtt


class Responder:
    """A minimal scripted meter endpoint: answers per a table, or stays silent (unreachable)."""

    def __init__(self, url: str, prefix: str, meter: Meter) -> None:
        self.meter = meter
        self.received: list[telemetry.Command] = []
        self.subscribed = threading.Event()
        self.client = mqtt_adapter.make_client(url, f"wltest-meter-{uuid.uuid4().hex[:8]}")
        self.reply_topic = telemetry.topic_for(meter.utility_id, meter.id, "reply", prefix)
        self.cmd_topic = telemetry.topic_for(meter.utility_id, meter.id, "cmd", prefix)
        self.client.on_connect = lambda c, *a: c.subscribe(self.cmd_topic, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        mqtt_adapter.connect(self.client)
        self.client.loop_start()

    def _reply(self, command_id: str, status: str, result: Any) -> None:
        payload = telemetry.encode_reply(telemetry.Reply(command_id, status, result))
        self.client.publish(self.reply_topic, payload, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        command = telemetry.decode_command(msg.payload)
        self.received.append(command)
        if command.command == "ping":
            self._reply(command.id, "ok", {"meter_id": self.meter.id, "signal_dbm": -71.0})
        elif command.command == "disconnect":
            self._reply(command.id, "accepted", {"relay": "opening"})
            self._reply(command.id, "ok", {"relay": "open"})
            # QoS 1 may deliver the first answer again after the final one.
            self._reply(command.id, "accepted", {"relay": "opening"})
        elif command.command == "demand_reset":
            pass  # an unreachable meter: no reply at all

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def setup(
    mqtt_url: str,
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Flask, Meter, Responder]]:
    """Seed a fleet, run an ingest worker, a scripted meter and a portal on the same broker."""
    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.2)
    fleet = seed_database(database_url, meters=7, intervals=4)
    meter = next(m for m in fleet if m.utility_id == "millbrook")
    worker = IngestWorker(
        mqtt_url, database_url, prefix=topic_prefix, client_id=f"wltest-{uuid.uuid4().hex[:8]}"
    )
    worker.start()
    assert worker.wait_connected(10)
    responder = Responder(mqtt_url, topic_prefix, meter)
    assert responder.subscribed.wait(10)
    settings = replace(
        make_settings(database_url, tmp_path), mqtt_url=mqtt_url, topic_prefix=topic_prefix
    )
    app = create_app(settings)
    yield app, meter, responder
    app.extensions["wattline"]["commands"].close()
    app.extensions["wattline"]["engine"].dispose()
    responder.close()
    worker.stop()


def bearer(client: FlaskClient, email: str) -> dict[str, str]:
    """Return bearer-token headers for a demo login."""
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.get_json()['token']}"}


def follow(client: FlaskClient, url: str, headers: dict[str, str], until: set[str]) -> Any:
    """Poll a command until its status is in `until` (or give up after 15 s)."""
    deadline = time.monotonic() + 15
    body = client.get(url, headers=headers).get_json()
    while body["status"] not in until and time.monotonic() < deadline:
        time.sleep(0.05)
        body = client.get(url, headers=headers).get_json()
    return body


def test_ping_round_trip(setup: tuple[Flask, Meter, Responder]) -> None:
    app, meter, responder = setup
    client = app.test_client()
    headers = bearer(client, "ops@millbrook.example")
    sent = client.post(
        f"/api/v1/meters/{meter.id}/commands", json={"command": "ping"}, headers=headers
    )
    assert sent.status_code == 202
    assert sent.get_json()["status"] == "pending"
    done = follow(client, sent.get_json()["url"], headers, {"ok", "error"})
    assert done["status"] == "ok"
    assert done["result"] == {"meter_id": meter.id, "signal_dbm": -71.0}
    assert [c.command for c in responder.received] == ["ping"]
    history = client.get(f"/api/v1/meters/{meter.id}/commands", headers=headers).get_json()
    assert [c["id"] for c in history["commands"]] == [done["id"]]


def test_asynchronous_disconnect_ends_ok_despite_a_late_duplicate(
    setup: tuple[Flask, Meter, Responder], database_url: str
) -> None:
    app, meter, _ = setup
    client = app.test_client()
    headers = bearer(client, "se@wattline.example")
    sent = client.post(
        f"/api/v1/meters/{meter.id}/commands", json={"command": "disconnect"}, headers=headers
    )
    assert sent.status_code == 202
    assert follow(client, sent.get_json()["url"], headers, {"ok"})["result"] == {"relay": "open"}
    time.sleep(0.5)  # let the duplicate "accepted" reach the database, if it were going to win
    assert client.get(sent.get_json()["url"], headers=headers).get_json()["status"] == "ok"
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        actions = session.scalars(select(models.AuditEntry.action)).all()
    engine.dispose()
    assert actions == ["command.send"]


def test_unanswered_command_times_out(
    setup: tuple[Flask, Meter, Responder], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, meter, responder = setup
    monkeypatch.setattr(rules, "REPLY_TIMEOUT", rules.REPLY_TIMEOUT / 100)
    client = app.test_client()
    headers = bearer(client, "ops@millbrook.example")
    sent = client.post(
        f"/api/v1/meters/{meter.id}/commands", json={"command": "demand_reset"}, headers=headers
    )
    assert sent.status_code == 202
    assert follow(client, sent.get_json()["url"], headers, {"timeout"})["status"] == "timeout"
    assert [c.command for c in responder.received] == ["demand_reset"]


def test_roles_tenants_and_bad_requests(setup: tuple[Flask, Meter, Responder]) -> None:
    app, meter, responder = setup
    client = app.test_client()
    url = f"/api/v1/meters/{meter.id}/commands"
    rep = bearer(client, "rep@northgrid.example")
    refused = client.post(url, json={"command": "disconnect"}, headers=rep)
    assert refused.status_code == 403
    other = bearer(client, "rep@prairiemeter.example")
    assert client.post(url, json={"command": "ping"}, headers=other).status_code == 404
    ops = bearer(client, "ops@millbrook.example")
    bad = client.post(url, json={"command": "reboot"}, headers=ops)
    assert (bad.status_code, bad.get_json()["field"]) == (400, "command")
    bad = client.post(
        url, json={"command": "set_schedule", "args": {"schedule": "weekly"}}, headers=ops
    )
    assert (bad.status_code, bad.get_json()["field"]) == (400, "args.schedule")
    assert client.post(url, data="ping", headers=ops).status_code == 400
    assert client.get("/api/v1/commands/nope", headers=ops).status_code == 404
    sent = client.post(url, json={"command": "ping"}, headers=ops).get_json()
    assert client.get(sent["url"], headers=other).status_code == 404
    # Only the one valid command ever reached the meter.
    assert follow(client, sent["url"], ops, {"ok"})["status"] == "ok"
    assert [c.id for c in responder.received] == [sent["id"]]


def test_broker_unreachable_is_a_503_not_a_500(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = seed_database(database_url, meters=7, intervals=1)
    settings = replace(make_settings(database_url, tmp_path), mqtt_url="mqtt://127.0.0.1:9")
    app = create_app(settings)
    client = app.test_client()
    headers = bearer(client, "se@wattline.example")
    response = client.post(
        f"/api/v1/meters/{fleet[0].id}/commands", json={"command": "ping"}, headers=headers
    )
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"
    assert "broker" in response.get_json()["message"]
    app.extensions["wattline"]["engine"].dispose()


def test_a_reply_on_another_meters_topic_does_not_answer_the_command(
    setup: tuple[Flask, Meter, Responder], database_url: str, topic_prefix: str
) -> None:
    """Only the meter the command went to may answer it: a forged reply elsewhere is ignored."""
    app, meter, responder = setup
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        other = session.scalars(select(models.Meter).where(models.Meter.id != meter.id)).first()
    engine.dispose()
    assert other is not None
    client = app.test_client()
    headers = bearer(client, "se@wattline.example")
    sent = client.post(
        f"/api/v1/meters/{meter.id}/commands", json={"command": "demand_reset"}, headers=headers
    )
    assert sent.status_code == 202
    command_id = sent.get_json()["id"]
    forged = telemetry.encode_reply(telemetry.Reply(command_id, "ok", {"forged": True}))
    elsewhere = telemetry.topic_for(other.utility_id, other.id, "reply", topic_prefix)
    responder.client.publish(elsewhere, forged, qos=1)
    responder._reply(command_id, "ok", {"demand_kw": 0.0})  # the meter's own, after it
    done = follow(client, sent.get_json()["url"], headers, {"ok", "error"})
    assert (done["status"], done["result"]) == ("ok", {"demand_kw": 0.0})
