"""Readings (JSON/CSV) and Green Button over the API: formats, tenancy, parameter errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import delete

from app import create_app
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.exports import greenbutton
from app.ingest.estimation import run_vee
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import PASSWORD, T0, make_reading, seed_database
from tests.integration.test_portal import login, make_settings

DATA = Path(__file__).resolve().parent.parent / "data" / "greenbutton"
DAY = {"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed 21 meters with a day of readings each, and the demo logins."""
    return seed_database(database_url)


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def bearer(client: FlaskClient, email: str) -> dict[str, str]:
    """Return an Authorization header for a demo login."""
    token = client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD}
    ).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


def own_and_other(fleet: list[Meter]) -> tuple[Meter, Meter]:
    """A meter Prairie Meter's rep may see, and one it may not."""
    return (
        next(m for m in fleet if m.utility_id == "cascade"),
        next(m for m in fleet if m.utility_id == "glpl"),
    )


def test_readings_as_json_and_csv_carry_quality(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    headers = bearer(client, "rep@prairiemeter.example")
    own, _ = own_and_other(fleet)
    url = f"/api/v1/meters/{own.id}/readings"
    body = client.get(url, headers=headers, query_string=DAY).get_json()
    assert len(body["readings"]) == 96
    assert {r["quality"] for r in body["readings"]} == {"valid"}

    response = client.get(url, headers=headers, query_string={**DAY, "format": "csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(table) == 96
    assert table[0]["start_utc"] == "2026-03-02T00:00:00Z"
    assert table[0]["start_utc_epoch"] == str(int(T0.timestamp()))
    assert table[0]["quality"] == "valid"
    # Cascade is a Pacific-northwest utility: local time is the meter's zone unless asked.
    assert table[0]["start_local"].endswith(("-08:00", "-07:00", "-06:00", "-05:00"))
    utc = client.get(url, headers=headers, query_string={**DAY, "format": "csv", "tz": "UTC"})
    assert next(csv.DictReader(io.StringIO(utc.get_data(as_text=True))))["start_local"] == (
        "2026-03-02T00:00:00+00:00"
    )
    dates = client.get(
        url, headers=headers, query_string={"start": "2026-03-02", "end": "2026-03-03"}
    )
    assert len(dates.get_json()["readings"]) == 96


def test_greenbutton_feed_is_valid_and_holds_the_range(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    headers = bearer(client, "rep@prairiemeter.example")
    own, _ = own_and_other(fleet)
    response = client.get(f"/api/v1/meters/{own.id}/greenbutton", headers=headers, query_string=DAY)
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    document = response.get_data()
    schema = etree.XMLSchema(etree.parse(str(DATA / "greenbutton.xsd")))
    schema.assertValid(etree.fromstring(document))
    (reading,) = greenbutton.read_feed(document)
    assert len(reading.intervals) == 96
    assert reading.intervals[0].start == T0
    assert reading.intervals[0].kwh == pytest.approx(10.0)

    default = client.get(f"/api/v1/meters/{own.id}/greenbutton", headers=headers)
    assert default.status_code == 200
    (recent,) = greenbutton.read_feed(default.get_data())
    assert len(recent.intervals) == 96  # the last week holds the seeded day


@pytest.mark.parametrize("endpoint", ["readings", "greenbutton", "rollups", "audit"])
def test_another_tenants_meter_is_404_and_anonymous_is_401(
    app: Flask, fleet: list[Meter], endpoint: str
) -> None:
    client = app.test_client()
    _, other = own_and_other(fleet)
    url = f"/api/v1/meters/{other.id}/{endpoint}"
    assert client.get(url, query_string=DAY).status_code == 401
    response = client.get(url, headers=bearer(client, "rep@prairiemeter.example"))
    assert response.status_code == 404
    assert response.get_json()["status"] == 404
    admin = client.get(url, headers=bearer(client, "admin@wattline.example"), query_string=DAY)
    assert admin.status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "params", "named"),
    [
        ("readings", {"format": "xml"}, "format"),
        ("readings", {"start": "yesterday", "end": DAY["end"]}, "start"),
        ("readings", {"start": DAY["start"]}, "end"),
        ("readings", {"start": DAY["end"], "end": DAY["start"]}, "end"),
        ("readings", {"start": "2026-01-01", "end": "2026-03-01"}, "end"),
        ("readings", {**DAY, "tz": "Mars/Olympus"}, "tz"),
        ("greenbutton", {"start": "2026-13-01", "end": "2026-03-01"}, "start"),
        ("greenbutton", {"end": DAY["end"]}, "start"),
        ("greenbutton", {**DAY, "tz": "nowhere"}, "tz"),
        ("rollups", {**DAY, "period": "weekly"}, "period"),
        ("rollups", {"period": "hourly"}, "start"),
        ("rollups", {"period": "hourly", "start": "2026-01-01", "end": "2026-03-01"}, "end"),
        ("audit", {"limit": "0"}, "limit"),
        ("audit", {"limit": "many"}, "limit"),
        ("audit", {"limit": "\u00b2"}, "limit"),  # a digit to str.isdigit, not to int()
        # Out of the range local days can be computed in (Python's years 1 to 9999).
        ("readings", {"start": "0001-01-01T00:00:00+01:00", "end": DAY["end"]}, "start"),
        ("readings", {"start": "9999-12-30", "end": "9999-12-31"}, "start"),
        ("greenbutton", {"start": "0001-01-01", "end": "0001-01-02"}, "start"),
        ("greenbutton", {"start": "9999-12-01", "end": "9999-12-31T23:00:00Z"}, "start"),
        ("rollups", {"period": "daily", "start": "1969-12-31", "end": "1970-01-02"}, "start"),
        ("audit", {"start": DAY["start"]}, "end"),
        ("audit", {"start": "2025-01-01", "end": "2026-03-01"}, "end"),
    ],
)
def test_bad_parameters_answer_400_naming_them(
    app: Flask, fleet: list[Meter], endpoint: str, params: dict[str, str], named: str
) -> None:
    client = app.test_client()
    own, _ = own_and_other(fleet)
    response = client.get(
        f"/api/v1/meters/{own.id}/{endpoint}",
        headers=bearer(client, "rep@prairiemeter.example"),
        query_string=params,
    )
    assert response.status_code == 400
    assert named in response.get_json()["message"]


def test_csv_download_works_with_the_session_cookie(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    login(client, "admin@wattline.example")
    response = client.get(
        f"/api/v1/meters/{fleet[0].id}/readings",
        query_string={**DAY, "format": "csv"},
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).count("\n") == 97


def test_meter_page_links_downloads_and_marks_non_valid_intervals(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == fleet[0].id,
                models.Reading.start == T0 + timedelta(hours=2),
            )
        )
        run_vee(session, fleet[0].id, T0, T0 + timedelta(days=1), now=T0 + timedelta(days=2))
    engine.dispose()
    client = app.test_client()
    login(client, "admin@wattline.example")
    html = client.get(f"/meters/{fleet[0].id}").get_data(as_text=True)
    assert f"/api/v1/meters/{fleet[0].id}/readings?format=csv" in html
    assert f"/api/v1/meters/{fleet[0].id}/greenbutton" in html
    assert "Not valid (VEE quality)" in html
    assert "estimated-linear" in html
    # The daily summary comes from the rollups, which the VEE run kept up to date.
    assert "Daily summary" in html
    assert " · 1 estimated" in html


def test_rollups_sum_the_intervals_without_scanning_them(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    headers = bearer(client, "rep@prairiemeter.example")
    own, _ = own_and_other(fleet)
    readings = client.get(
        f"/api/v1/meters/{own.id}/readings", headers=headers, query_string=DAY
    ).get_json()["readings"]
    hourly = client.get(
        f"/api/v1/meters/{own.id}/rollups",
        headers=headers,
        query_string={**DAY, "period": "hourly"},
    ).get_json()["rollups"]
    assert len(hourly) == 24
    assert sum(h["kwh"] for h in hourly) == pytest.approx(sum(r["kwh"] for r in readings))
    assert {h["intervals"] for h in hourly} == {4}
    first_hour = readings[:4]
    peak = max(first_hour, key=lambda r: r["demand_kw"])
    assert (hourly[0]["peak_kw"], hourly[0]["peak_at"]) == (peak["demand_kw"], peak["start"])
    assert hourly[0]["quality"] == {"valid": 4, "estimated": 0, "questionable": 0, "edited": 0}
    daily = client.get(
        f"/api/v1/meters/{own.id}/rollups",
        headers=headers,
        query_string={"start": "2026-03-01", "end": "2026-03-04"},
    ).get_json()["rollups"]
    # One UTC day of data spans two local days of a North American meter.
    assert len(daily) == 2
    assert sum(d["intervals"] for d in daily) == 96
    assert sum(d["kwh"] for d in daily) == pytest.approx(sum(r["kwh"] for r in readings))
    # Without a range the answer says what to give (it said "when the other bound is given").
    bare = client.get(f"/api/v1/meters/{own.id}/rollups?period=daily", headers=headers)
    assert bare.status_code == 400
    assert bare.get_json()["message"] == "start is required: give start and end together"


def test_every_api_format_shows_the_same_vee_quality(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    """After VEE, JSON, CSV and Green Button carry the same quality for every interval."""
    own, _ = own_and_other(fleet)
    gap = T0 + timedelta(hours=2)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == own.id, models.Reading.start == gap
            )
        )
        run_vee(session, own.id, T0, T0 + timedelta(days=1), now=T0 + timedelta(days=2))
    engine.dispose()
    client = app.test_client()
    headers = bearer(client, "rep@prairiemeter.example")
    url = f"/api/v1/meters/{own.id}"

    body = client.get(f"{url}/readings", headers=headers, query_string=DAY).get_json()
    as_json = {r["start"]: r["quality"] for r in body["readings"]}
    text = client.get(
        f"{url}/readings", headers=headers, query_string={**DAY, "format": "csv"}
    ).get_data(as_text=True)
    as_csv = {r["start_utc"]: r["quality"] for r in csv.DictReader(io.StringIO(text))}
    feed = client.get(f"{url}/greenbutton", headers=headers, query_string=DAY).get_data()
    (reading,) = greenbutton.read_feed(feed)
    as_feed = {telemetry.format_time(i.start): i.quality for i in reading.intervals}

    assert as_json["2026-03-02T02:00:00Z"] == "estimated-linear"
    assert len(as_json) == 96
    assert as_csv == as_json
    assert as_feed == as_json


def test_the_audit_trail_of_a_meter_in_the_api_and_on_its_page(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    """VEE's estimate of a gap, then the late actual over it: both changes, newest first."""
    own, _ = own_and_other(fleet)
    gap = T0 + timedelta(hours=2)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        actual = session.get(models.Reading, (own.id, gap))
        assert actual is not None
        kwh = actual.kwh
        session.delete(actual)
    with sessions.begin() as session:
        run_vee(session, own.id, T0, T0 + timedelta(days=1), now=T0 + timedelta(days=2))
    with sessions.begin() as session:
        # The actual arrives after all, a day later.
        write_batch(
            session,
            [
                Accepted(
                    telemetry.Topic(telemetry.DEFAULT_PREFIX, own.utility_id, own.id, "interval"),
                    telemetry.IntervalMessage(own.id, (make_reading(gap, kwh=kwh),)),
                    b"",
                    T0 + timedelta(days=3),
                )
            ],
            MeterDirectory(),
        )
    engine.dispose()
    client = app.test_client()
    headers = bearer(client, "rep@prairiemeter.example")
    url = f"/api/v1/meters/{own.id}/audit"
    changes = client.get(url, headers=headers).get_json()["changes"]
    at_gap = [c for c in changes if c["start"] == "2026-03-02T02:00:00Z"]
    assert [(c["source"], c["old"]["quality"], c["new"]["quality"]) for c in at_gap] == [
        ("ingest", "estimated-linear", "valid"),
        ("vee", None, "estimated-linear"),
    ]
    assert at_gap[0]["new"]["kwh"] == kwh
    assert at_gap[0]["old"]["kwh"] == at_gap[1]["new"]["kwh"]
    # kVArh too: the actual's, over the estimate's, over nothing.
    assert at_gap[0]["new"]["kvarh"] == make_reading(gap).kvarh
    assert at_gap[0]["old"]["kvarh"] == at_gap[1]["new"]["kvarh"] is not None
    assert at_gap[1]["old"] == {"kwh": None, "kvarh": None, "demand_kw": None, "quality": None}
    # Bounded by interval start; limited in count.
    later = {"start": "2026-03-02T03:00:00Z", "end": "2026-03-03T00:00:00Z"}
    assert all(
        c["start"] != "2026-03-02T02:00:00Z"
        for c in client.get(url, headers=headers, query_string=later).get_json()["changes"]
    )
    assert (
        len(client.get(url, headers=headers, query_string={"limit": 1}).get_json()["changes"]) == 1
    )

    login(client, "rep@prairiemeter.example")
    html = client.get(f"/meters/{own.id}").get_data(as_text=True)
    assert "Changes to stored values" in html
    assert "kVArh before" in html
    assert "estimated-linear → valid" in html
    assert "missing → estimated-linear" in html
