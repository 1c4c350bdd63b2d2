"""Response headers: CSP, framing, caching of tenant data, and HTTPS behind a proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.db import models
from app.db.session import make_sessionmaker
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

REP = "rep@northgrid.example"


@pytest.fixture
def seeded(database_url: str) -> str:
    """A database with one meter and the demo logins."""
    seed_database(database_url, meters=1, intervals=1)
    return database_url


def portal(database_url: str, tmp_path: Path, **overrides: object) -> Flask:
    """A portal on the database with settings overridden."""
    return create_app(make_settings(database_url, tmp_path, **overrides))


@pytest.fixture
def app(seeded: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal served over plain HTTP (the default)."""
    flask_app = portal(seeded, tmp_path)
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def test_pages_and_api_are_not_cached_and_cannot_be_framed(app: Flask) -> None:
    client = app.test_client()
    assert login(client, REP) == 302
    for path in ("/", "/api/v1/meters", "/login", "/api/v1/openapi.json"):
        headers = client.get(path).headers
        assert headers["Cache-Control"] == "no-store", path
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        policy = headers["Content-Security-Policy"]
        for rule in ("default-src 'self'", "base-uri 'none'", "form-action 'self'"):
            assert rule in policy, (path, rule)
        # Neither inline script nor eval: a script can only be a file the portal serves.
        assert "script-src 'self';" in policy
        assert "Strict-Transport-Security" not in headers
    # Files the same for everyone stay cacheable.
    for path in ("/vendor/plotly.min.js", "/static/app.css"):
        with client.get(path) as response:
            assert response.status_code == 200
            assert response.headers.get("Cache-Control") != "no-store", path


def test_plain_http_cookies_are_not_secure_and_forwarded_headers_are_ignored(app: Flask) -> None:
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    response = client.post(
        "/api/v1/auth/token", json={"email": REP, "password": "wrong"}, headers=forwarded
    )
    assert response.status_code == 401
    assert failure_addresses(app) == ["127.0.0.1"]  # a client cannot pick its address
    login(client, REP)
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert not cookie.secure


def test_behind_an_https_proxy(seeded: str, tmp_path: Path) -> None:
    app = portal(seeded, tmp_path, https=True)
    client = app.test_client()
    proxy = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "198.51.100.7",
        "Referer": "https://localhost/login",  # checked by Flask-WTF over HTTPS
    }
    page = client.get("/login", headers=proxy)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    bad = client.post("/api/v1/auth/token", json={"email": REP, "password": "wrong"}, headers=proxy)
    assert bad.status_code == 401
    # The throttle counts the client the proxy names, not the proxy itself.
    assert failure_addresses(app) == ["198.51.100.7"]
    good = client.post("/api/v1/auth/token", json={"email": REP, "password": PASSWORD})
    assert good.status_code == 200
    token = csrf_from(client.get("/login", headers=proxy).get_data(as_text=True))
    response = client.post(
        "/login", data={"email": REP, "password": PASSWORD, "csrf_token": token}, headers=proxy
    )
    assert response.status_code == 302
    assert "; Secure" in response.headers["Set-Cookie"]
    app.extensions["wattline"]["engine"].dispose()


def failure_addresses(app: Flask) -> list[str]:
    """The addresses of the recorded failed logins."""
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as session:
        return list(session.scalars(select(models.LoginFailure.address)))
