"""The meter page on a real database: power quality, load profile from rollups, events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.localtime import zone_for
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import T0, seed_database
from tests.integration.test_portal import login, make_settings


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed two days of intervals (a Monday and Tuesday) and one tamper event."""
    fleet = seed_database(database_url, meters=7, intervals=192)
    meter = fleet[0]
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        event = telemetry.EventMessage(
            meter.id,
            "t-1",
            "tamper",
            T0 + timedelta(hours=3),
            "critical",
            {"cover": "open", "phases_lost": ["A", "B", "C"], "last_gasp": True},
        )
        topic = telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "event")
        write_batch(session, [Accepted(topic, event, b"", datetime.now(UTC))], MeterDirectory())
    engine.dispose()
    return fleet


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def figure(html: str, name: str) -> dict[str, object]:
    """Parse one of the page's embedded plotly figures."""
    match = re.search(rf'id="{name}-data">(.*?)</script>', html, re.S)
    assert match, name
    parsed: dict[str, object] = json.loads(match.group(1))
    return parsed


def test_meter_page_shows_quality_profile_and_events(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get(f"/meters/{fleet[0].id}").get_data(as_text=True)
    quality = figure(html, "quality-chart")
    names = [t["name"] for t in quality["data"]]  # type: ignore[index,union-attr]
    assert names[:2] == ["Power factor", "PF penalty below 0.90"]
    assert {"Phase A V", "Phase B V", "Phase C V", "kVARh per interval"} <= set(names)
    profile = figure(html, "profile-chart")
    traces = profile["data"]  # type: ignore[index]
    # Two UTC days from Monday 00:00: in the meter's own (US) zone the first hours are
    # still Sunday evening, so they land on the weekend curve.
    zone = zone_for(fleet[0].lon)
    local = [(T0 + timedelta(hours=h)).astimezone(zone) for h in range(48)]
    weekend = sorted({t.hour for t in local if t.weekday() >= 5})
    assert weekend, "a US zone puts UTC Monday midnight on Sunday"
    assert [t["name"] for t in traces] == ["Weekdays", "Weekends"]  # type: ignore[index,union-attr]
    assert len(traces[0]["x"]) == 24  # type: ignore[index]
    assert traces[1]["x"] == weekend  # type: ignore[index]
    events = html.split('id="meter-events"', 1)[1].split("</table>", 1)[0]
    assert "tamper" in events
    assert "cover: open" in events
    # In words, not Python's repr ("phases_lost: ['A', 'B', 'C'] · last_gasp: True").
    assert "phases lost: A, B, C · last gasp: yes" in events
