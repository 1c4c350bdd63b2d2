"""Segment pages through Flask's test client on a real database: figures and the access matrix."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, select

from app import create_app
from app.db import models
from app.db.seed import DEMO_LOGINS, DemoLogin
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.localtime import zone_for
from app.domain.segments import Prices
from app.ingest.rollups import refresh
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import T0, seed_database
from tests.integration.test_portal import login, make_settings

PAGES = {"iou": "/segments/iou", "service_bureau": "/segments/service-bureau",
         "security": "/segments/security"}  # fmt: skip
ALLOWED = {
    "vendor_admin": set(PAGES),
    "vendor_se": set(PAGES),
    "distributor_manager": set(PAGES),
    "distributor_rep": set(PAGES),
    "utility_viewer": {"service_bureau"},
    "building_manager": {"security"},
}
DISTRIBUTOR = {"glpl": "northgrid", "atlantic": "northgrid", "cascade": "prairiemeter",
               "millbrook": "northgrid", "prec": "prairiemeter", "fedcenter": "northgrid",
               "riverton": "prairiemeter"}  # fmt: skip
SEGMENT = {"glpl": "iou", "atlantic": "iou", "cascade": "iou", "millbrook": "service_bureau",
           "prec": "service_bureau", "fedcenter": "security", "riverton": "security"}  # fmt: skip


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed 21 meters with a day each; drop half a day of one GLPL meter; add two events."""
    fleet = seed_database(database_url)
    engine = make_engine(database_url)
    glpl = sorted(m.id for m in fleet if m.utility_id == "glpl")[0]
    fed = next(m for m in fleet if m.utility_id == "fedcenter")
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == glpl, models.Reading.start >= T0 + timedelta(hours=12)
            )
        )
        # Keep the rollups equal to the intervals, as every real write path does.
        session.execute(
            delete(models.HourlyRollup).where(
                models.HourlyRollup.meter_id == glpl,
                models.HourlyRollup.start >= T0 + timedelta(hours=12),
            )
        )
        lon = next(m.lon for m in fleet if m.id == glpl)
        refresh(
            session, {glpl: [T0 + timedelta(hours=h) for h in range(12)]}, {glpl: zone_for(lon)}
        )
        events = [
            Accepted(
                telemetry.Topic(telemetry.DEFAULT_PREFIX, fed.utility_id, fed.id, "event"),
                telemetry.EventMessage(fed.id, f"ev-{kind}", kind, T0 + timedelta(hours=3),
                                       "critical" if kind == "tamper" else "info"),
                b"",
                datetime.now(UTC),
            )
            for kind in ("tamper", "power_outage")
        ]  # fmt: skip
        write_batch(session, events, MeterDirectory())
    engine.dispose()
    return fleet


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def rows(html: str, table: str) -> dict[str, str]:
    """Map each data-utility row of a table to its HTML."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r'<tr data-utility="([^"]+)">(.*?)</tr>', body, re.S))


def field(row_html: str, name: str) -> str:
    """Return the text of a row's data-field cell."""
    match = re.search(rf'data-field="{name}">([^<]*)<', row_html)
    assert match, name
    return match.group(1).strip()


@pytest.mark.parametrize("login_", DEMO_LOGINS, ids=lambda d: d.email)
def test_segment_access_matrix(app: Flask, login_: DemoLogin) -> None:
    """Each role opens only its segment pages, and sees only its tenants' utilities there."""
    email, role = login_.email, login_.role
    client = app.test_client()
    assert login(client, email) == 302
    nav = client.get("/").get_data(as_text=True)
    tables = {"iou": "iou-utilities", "service_bureau": "bureau-utilities",
              "security": "security-sites"}  # fmt: skip
    for segment, path in PAGES.items():
        response = client.get(path)
        if segment not in ALLOWED[role]:
            assert response.status_code == 403, (email, path)
            assert f'href="{path}"' not in nav
            continue
        assert response.status_code == 200, (email, path)
        assert f'href="{path}"' in nav
        shown = set(rows(response.get_data(as_text=True), tables[segment]))
        expected = {
            u
            for u, seg in SEGMENT.items()
            if seg == segment
            and (
                login_.utility_id == u
                if login_.utility_id
                else login_.distributor_id in (None, DISTRIBUTOR[u])
            )
        }
        assert shown == expected, (email, segment)


def count(fleet: list[Meter], utility_id: str) -> int:
    """Return how many of the seeded meters belong to a utility."""
    return sum(m.utility_id == utility_id for m in fleet)


def test_iou_page_figures(app: Flask, fleet: list[Meter]) -> None:
    """Each GLPL meter displaces a line; one lost half its day (48 of its 96 intervals)."""
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get("/segments/iou").get_data(as_text=True)
    glpl = rows(html, "iou-utilities")["glpl"]
    meters = count(fleet, "glpl")
    assert field(glpl, "wireless") == f"{(meters * 96 - 48) / (meters * 96):.1%}"
    monthly = meters * Prices.from_roi_defaults().modem_line_monthly
    assert field(glpl, "monthly") == f"${monthly:,.0f}"
    assert field(rows(html, "iou-utilities")["atlantic"], "wireless") == "100.0%"
    assert 'data-plotly="iou-chart-data"' in html


def test_service_bureau_page_for_a_utility_viewer(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    assert login(client, "ops@millbrook.example") == 302
    html = client.get("/segments/service-bureau").get_data(as_text=True)
    table = rows(html, "bureau-utilities")
    assert set(table) == {"millbrook"}
    subscription = count(fleet, "millbrook") * Prices.from_roi_defaults().subscription_monthly
    assert field(table["millbrook"], "subscription") == f"${subscription:,.0f}"
    assert field(table["millbrook"], "completeness") == "100.0%"
    assert "Prairie Rural" not in html


def test_security_page_lists_tamper_not_outages(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    client = app.test_client()
    assert login(client, "facilities@fedcenter.example") == 302
    html = client.get("/segments/security").get_data(as_text=True)
    table = rows(html, "security-sites")
    assert set(table) == {"fedcenter"}
    assert field(table["fedcenter"], "visits") == str(count(fleet, "fedcenter") * 12)
    events = html.split('id="security-events"', 1)[1]
    assert "tamper" in events
    assert "power outage" not in events
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(models.Event.type).where(models.Event.type == "tamper"))
    engine.dispose()


def reshape_day(database_url: str, meter_id: str, *, keep_hours: int, quality: str | None,
               offline: bool) -> None:  # fmt: skip
    """Change one meter's day: delivered only its first hours, some estimates, or offline."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        meter = session.get(models.Meter, meter_id)
        assert meter is not None
        cut = T0 + timedelta(hours=keep_hours)
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == meter_id, models.Reading.start >= cut
            )
        )
        session.execute(
            delete(models.HourlyRollup).where(
                models.HourlyRollup.meter_id == meter_id, models.HourlyRollup.start >= cut
            )
        )
        if quality is not None:  # the first two hours became VEE estimates
            for reading in session.scalars(
                select(models.Reading).where(
                    models.Reading.meter_id == meter_id,
                    models.Reading.start < T0 + timedelta(hours=2),
                )
            ):
                reading.quality = quality
        meter.last_interval_start = cut - timedelta(minutes=15)
        meter.status = "offline" if offline else "online"
        session.flush()
        refresh(session, {meter_id: [T0 + timedelta(hours=h) for h in range(24)]},
                {meter_id: zone_for(meter.lon)})  # fmt: skip
    engine.dispose()


@pytest.mark.parametrize(
    ("keep_hours", "quality", "offline", "missing"),
    [
        # A daily meter called in 4 hours into the day: the other 80 intervals are not due
        # until its next call, so no read has failed.
        (4, None, False, 0),
        # The same meter reporting itself offline owes the whole day.
        (4, None, True, 80),
        # A whole day delivered, 8 intervals of it VEE estimates: those were never read.
        (24, "estimated-linear", False, 8),
        (24, "estimated-reference-day", False, 8),
    ],
)
def test_wireless_read_success_counts_reads_that_were_due(
    app: Flask, fleet: list[Meter], database_url: str, keep_hours: int, quality: str | None,
    offline: bool, missing: int,
) -> None:  # fmt: skip
    """Read success is reads (not estimates) over what the call-in schedules owe by now."""
    meter_id = sorted(m.id for m in fleet if m.utility_id == "atlantic")[0]
    reshape_day(database_url, meter_id, keep_hours=keep_hours, quality=quality, offline=offline)
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get("/segments/iou").get_data(as_text=True)
    meters = count(fleet, "atlantic")
    due = meters * 96 - (0 if offline or keep_hours == 24 else 96 - 4 * keep_hours)
    shown = field(rows(html, "iou-utilities")["atlantic"], "wireless")
    assert shown == f"{(due - missing) / due:.1%}"


@pytest.mark.parametrize("minute", [0, 15, 30, 45])
def test_completeness_counts_the_24_whole_hours_and_days_since_the_first_interval(
    database_url: str, minute: int
) -> None:
    """The rollups' count equals a raw count of the window; days run from the first interval."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from app.db import models
    from app.db.segment_queries import (
        _days_in_service,
        _intervals_last_day,
        day_window,
    )
    from app.db.session import make_engine, make_sessionmaker
    from simulator.backfill import backfill
    from simulator.fleet import build_fleet

    fleet = [m for m in build_fleet(40, 3) if m.utility_id == "glpl"][:3]
    engine = make_engine(database_url)
    start = datetime(2026, 3, 2, 5, 15, tzinfo=UTC)
    backfill(engine, fleet, 3, start, 2.5)
    latest = start + timedelta(days=1, hours=7, minutes=minute)
    begin, end = day_window(latest)
    assert end - begin == timedelta(days=1)
    assert latest - timedelta(minutes=45) < end <= latest + timedelta(minutes=15)
    with make_sessionmaker(engine)() as session:
        raw = session.scalar(
            select(func.count())
            .select_from(models.Reading)
            .where(models.Reading.start >= begin, models.Reading.start < end)
        )
        assert _intervals_last_day(session, {"glpl": latest}) == {"glpl": raw}
        assert _days_in_service(session, "glpl", latest) == (
            (latest - start).total_seconds() / 86400 + 1 / 96
        )
    assert raw == len(fleet) * 96
    engine.dispose()
