"""The live fleet page's Server-Sent Events and map data, on a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app import create_app
from app.db import models
from app.db.queries import PastLoads, fleet_load_by_segment
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.access import Scope
from app.ingest.store import Accepted, MeterDirectory, write_batch
from app.web import fleet as fleet_views
from simulator.fleet import Meter
from tests.factories import T0, make_reading, seed_database
from tests.integration.test_portal import login, make_settings

NORTHGRID = {"glpl", "atlantic", "millbrook", "fedcenter"}


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed 21 meters with a day of readings each."""
    return seed_database(database_url)


@pytest.fixture
def app(
    database_url: str, tmp_path: Path, fleet: list[Meter], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """A portal whose streams poll quickly."""
    monkeypatch.setattr(fleet_views, "POLL_SECONDS", 0.05)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def publish(database_url: str, batch: list[Accepted]) -> None:
    """Store messages the way the ingest worker does."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        write_batch(session, batch, MeterDirectory())
    engine.dispose()


def interval(meter: Meter, start: datetime, count: int) -> Accepted:
    """An interval message of `count` readings for a meter."""
    readings = tuple(make_reading(s) for s in telemetry.interval_range(start, count))
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
        telemetry.IntervalMessage(meter.id, readings),
        b"",
        datetime.now(UTC),
    )


def event(meter: Meter, event_id: str, kind: str) -> Accepted:
    """An event message for a meter."""
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "event"),
        telemetry.EventMessage(meter.id, event_id, kind, datetime.now(UTC), "critical"),
        b"",
        datetime.now(UTC),
    )


def fleet_events(client: FlaskClient, url: str = "/fleet/stream") -> Iterator[dict[str, object]]:
    """Open the stream and yield each `fleet` event's data as it arrives."""
    response = client.get(url, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            message, buffer = buffer.split("\n\n", 1)
            if message.startswith("event: fleet\n"):
                yield json.loads(message.split("data: ", 1)[1])


def test_stream_pushes_new_readings_and_events_for_the_tenant_only(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    stream = fleet_events(client)
    first = next(stream)
    mine = [m for m in fleet if m.utility_id in NORTHGRID]
    totals = first["totals"]
    assert isinstance(totals, dict)
    assert totals["meters"] == len(mine)
    before = totals["readings_last_minute"]
    other = next(m for m in fleet if m.utility_id not in NORTHGRID)

    publish(
        database_url,
        [
            interval(mine[0], datetime(2026, 3, 3, tzinfo=UTC), 4),
            interval(other, datetime(2026, 3, 3, tzinfo=UTC), 4),
            event(mine[0], "tamper-1", "tamper"),
            event(other, "tamper-2", "tamper"),
        ],
    )
    update = next(stream)
    totals = update["totals"]
    assert isinstance(totals, dict)
    assert totals["readings_last_minute"] == before + 4
    feed = update["events"]
    assert isinstance(feed, list)
    assert [(e["meter_id"], e["type"]) for e in feed] == [(mine[0].id, "tamper")]


def test_one_utility_view_narrows_counts_map_feed_and_stream(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    """`?utility=` (the story's first step) shows that utility's fleet in every part."""
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    glpl = [m for m in fleet if m.utility_id == "glpl"]
    atlantic = next(m for m in fleet if m.utility_id == "atlantic")
    html = client.get("/?utility=glpl").get_data(as_text=True)
    assert f'data-total="meters">{len(glpl)}<' in html
    assert 'data-utility="glpl"' in html
    assert 'data-utility="atlantic"' not in html
    assert 'data-map-url="/fleet/map?utility=glpl"' in html
    assert 'data-stream-url="/fleet/stream?utility=glpl"' in html
    points = client.get("/fleet/map?utility=glpl").get_json()["meters"]
    assert {p["id"] for p in points} == {m.id for m in glpl}

    stream = fleet_events(client, "/fleet/stream?utility=glpl")
    first = next(stream)
    totals, utilities = first["totals"], first["utilities"]
    assert isinstance(totals, dict)
    assert isinstance(utilities, list)
    assert totals["meters"] == len(glpl)
    assert [u["id"] for u in utilities] == ["glpl"]
    publish(database_url, [event(glpl[0], "tamper-g", "tamper"), event(atlantic, "t-a", "tamper")])
    feed = next(stream)["events"]
    assert isinstance(feed, list)
    assert [e["meter_id"] for e in feed] == [glpl[0].id]


def test_a_utility_outside_the_scope_shows_the_users_whole_fleet(
    app: Flask, fleet: list[Meter]
) -> None:
    """Naming another tenant's utility neither shows it nor says whether it exists."""
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    mine = {m.id for m in fleet if m.utility_id in NORTHGRID}
    html = client.get("/?utility=cascade").get_data(as_text=True)
    assert f'data-total="meters">{len(mine)}<' in html
    assert 'data-utility="cascade"' not in html
    assert "Show the whole fleet" not in html
    points = client.get("/fleet/map?utility=cascade").get_json()["meters"]
    assert {p["id"] for p in points} == mine


def test_stream_needs_login(app: Flask) -> None:
    assert app.test_client().get("/fleet/stream").status_code == 302


def test_map_points_are_tenant_scoped(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    assert login(client, "ops@millbrook.example") == 302
    points = client.get("/fleet/map").get_json()["meters"]
    assert {p["id"] for p in points} == {m.id for m in fleet if m.utility_id == "millbrook"}
    assert all(24 < p["lat"] < 50 and -125 < p["lon"] < -66 for p in points)


def test_fleet_page_renders_the_first_snapshot(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get("/").get_data(as_text=True)
    assert f'data-total="meters">{len(fleet)}<' in html
    assert 'id="fleet-map"' in html
    assert "No events yet." in html


def test_fleet_load_reads_hourly_rollups(database_url: str, fleet: list[Meter]) -> None:
    """Each hour's average kW per segment is the sum of its four intervals' kWh over meters."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = fleet_load_by_segment(session, Scope(everything=True))
    engine.dispose()
    segments = {"glpl": "iou", "atlantic": "iou", "cascade": "iou", "millbrook": "service_bureau",
                "prec": "service_bureau", "fedcenter": "security", "riverton": "security"}  # fmt: skip
    meters = {
        seg: sum(segments[m.utility_id] == seg for m in fleet) for seg in set(segments.values())
    }
    expected = {
        (T0 + timedelta(hours=h), seg): n * sum(10.0 + i % 7 for i in range(4 * h, 4 * h + 4))
        for h in range(24)
        for seg, n in meters.items()
    }
    assert {(start, seg): round(kw, 6) for start, seg, kw in rows} == expected


def test_fleet_load_keeps_past_hours_a_while_and_reads_the_newest_hour_fresh(
    database_url: str, fleet: list[Meter]
) -> None:
    """Older hours come from the cache until it expires; the newest two never do.

    The cache is keyed by scope (a distributor never gets the fleet-wide sums) and by the
    window, so a reading that opens a new hour moves the whole chart at once.
    """
    clock = [0.0]
    past = PastLoads(ttl=300.0, timer=lambda: clock[0])
    everything, northgrid = Scope(everything=True), Scope(distributor_id="northgrid")
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    def load(scope: Scope, cache: PastLoads | None = past) -> dict[tuple[datetime, str], float]:
        with sessions() as session:
            rows = fleet_load_by_segment(session, scope, past=cache)
        return {(start, seg): round(kw, 6) for start, seg, kw in rows}

    assert load(everything) == load(everything, None)
    assert load(northgrid) == load(northgrid, None) != load(everything, None)

    # A late actual raises a past hour's rollup and the newest two hours', for one meter.
    meter = next(m for m in fleet if m.utility_id == "glpl")
    late, newest = T0 + timedelta(hours=10), T0 + timedelta(hours=23)
    previous = newest - timedelta(hours=1)
    with sessions.begin() as session:
        session.execute(
            update(models.HourlyRollup)
            .where(
                models.HourlyRollup.meter_id == meter.id,
                models.HourlyRollup.start.in_([late, previous, newest]),
            )
            .values(kwh=models.HourlyRollup.kwh + 100.0)
        )
    before, fresh = load(everything), load(everything, None)
    assert before[(newest, "iou")] == fresh[(newest, "iou")]
    assert before[(previous, "iou")] == fresh[(previous, "iou")]
    assert before[(late, "iou")] == round(fresh[(late, "iou")] - 100.0, 6)
    clock[0] += 299.0
    assert load(everything)[(late, "iou")] == before[(late, "iou")]
    clock[0] += 2.0
    assert load(everything) == fresh
    assert load(northgrid) == load(northgrid, None)

    # The first quarter of a new hour is not drawn: one quarter's kWh is not the hour's kW.
    quarters = [interval(meter, T0 + timedelta(hours=24, minutes=15 * q), 1) for q in range(4)]
    publish(database_url, quarters[:1])
    assert max(start for start, _ in load(everything, None)) == newest
    # Its last quarter completes the hour and moves the window: the cached hours are not
    # reused.
    publish(database_url, quarters[1:])
    moved, recomputed = load(everything), load(everything, None)
    engine.dispose()
    assert moved == recomputed
    assert min(start for start, _ in moved) == T0 + timedelta(hours=1)
    assert max(start for start, _ in moved) == T0 + timedelta(hours=24)


def test_streams_past_the_slots_get_one_snapshot_and_poll(app: Flask) -> None:
    """Eight open fleet pages held all eight portal threads; past the slots a page polls."""
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302

    def opened() -> tuple[Any, Iterator[str]]:
        response = client.get("/fleet/stream", buffered=False)
        chunks = (c.decode() if isinstance(c, bytes) else c for c in response.response)
        return response, chunks

    held = []
    for _ in range(fleet_views.STREAM_SLOTS):
        response, chunks = opened()
        assert next(chunks).startswith(f"retry: {int(fleet_views.POLL_SECONDS * 1000)}")
        held.append(response)
    busy, chunks = opened()
    rest = list(chunks)  # ends by itself: one snapshot, then the client retries later
    # Told it is busy (the page says "updating every 15 s"), then one snapshot.
    assert (
        rest[0]
        == f"retry: {int(fleet_views.BUSY_RETRY_SECONDS * 1000)}\nevent: busy\ndata: {{}}\n\n"
    )
    assert len(rest) == 2
    assert rest[1].startswith("event: fleet\ndata: ")
    busy.close()
    held.pop().close()  # a page closes: its slot is free again
    response, chunks = opened()
    assert next(chunks).startswith(f"retry: {int(fleet_views.POLL_SECONDS * 1000)}")
    response.close()
    for response in held:
        response.close()
