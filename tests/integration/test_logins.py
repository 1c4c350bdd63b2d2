"""Logins held server-side (logout and new passwords end them) and the failed-login throttle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app
from app.db import models
from app.db.seed import seed_users
from app.db.session import make_engine, make_sessionmaker
from app.domain import throttle
from app.web import auth
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

REP = "rep@northgrid.example"
SE = "se@wattline.example"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a database with one meter and the demo logins."""
    seed_database(database_url, meters=1, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def token_for(client: FlaskClient, email: str, password: str = PASSWORD) -> tuple[int, dict]:
    """POST /api/v1/auth/token; return the status and the JSON body."""
    response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    return response.status_code, response.get_json()


def count(app: Flask, model: type[models.Base]) -> int:
    """Rows in a table."""
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_logout_ends_a_copied_session_cookie(app: Flask) -> None:
    client = app.test_client()
    assert login(client, REP) == 302
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    assert copy.get("/api/v1/meters").status_code == 200
    other = app.test_client()  # the same user in another browser stays logged in
    assert login(other, REP) == 302
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert copy.get("/api/v1/meters").status_code == 401
    assert other.get("/api/v1/meters").status_code == 200
    assert count(app, models.Login) == 1


def test_login_starts_a_fresh_session(app: Flask) -> None:
    """A CSRF token from before the login (planted, or the last presenter's) is no good after."""
    client = app.test_client()
    before = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": SE, "password": PASSWORD, "csrf_token": before})
    assert response.status_code == 302
    assert client.post("/presenter/toggle", data={"csrf_token": before}).status_code == 400
    after = csrf_from(client.get("/").get_data(as_text=True))
    assert after != before
    assert client.post("/presenter/toggle", data={"csrf_token": after}).status_code == 302


def test_a_token_can_be_revoked_and_others_stay(app: Flask) -> None:
    client = app.test_client()
    first, second = token_for(client, REP)[1]["token"], token_for(client, REP)[1]["token"]
    headers = {"Authorization": f"Bearer {first}"}
    assert client.get("/api/v1/meters", headers=headers).status_code == 200
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    assert client.get("/api/v1/meters", headers=headers).status_code == 401
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 401
    kept = {"Authorization": f"Bearer {second}"}
    assert client.get("/api/v1/meters", headers=kept).status_code == 200
    # A cookie session cannot revoke anything here (it has its Log out).
    assert login(client, REP) == 302
    assert client.delete("/api/v1/auth/token").status_code == 400  # no CSRF header
    csrf = csrf_from(client.get("/").get_data(as_text=True))
    refused = client.delete("/api/v1/auth/token", headers={"X-CSRFToken": csrf})
    assert refused.status_code == 401


def test_an_old_style_token_or_session_without_a_login_is_refused(app: Flask) -> None:
    """Tokens and cookies signed before logins were recorded carry no login: log in again."""
    with app.test_request_context():
        legacy = auth._serializer().dumps({"uid": 1})
    client = app.test_client()
    assert (
        client.get("/api/v1/meters", headers={"Authorization": f"Bearer {legacy}"}).status_code
        == 401
    )
    with client.session_transaction() as session:
        session["_user_id"] = "1"
    assert client.get("/api/v1/meters").status_code == 401


def test_failed_logins_are_throttled_per_account(app: Flask) -> None:
    client = app.test_client()
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert token_for(client, REP, "wrong")[0] == 401
    # Now even the right password is not checked, on the form and on the API.
    response = client.post("/api/v1/auth/token", json={"email": REP, "password": PASSWORD})
    assert response.status_code == 429
    assert response.get_json()["message"] == "too many failed logins; try again in 15 minutes"
    assert 14 * 60 < int(response.headers["Retry-After"]) <= 15 * 60
    form = app.test_client()
    token = csrf_from(form.get("/login").get_data(as_text=True))
    page = form.post(
        "/login", data={"email": REP.upper(), "password": PASSWORD, "csrf_token": token}
    )
    assert page.status_code == 429
    assert "Too many failed logins; try again in 15 minutes." in page.get_data(as_text=True)
    assert form.get("/").status_code == 302  # not logged in
    # Another account from the same address is not held up.
    assert token_for(client, SE)[0] == 200
    # An e-mail with no account is throttled the same way: the answer tells nothing.
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert token_for(client, "nobody@example.com", "wrong")[0] == 401
    assert token_for(client, "nobody@example.com", "wrong")[0] == 429


def test_failures_age_out_and_a_right_password_clears_them(app: Flask) -> None:
    client = app.test_client()
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        assert token_for(client, REP, "wrong")[0] == 401
    assert token_for(client, REP)[0] == 200  # forgets the nine
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        assert token_for(client, REP, "wrong")[0] == 401
    assert token_for(client, REP)[0] == 200
    # Failures older than the window do not count (and are swept at the next failure).
    engine = app.extensions["wattline"]["engine"]
    old = datetime.now(UTC) - throttle.WINDOW - timedelta(seconds=1)
    with make_sessionmaker(engine).begin() as session:
        session.add_all(
            models.LoginFailure(at=old, email=REP, address="127.0.0.1")
            for _ in range(throttle.ADDRESS_LIMIT)
        )
    assert token_for(client, REP, "wrong")[0] == 401
    assert token_for(client, REP)[0] == 200
    assert count(app, models.LoginFailure) == 0


def test_failed_logins_are_throttled_per_address(app: Flask) -> None:
    client = app.test_client()
    for n in range(throttle.ADDRESS_LIMIT):
        assert token_for(client, f"guess{n}@example.com", "wrong")[0] == 401
    assert token_for(client, REP)[0] == 429
    elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
    response = client.post(
        "/api/v1/auth/token", json={"email": REP, "password": PASSWORD}, environ_base=elsewhere
    )
    assert response.status_code == 200


def test_an_unknown_email_costs_a_password_check(app: Flask) -> None:
    """Answering an unknown e-mail without hashing would tell which e-mails have logins."""
    auth._no_such_user_hash.cache_clear()
    client = app.test_client()
    assert token_for(client, REP, "wrong")[0] == 401
    assert auth._no_such_user_hash.cache_info().currsize == 0
    assert token_for(client, "nobody@example.com", "wrong")[0] == 401
    assert token_for(client, "nobody@example.com", "wrong")[0] == 401
    info = auth._no_such_user_hash.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_reseeding_the_demo_keeps_sessions_unless_the_password_changes(
    app: Flask, database_url: str
) -> None:
    client = app.test_client()
    assert login(client, REP) == 302
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        seed_users(session, PASSWORD)  # `make demo` again
    assert client.get("/api/v1/meters").status_code == 200
    with sessions.begin() as session:
        seed_users(session, "a new demo password")
    engine.dispose()
    assert client.get("/api/v1/meters").status_code == 401
    assert login(app.test_client(), REP, "a new demo password") == 302


def test_logout_needs_its_csrf_token(app: Flask) -> None:
    """A page on another site must not log people out (the form's token is required)."""
    client = app.test_client()
    assert login(client, REP) == 302
    assert client.post("/logout").status_code == 400
    assert client.get("/api/v1/meters").status_code == 200


def test_a_login_field_with_an_error_is_marked_and_described_by_it(app: Flask) -> None:
    """The errors were loose red text under the fields, tied to neither."""
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": "not-an-address", "password": "", "csrf_token": token}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    for field in ("email", "password"):
        tag = re.search(rf'<input[^>]* id="{field}"[^>]*>', html)
        assert tag is not None, field
        assert 'aria-invalid="true"' in tag.group(0), tag.group(0)
        assert f'aria-describedby="{field}-error"' in tag.group(0), tag.group(0)
        assert re.search(rf'<p class="error" id="{field}-error">[^<]+</p>', html), field
    # A good field is not marked.
    response = client.post(
        "/login", data={"email": "a@b.example", "password": "", "csrf_token": token}
    )
    email = re.search(r'<input[^>]* id="email"[^>]*>', response.get_data(as_text=True))
    assert email is not None
    assert "aria-invalid" not in email.group(0)
