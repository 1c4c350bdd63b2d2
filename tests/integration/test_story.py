"""The presenter's story through Flask's test client on a real database: steps, audit, gating."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import create_app
from app import mqtt as mqtt_adapter
from app.db import models
from app.db.seed import DEMO_LOGINS
from app.db.session import make_engine, make_sessionmaker
from simulator.control import control_topic
from tests.factories import T0, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a seeded database (21 meters, three per utility)."""
    seed_database(database_url, meters=21, intervals=4)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["commands"].close()
    flask_app.extensions["wattline"]["engine"].dispose()


def start(client: FlaskClient, segment: str) -> Any:
    """Press a story button on the demo control page."""
    token = csrf_from(client.get("/demo/").get_data(as_text=True))
    return client.post(f"/story/{segment}/start", data={"csrf_token": token})


def audit_rows(database_url: str, action: str) -> list[models.AuditEntry]:
    """Read the audit log's entries for an action."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = list(
            session.scalars(select(models.AuditEntry).where(models.AuditEntry.action == action))
        )
    engine.dispose()
    return rows


def test_story_starts_audited_and_walks_fleet_command_roi(app: Flask, database_url: str) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    demo = client.get("/demo/").get_data(as_text=True)
    assert 'id="story-iou"' in demo
    assert 'id="story-security"' in demo
    assert client.post("/story/iou/start").status_code == 400  # no CSRF token
    assert audit_rows(database_url, "demo.story") == []

    response = start(client, "iou")
    assert response.status_code == 302
    assert response.headers["Location"] == "/story/iou/1"
    (entry,) = audit_rows(database_url, "demo.story")
    assert entry.actor == "se@wattline.example"
    # The IOU with the most meters is featured; its region is where the storm will be.
    assert entry.details["segment"] == "iou"
    assert entry.details["utility"] == "glpl"
    assert entry.details["region"] == "Midwest"

    step1 = client.get("/story/iou/1")
    assert step1.headers["Location"] == "/?utility=glpl"
    page = client.get("/?utility=glpl").get_data(as_text=True)
    assert "step 1 of 4: The live fleet" in page
    assert 'href="/story/iou/2"' in page
    assert 'id="story-back"' not in page

    page = client.get("/story/iou/2", follow_redirects=True).get_data(as_text=True)
    assert "step 2 of 4" in page
    assert 'id="story-incident"' in page
    assert "(Midwest)" in page

    step3 = client.get("/story/iou/3")
    location = step3.headers["Location"]
    assert location.startswith("/meters/")
    assert location.endswith("#commands")
    meter_id = location.removeprefix("/meters/").removesuffix("#commands")
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        meter = session.get(models.Meter, meter_id)
        assert meter is not None
        assert meter.utility.segment == "iou"
    page = client.get(f"/meters/{meter_id}").get_data(as_text=True)
    assert "step 3 of 4" in page
    assert 'data-command="ping"' in page

    step4 = client.get("/story/iou/4")
    assert step4.headers["Location"] == "/roi?segment=iou&utility=glpl"
    roi = client.get(step4.headers["Location"]).get_data(as_text=True)
    assert '<option value="glpl" data-segment="iou" selected>' in roi
    assert "step 4 of 4: The ROI" in roi
    assert 'id="story-next"' not in roi

    assert client.get("/story/iou/5").status_code == 404
    assert client.get("/story/iou/0").status_code == 404
    token = csrf_from(roi)
    assert client.post("/story/telecom/start", data={"csrf_token": token}).status_code == 404
    # A step of another segment's story than the one running sends the presenter back.
    assert client.get("/story/security/2").headers["Location"] == "/demo/"

    assert client.post("/story/exit", data={"csrf_token": token}).status_code == 302
    assert "story-banner" not in client.get("/").get_data(as_text=True)
    engine.dispose()


def test_command_step_picks_the_meter_the_incident_hit(app: Flask, database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        meters = list(
            session.scalars(
                select(models.Meter)
                .join(models.Utility)
                .where(models.Utility.segment == "security")
                .order_by(models.Meter.id)
            )
        )
        hit = meters[-1]  # not the first by id, which is the fallback
        session.execute(update(models.Meter).values(status="online"))
        session.add(models.Event(meter_id=hit.id, event_id="t1", type="tamper", severity="critical",
                                 at=T0, details={}, received_at=datetime.now(UTC)))  # fmt: skip
        hit_id, fallback_id = hit.id, meters[0].id
    engine.dispose()
    assert hit_id != fallback_id
    client = app.test_client()
    assert login(client, "admin@wattline.example") == 302
    start(client, "security")
    assert client.get("/story/security/3").headers["Location"] == f"/meters/{hit_id}#commands"
    page = client.get(f"/meters/{hit_id}").get_data(as_text=True)
    assert "reported tamper and is online again" in page
    assert 'data-command="read"' in page


NOT_PRESENTERS = [d for d in DEMO_LOGINS if d.role not in ("vendor_admin", "vendor_se")]


@pytest.mark.parametrize("demo_login", NOT_PRESENTERS, ids=lambda d: d.email)
def test_story_is_refused_to_everyone_but_vendor_staff(app: Flask, demo_login: Any) -> None:
    client = app.test_client()
    assert login(client, demo_login.email) == 302
    page = client.get("/").get_data(as_text=True)
    token = csrf_from(page)
    assert "story-start" not in page
    assert client.post("/story/iou/start", data={"csrf_token": token}).status_code == 403
    assert client.get("/story/iou/1").status_code == 403
    assert client.post("/story/iou/incident", data={"csrf_token": token}).status_code == 403
    assert client.post("/story/exit", data={"csrf_token": token}).status_code == 403


def test_story_needs_a_login(app: Flask) -> None:
    response = app.test_client().get("/story/iou/1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_presenter_mode_offers_the_story_buttons(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert 'id="presenter-story-iou"' not in client.get("/").get_data(as_text=True)
    client.post("/presenter/toggle", data={"next": "/", "csrf_token": token})
    page = client.get("/").get_data(as_text=True)
    assert 'id="presenter-story-iou"' in page
    assert 'id="presenter-story-security"' in page


@pytest.fixture
def control_messages(mqtt_url: str, topic_prefix: str) -> Iterator[list[dict[str, Any]]]:
    """Collect what the simulator would receive on its control topic."""
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    client = mqtt_adapter.make_client(mqtt_url, f"wltest-story-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, *a: c.subscribe(control_topic(topic_prefix), qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, msg: seen.append(orjson.loads(msg.payload))
    mqtt_adapter.connect(client)
    client.loop_start()
    assert ready.wait(10)
    yield seen
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize(("segment", "kind", "region"), [("iou", "outage", "Midwest"),
                                                         ("security", "tamper", None)])  # fmt: skip
def test_incident_step_starts_the_segments_incident_now(
    database_url: str,
    tmp_path: Path,
    mqtt_url: str,
    topic_prefix: str,
    control_messages: list[dict[str, Any]],
    segment: str,
    kind: str,
    region: str | None,
) -> None:
    seed_database(database_url, meters=21, intervals=1)
    settings = replace(make_settings(database_url, tmp_path), mqtt_url=mqtt_url,
                       topic_prefix=topic_prefix)  # fmt: skip
    app = create_app(settings)
    try:
        client = app.test_client()
        assert login(client, "se@wattline.example") == 302
        start(client, segment)
        token = csrf_from(
            client.get(f"/story/{segment}/2", follow_redirects=True).get_data(as_text=True)
        )
        response = client.post(f"/story/{segment}/incident", data={"csrf_token": token})
        assert response.headers["Location"] == f"/story/{segment}/2"
        page = client.get(f"/story/{segment}/2", follow_redirects=True).get_data(as_text=True)
        assert "Started at" in page
        deadline = threading.Event()
        for _ in range(100):
            if control_messages:
                break
            deadline.wait(0.1)
        (message,) = control_messages
        assert message["action"] == "incident"
        assert message["incident"]["kind"] == kind
        assert message["incident"]["select"].get("region") == region
        (entry,) = audit_rows(database_url, "demo.incident")
        assert entry.details["story"] == segment
        assert entry.details["region"] == region
    finally:
        app.extensions["wattline"]["commands"].close()
        app.extensions["wattline"]["engine"].dispose()
