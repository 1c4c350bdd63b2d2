"""Alarms through Flask's test client on a real database: derivation, tenancy, ack and audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app import create_app
from app.db import alarm_queries, models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import PASSWORD, T0, make_reading, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings


def accepted(meter: Meter, message: telemetry.EventMessage | telemetry.IntervalMessage) -> Accepted:
    """Wrap a message as the ingest would."""
    kind = "event" if isinstance(message, telemetry.EventMessage) else "interval"
    topic = telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, kind)
    return Accepted(topic, message, b"", datetime.now(UTC))


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed the fleet, then a tamper (GLPL), an outage and a restoration (Cascade), an offline
    meter (Atlantic) and a next day of poor power factor (a second GLPL meter)."""
    fleet = seed_database(database_url)
    glpl = sorted((m for m in fleet if m.utility_id == "glpl"), key=lambda m: m.id)
    cascade = next(m for m in fleet if m.utility_id == "cascade")
    atlantic = next(m for m in fleet if m.utility_id == "atlantic")
    at = T0 + timedelta(hours=5)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        batch = [
            accepted(glpl[0], telemetry.EventMessage(glpl[0].id, "t1", "tamper", at, "critical")),
            accepted(cascade, telemetry.EventMessage(cascade.id, "o1", "power_outage", at)),
            accepted(cascade, telemetry.EventMessage(cascade.id, "r1", "power_restored", at)),
            accepted(
                glpl[1],
                telemetry.IntervalMessage(
                    glpl[1].id,
                    tuple(
                        make_reading(s, kwh=10.0, kvarh=10.0)
                        for s in telemetry.interval_range(T0 + timedelta(days=1), 96)
                    ),
                ),
            ),
        ]
        write_batch(session, batch, MeterDirectory())
        session.execute(
            update(models.Meter)
            .where(models.Meter.id == atlantic.id)
            .values(status="offline", status_at=at)
        )
    engine.dispose()
    return fleet


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def alarms_of(client: FlaskClient, state: str = "open") -> dict[tuple[str, str], str]:
    """Map (kind, utility meter prefix) to key for the caller's alarms."""
    body = client.get("/api/v1/alarms", query_string={"state": state}).get_json()
    return {(a["kind"], a["meter_id"]): a["key"] for a in body["alarms"]}


def test_alarms_are_derived_and_tenant_scoped(app: Flask, fleet: list[Meter]) -> None:
    by_id = {m.id: m for m in fleet}
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    kinds = {(kind, by_id[meter].utility_id) for kind, meter in alarms_of(client)}
    assert kinds == {("tamper", "glpl"), ("outage", "cascade"), ("comms_loss", "atlantic"),
                     ("low_pf", "glpl")}  # fmt: skip
    rep = app.test_client()
    assert login(rep, "rep@northgrid.example") == 302
    assert {by_id[m].utility_id for _, m in alarms_of(rep)} == {"glpl", "atlantic"}
    viewer = app.test_client()
    assert login(viewer, "ops@millbrook.example") == 302
    assert alarms_of(viewer) == {}


def test_a_tenants_low_power_factor_day_ends_at_its_own_newest_data(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    """Another tenant's meters days ahead must not move the window past this tenant's data."""
    glpl = sorted((m for m in fleet if m.utility_id == "glpl"), key=lambda m: m.id)
    cascade = next(m for m in fleet if m.utility_id == "cascade")  # Prairie Meter's
    ahead = telemetry.IntervalMessage(
        cascade.id,
        tuple(
            make_reading(s, kwh=10.0, kvarh=1.0)
            for s in telemetry.interval_range(T0 + timedelta(days=5), 4)
        ),
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        write_batch(session, [accepted(cascade, ahead)], MeterDirectory())
    engine.dispose()
    manager = app.test_client()
    assert login(manager, "manager@northgrid.example") == 302
    assert ("low_pf", glpl[1].id) in alarms_of(manager)
    # The vendor's window is the whole fleet's last day, which GLPL's poor day is not in.
    vendor = app.test_client()
    assert login(vendor, "se@wattline.example") == 302
    assert ("low_pf", glpl[1].id) not in alarms_of(vendor)


def test_acknowledge_by_form_is_audited_once(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "manager@northgrid.example") == 302
    key = next(k for (kind, _), k in alarms_of(client).items() if kind == "tamper")
    page = client.get("/alarms/").get_data(as_text=True)
    assert f'value="{key}"' in page
    # Each note field is named for its alarm, not one "Note" after another.
    notes = re.findall(r'<label class="sr-only" for="note-\d+">([^<]+)</label>', page)
    assert notes
    assert all(n.startswith("Note for ") and " at " in n for n in notes), notes
    no_csrf = client.post("/alarms/acknowledge", data={"key": key})
    assert no_csrf.status_code == 400
    # A NUL in a form field never reaches the database (PostgreSQL text cannot hold it).
    nul = client.post(
        "/alarms/acknowledge",
        data={"key": key, "note": "a\x00b", "csrf_token": csrf_from(page)},
    )
    assert nul.status_code == 400
    assert "note: must not contain NUL characters" in nul.get_data(as_text=True)
    data = {"key": key, "note": "crew dispatched", "csrf_token": csrf_from(page)}
    assert client.post("/alarms/acknowledge", data=data).status_code == 302
    assert client.post("/alarms/acknowledge", data=data).status_code == 302  # idempotent
    assert key not in alarms_of(client).values()
    acked = client.get("/api/v1/alarms", query_string={"state": "acknowledged"}).get_json()
    assert [(a["key"], a["acknowledged_by"]) for a in acked["alarms"]] == [
        (key, "manager@northgrid.example")
    ]
    audit = client.get("/alarms/").get_data(as_text=True).split('id="audit"', 1)[1]
    assert audit.count("alarm.acknowledge") == 1
    assert "crew dispatched" in audit


def test_rep_may_not_acknowledge_and_other_tenants_get_404(app: Flask) -> None:
    admin = app.test_client()
    assert login(admin, "se@wattline.example") == 302
    keys = alarms_of(admin)
    outage = next(k for (kind, _), k in keys.items() if kind == "outage")
    tamper = next(k for (kind, _), k in keys.items() if kind == "tamper")

    rep = app.test_client()
    token = rep.post(
        "/api/v1/auth/token", json={"email": "rep@northgrid.example", "password": PASSWORD}
    ).get_json()["token"]
    rep_headers = {"Authorization": f"Bearer {token}"}
    assert rep.post(f"/api/v1/alarms/{tamper}/acknowledge", headers=rep_headers).status_code == 403

    manager = app.test_client()
    token = manager.post(
        "/api/v1/auth/token", json={"email": "manager@northgrid.example", "password": PASSWORD}
    ).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    # Cascade belongs to the other distributor: indistinguishable from a key that never existed.
    assert manager.post(f"/api/v1/alarms/{outage}/acknowledge", headers=headers).status_code == 404
    assert (
        manager.post("/api/v1/alarms/event:999999/acknowledge", headers=headers).status_code == 404
    )
    assert manager.post("/api/v1/alarms/garbage/acknowledge", headers=headers).status_code == 404
    huge = manager.post("/api/v1/alarms/event:3000000000/acknowledge", headers=headers)
    assert huge.status_code == 404  # was a 500 on PostgreSQL (integer out of range)
    # A lone surrogate from a JSON escape is refused before any driver tries to encode it.
    body = '{"note": "crew \\ud83d dispatched"}'
    half = manager.post(
        f"/api/v1/alarms/{tamper}/acknowledge",
        headers={**headers, "Content-Type": "application/json"},
        data=body,
    )
    assert half.status_code == 400
    assert half.get_json()["message"] == (
        "body.note: must be valid Unicode text (a lone surrogate half was sent)"
    )
    bad = manager.post(f"/api/v1/alarms/{tamper}/acknowledge", headers=headers, json={"note": 5})
    assert bad.status_code == 400
    assert "note" in bad.get_json()["message"]
    ok = manager.post(f"/api/v1/alarms/{tamper}/acknowledge", headers=headers, json={"note": "ok"})
    assert ok.status_code == 200
    assert ok.get_json()["acknowledged_by"] == "manager@northgrid.example"
    assert manager.get("/api/v1/alarms?state=bogus", headers=headers).status_code == 400


def test_cookie_api_write_needs_the_csrf_header(app: Flask, database_url: str) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    key = next(iter(alarms_of(client).values()))
    assert client.post(f"/api/v1/alarms/{key}/acknowledge").status_code == 400
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(models.AlarmAck)) == 0
    engine.dispose()


def test_fleet_snapshot_counts_open_alarms(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    html = client.get("/").get_data(as_text=True)
    assert 'data-total="open_alarms">3<' in html


def test_the_open_alarm_count_stops_at_its_cap(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cap the tile says so ("2+" here) instead of counting every alarm each tick."""
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    monkeypatch.setattr(alarm_queries, "OPEN_ALARMS_COUNTED", 3)
    assert 'data-total="open_alarms">3<' in client.get("/").get_data(as_text=True)
    monkeypatch.setattr(alarm_queries, "OPEN_ALARMS_COUNTED", 2)
    assert 'data-total="open_alarms">2+<' in client.get("/").get_data(as_text=True)
    # The alarm list itself still shows every one.
    assert (
        len(client.get("/api/v1/alarms", query_string={"state": "open"}).get_json()["alarms"]) == 3
    )


def test_newer_acknowledged_alarms_never_hide_an_older_open_one(
    app: Flask, database_url: str, fleet: list[Meter]
) -> None:
    # A storm: 205 tamper events on one meter, the newest 200 acknowledged. The 5 older ones
    # are still open: listed, counted and acknowledgeable, however many newer ones there are.
    meter = next(m for m in fleet if m.utility_id == "millbrook")
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        user_id = session.scalar(
            select(models.User.id).where(models.User.email == "ops@millbrook.example")
        )
        events = [
            models.Event(
                meter_id=meter.id,
                event_id=f"storm-{k}",
                type="tamper",
                severity="critical",
                at=now - timedelta(minutes=k),
                details={},
                received_at=now,
            )
            for k in range(205)
        ]
        session.add_all(events)
        session.flush()
        for event in events[:200]:
            session.add(
                models.AlarmAck(key=f"event:{event.id}", meter_id=meter.id, user_id=user_id, at=now)
            )
        oldest = f"event:{events[-1].id}"
    engine.dispose()
    client = app.test_client()
    assert login(client, "ops@millbrook.example") == 302
    body = client.get("/api/v1/alarms", query_string={"state": "open"}).get_json()
    still_open = [a["key"] for a in body["alarms"] if a["meter_id"] == meter.id]
    assert len(still_open) == 5
    assert oldest in still_open
    assert 'data-total="open_alarms">5<' in client.get("/").get_data(as_text=True)
    token = csrf_from(client.get("/alarms/").get_data(as_text=True))
    done = client.post(f"/api/v1/alarms/{oldest}/acknowledge", headers={"X-CSRFToken": token})
    assert done.status_code == 200
    assert 'data-total="open_alarms">4<' in client.get("/").get_data(as_text=True)


def test_a_second_acknowledgement_racing_the_first_gets_the_first(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = app.test_client()
    assert login(manager, "manager@northgrid.example") == 302
    key = next(k for (kind, _), k in alarms_of(manager).items() if kind == "tamper")
    token = csrf_from(manager.get("/alarms/").get_data(as_text=True))
    first = manager.post(f"/api/v1/alarms/{key}/acknowledge", headers={"X-CSRFToken": token})
    assert first.status_code == 200
    # The second request read the alarm before the first committed: it still looks open.
    from app.db import alarm_queries

    real = alarm_queries._with_acks
    calls = iter([lambda _session, alarms: alarms])
    monkeypatch.setattr(alarm_queries, "_with_acks", lambda s, a: next(calls, real)(s, a))
    second = manager.post(f"/api/v1/alarms/{key}/acknowledge", headers={"X-CSRFToken": token})
    assert second.status_code == 200
    assert second.get_json()["acknowledged_by"] == "manager@northgrid.example"
    assert second.get_json()["acknowledged_at"] == first.get_json()["acknowledged_at"]


def _poor_power_factor_day(database_url: str, meter: Meter, day: int) -> None:
    """Store a day of kWh = kVArh (power factor 0.71) for a meter, `day` days after T0."""
    readings = tuple(
        make_reading(s, kwh=10.0, kvarh=10.0)
        for s in telemetry.interval_range(T0 + timedelta(days=day), 96)
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        write_batch(
            session,
            [accepted(meter, telemetry.IntervalMessage(meter.id, readings))],
            MeterDirectory(),
        )
    engine.dispose()


def test_an_acknowledged_low_power_factor_stays_acknowledged_for_a_week_of_data(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    """Raised again each day of data, it lost its acknowledgement at the next day (96 s at demo speed)."""
    meter = sorted((m for m in fleet if m.utility_id == "glpl"), key=lambda m: m.id)[1]
    client = app.test_client()
    assert login(client, "manager@northgrid.example") == 302
    key = alarms_of(client)[("low_pf", meter.id)]
    page = client.get("/alarms/").get_data(as_text=True)
    data = {"key": key, "note": "customer told", "csrf_token": csrf_from(page)}
    assert client.post("/alarms/acknowledge", data=data).status_code == 302
    alarm_queries._PF_CACHE.clear()

    _poor_power_factor_day(database_url, meter, 2)  # the next day of data: a new key
    alarm_queries._PF_CACHE.clear()
    assert ("low_pf", meter.id) not in alarms_of(client)
    acked = alarms_of(client, "acknowledged")
    assert acked[("low_pf", meter.id)] != key
    body = client.get("/api/v1/alarms", query_string={"state": "acknowledged"}).get_json()
    carried = next(a for a in body["alarms"] if a["kind"] == "low_pf")
    assert carried["acknowledged_by"] == "manager@northgrid.example"
    # kWh = kVArh: 0.7071, floored to 0.70 so that it never reads as the threshold itself.
    assert carried["summary"].startswith("power factor 0.70 over the last day of data")

    _poor_power_factor_day(database_url, meter, 2 + 8)  # past a week of data: raised again
    alarm_queries._PF_CACHE.clear()
    assert ("low_pf", meter.id) in alarms_of(client)
