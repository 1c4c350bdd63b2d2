"""HTTP's own rules on API answers: Allow on 405, a challenge on 401, one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from simulator.fleet import Meter
from tests.factories import seed_database
from tests.integration.test_partners_api import bearer
from tests.integration.test_portal import csrf_from, login, make_settings


@pytest.fixture
def seeded(database_url: str) -> list[Meter]:
    """Seven meters (one per utility), the demo logins and the demo deals."""
    return seed_database(database_url, meters=7, intervals=1)


@pytest.fixture
def app(database_url: str, tmp_path: Path, seeded: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def test_a_wrong_method_says_which_are_allowed(app: Flask) -> None:
    client = app.test_client()
    api = client.delete("/api/v1/meters", headers=bearer(client, "se@wattline.example"))
    assert api.status_code == 405
    assert set(api.headers["Allow"].split(", ")) >= {"GET"}
    assert api.get_json()["error"] == "Method Not Allowed"
    page = client.put("/login")
    assert page.status_code == 405
    assert set(page.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_every_api_401_carries_a_bearer_challenge(app: Flask) -> None:
    client = app.test_client()
    anonymous = client.get("/api/v1/meters")
    wrong = client.post(
        "/api/v1/auth/token", json={"email": "se@wattline.example", "password": "wrong"}
    )
    revoke = client.delete("/api/v1/auth/token")
    for response in (anonymous, wrong, revoke):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer realm=wattline"


def test_deal_errors_carry_the_http_name_and_the_field(app: Flask, seeded: list[Meter]) -> None:
    client = app.test_client()
    rep = bearer(client, "rep@northgrid.example")
    missing = client.post(
        "/api/v1/deals",
        headers=rep,
        json={"utility": "Foo", "segment": "iou", "prospect": "nope"},
    )
    assert missing.status_code == 404
    assert (missing.get_json()["error"], missing.get_json()["field"]) == ("Not Found", "prospect")
    outside = client.post(
        "/api/v1/deals", headers=rep, json={"utility": "X", "segment": "iou", "region": "US-TX"}
    )
    assert outside.status_code == 422
    assert outside.get_json()["error"] == "Unprocessable Entity"
    # A string the database cannot hold names its field as the other field errors do.
    body = '{"utility": "Acme \\ud800 Power", "segment": "iou", "region": "US-MI"}'
    half = client.post(
        "/api/v1/deals", headers={**rep, "Content-Type": "application/json"}, data=body
    )
    assert half.status_code == 400
    assert half.get_json()["field"] == "utility"
    assert half.get_json()["message"].startswith("body.utility: must be valid Unicode text")


def test_a_whole_float_is_an_integer_as_json_schema_says(app: Flask) -> None:
    client = app.test_client()
    rep = bearer(client, "rep@northgrid.example")
    created = client.post(
        "/api/v1/deals",
        headers=rep,
        json={"utility": "Floaty Power", "segment": "iou", "region": "US-MI", "term_months": 40.0},
    )
    assert created.status_code == 201
    assert created.get_json()["term_months"] == 40
    for bad in (40.5, float("1e300")):
        refused = client.post(
            "/api/v1/deals",
            headers=rep,
            json={"utility": "Floaty Two", "segment": "iou", "region": "US-MI", "term_months": bad},
        )
        assert refused.status_code == 400
        assert refused.get_json()["field"] == "term_months"


def test_an_audit_limit_of_thousands_of_digits_is_a_400(app: Flask, seeded: list[Meter]) -> None:
    client = app.test_client()
    headers = bearer(client, "se@wattline.example")
    meter = seeded[0].id
    huge = client.get(f"/api/v1/meters/{meter}/audit?limit={'1' * 4400}", headers=headers)
    assert huge.status_code == 400
    assert "limit" in huge.get_json()["message"]
    assert client.get(f"/api/v1/meters/{meter}/audit?limit=5", headers=headers).status_code == 200


def test_a_cookie_command_needs_the_csrf_header(app: Flask, seeded: list[Meter]) -> None:
    """A command is a write: with the session cookie alone (a forged page) it is refused."""
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    path = f"/api/v1/meters/{seeded[0].id}/commands"
    refused = client.post(path, json={"command": "ping"})
    assert refused.status_code == 400
    assert "X-CSRFToken" in refused.get_json()["message"]
    token = csrf_from(client.get("/").get_data(as_text=True))
    # With the header it gets past the check (to a 503: this portal has no broker).
    assert (
        client.post(path, json={"command": "ping"}, headers={"X-CSRFToken": token}).status_code
        == 503
    )
