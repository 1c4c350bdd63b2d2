"""The portal through Flask's test client on a real database: login, tenancy, pages, API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, insert, text

from app import create_app
from app.config import Settings
from app.db import models, queries
from app.db.seed import DEMO_LOGINS
from app.db.session import make_engine
from app.domain import telemetry
from simulator.fleet import Meter
from tests.factories import PASSWORD, T0, seed_database


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for tests; keyword overrides change fields."""
    # Demo mode: the tests log in with the seeded demo logins, which work only there.
    base = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "WATTLINE_INSTANCE": str(tmp_path / "instance"),
            "WATTLINE_DEMO": "1",
        }
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed 21 meters (three per utility), the demo logins, and a day of readings each."""
    return seed_database(database_url)


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def csrf_from(html: str) -> str:
    """Pull the CSRF token out of a rendered form."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> int:
    """Log in through the real form (with its CSRF token); return the status code."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    return response.status_code


def visible(email: str, meter: Meter) -> bool:
    """Who may see what: the rule the portal must implement."""
    login_ = next(d for d in DEMO_LOGINS if d.email == email)
    utility = {
        "glpl": "northgrid",
        "atlantic": "northgrid",
        "cascade": "prairiemeter",
        "millbrook": "northgrid",
        "prec": "prairiemeter",
        "fedcenter": "northgrid",
        "riverton": "prairiemeter",
    }
    if login_.distributor_id is None and login_.utility_id is None:
        return True
    if login_.utility_id is not None:
        return meter.utility_id == login_.utility_id
    return utility[meter.utility_id] == login_.distributor_id


def test_pages_need_login_and_api_answers_401(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/").status_code == 302
    response = client.get("/api/v1/meters")
    assert response.status_code == 401
    assert response.get_json()["message"]
    login(client, "se@wattline.example")
    for limit in ("1_000", "\u0661\u0660", "ten"):  # int() takes the first two
        paged = client.get("/api/v1/meters", query_string={"limit": limit})
        assert paged.status_code == 400, limit
        assert paged.get_json()["message"] == "limit must be an integer"
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    # The demo controls too (their role check ran first, and was a 500 for nobody).
    anonymous = client.get("/demo/")
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]


def test_login_rejects_wrong_password_and_missing_csrf(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "rep@northgrid.example", "wrong") == 401
    no_csrf = client.post("/login", data={"email": "rep@northgrid.example", "password": PASSWORD})
    assert no_csrf.status_code == 400
    assert client.get("/").status_code == 302


def test_fleet_page_shows_only_the_tenant_utilities(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    html = client.get("/").get_data(as_text=True)
    assert "Great Lakes Power &amp; Light" in html
    assert "Millbrook Municipal Light" in html
    assert "Cascade Energy" not in html
    assert "Prairie Rural Electric" not in html
    assert 'data-plotly="fleet-chart-data"' in html
    assert "/vendor/plotly.min.js" in html


@pytest.mark.parametrize("email", [d.email for d in DEMO_LOGINS])
def test_meter_access_matrix(app: Flask, fleet: list[Meter], email: str) -> None:
    client = app.test_client()
    assert login(client, email) == 302
    for meter in fleet:
        page = client.get(f"/meters/{meter.id}")
        api = client.get(f"/api/v1/meters/{meter.id}")
        expected = 200 if visible(email, meter) else 404
        assert (page.status_code, api.status_code) == (expected, expected), meter.id
    listed = {m["id"] for m in client.get("/api/v1/meters?limit=1000").get_json()["meters"]}
    assert listed == {m.id for m in fleet if visible(email, m)}


def test_meter_page_has_a_chart_of_recent_intervals(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get(f"/meters/{fleet[0].id}").get_data(as_text=True)
    assert 'data-plotly="meter-chart-data"' in html
    assert "Demand kW" in html


def test_bearer_token_flow_and_readings_api(app: Flask, fleet: list[Meter]) -> None:
    client = app.test_client()
    bad = client.post(
        "/api/v1/auth/token", json={"email": "rep@prairiemeter.example", "password": "x"}
    )
    assert bad.status_code == 401
    assert client.post("/api/v1/auth/token", data="nope").status_code == 400
    token = client.post(
        "/api/v1/auth/token", json={"email": "rep@prairiemeter.example", "password": PASSWORD}
    ).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    own = next(m for m in fleet if m.utility_id == "cascade")
    other = next(m for m in fleet if m.utility_id == "glpl")
    response = client.get(
        f"/api/v1/meters/{own.id}/readings",
        headers=headers,
        query_string={"start": "2026-03-02T00:00:00Z", "end": "2026-03-02T01:00:00Z"},
    )
    assert response.status_code == 200
    readings = response.get_json()["readings"]
    assert [r["start"] for r in readings] == [
        telemetry.format_time(T0 + timedelta(minutes=15 * i)) for i in range(4)
    ]
    assert client.get(f"/api/v1/meters/{other.id}/readings", headers=headers).status_code == 404
    assert (
        client.get(
            f"/api/v1/meters/{own.id}/readings",
            headers=headers,
            query_string={"start": "yesterday", "end": "2026-03-02T01:00:00Z"},
        ).status_code
        == 400
    )
    assert (
        client.get("/api/v1/meters", headers={"Authorization": "Bearer forged"}).status_code == 401
    )


def test_health_needs_no_login_and_reports_counts(
    app: Flask, fleet: list[Meter], database_url: str
) -> None:
    body = app.test_client().get("/api/v1/health").get_json()
    assert body["meters"] == len(fleet)
    # Partitions not yet analysed are counted (autovacuum may analyse them meanwhile: then
    # the statistics of these small tables are exact too).
    assert body["readings"] == len(fleet) * 96
    assert body["dead_letters"] == 0
    assert body["dead_letters_exact"] is True
    assert body["broker_connected"] is False
    assert body["status"] == "degraded"
    if not database_url.startswith("postgresql"):
        assert body["readings_exact"] is True
        return
    # Analysed, PostgreSQL answers from the planner's statistics instead of counting.
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE readings"))
        # One row by its key (a ctid repeats across partitions).
        conn.execute(
            text(
                "DELETE FROM readings WHERE (meter_id, start) IN "
                "(SELECT meter_id, start FROM readings LIMIT 1)"
            )
        )
    engine.dispose()
    body = app.test_client().get("/api/v1/health").get_json()
    assert body["readings_exact"] is False
    assert body["readings"] == len(fleet) * 96  # the statistics, not a count: one row is gone


def test_health_counts_dead_letters_up_to_a_cap_then_reads_the_statistics(
    app: Flask, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device sending garbage for days must not make every health probe count millions."""
    monkeypatch.setattr(queries, "DEAD_LETTERS_COUNTED", 10)
    engine = make_engine(database_url)

    def add(n: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                insert(models.DeadLetter),
                [
                    {"topic": "t", "payload": b"x", "reason": "r", "received_at": T0}
                    for _ in range(n)
                ],
            )

    def counts() -> tuple[int, bool]:
        body = app.test_client().get("/api/v1/health").get_json()
        return body["dead_letters"], body["dead_letters_exact"]

    try:
        add(25)
        if not database_url.startswith("postgresql"):
            assert counts() == (25, True)  # SQLite, the demo's, counts them all
            return
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE dead_letters"))
        assert counts() == (25, False)  # past the cap: the planner's 25
        add(10)  # the statistics lag: still 25, at least the 11 counted
        assert counts() == (25, False)
        monkeypatch.setattr(queries, "DEAD_LETTERS_COUNTED", 100)
        assert counts() == (35, True)
    finally:
        with engine.begin() as conn:
            conn.execute(delete(models.DeadLetter))
        engine.dispose()


def test_plotly_is_served_from_the_installed_package(app: Flask) -> None:
    with app.test_client().get("/vendor/plotly.min.js") as response:
        assert response.status_code == 200
        assert len(response.get_data()) > 1_000_000


def test_unknown_pages_get_a_friendly_404(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "admin@wattline.example") == 302
    response = client.get("/meters/does-not-exist")
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)


def test_portal_refuses_to_start_without_a_secret_key(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(make_settings(database_url, tmp_path, secret_key=""))


@pytest.mark.parametrize("path", ["/", "/api/v1/meters", "/api/v1/health", "/no-such-page"])
def test_every_response_reports_its_server_time(app: Flask, path: str) -> None:
    client = app.test_client()
    login(client, "admin@wattline.example")
    timing = client.get(path).headers.get("Server-Timing", "")
    match = re.fullmatch(r"app;dur=(\d+\.\d)", timing)
    assert match, timing
    assert float(match.group(1)) > 0


def test_an_error_page_says_what_happened_not_only_its_number(app: Flask) -> None:
    """The title and heading were just "404"."""
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    html = client.get("/no-such-page").get_data(as_text=True)
    assert "<title>Page not found (404) · Wattline</title>" in html
    assert "<h1>Page not found (404)</h1>" in html
