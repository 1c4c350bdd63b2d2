"""The deals API on a real database: scoping, registration, conflicts, workflow, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings


@pytest.fixture
def portal(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a database seeded with the fleet, demo logins and partner data."""
    seed_database(database_url, meters=7, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def bearer(client: FlaskClient, email: str) -> dict[str, str]:
    """Log in through the token endpoint and return the Authorization header."""
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def deals(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """List the caller's deals."""
    response = client.get("/api/v1/deals", headers=headers)
    assert response.status_code == 200
    return list(response.get_json()["deals"])


def test_list_is_tenant_scoped_and_carries_the_contract_fields(portal: Flask) -> None:
    client = portal.test_client()
    ng = deals(client, bearer(client, "rep@northgrid.example"))
    pm = deals(client, bearer(client, "rep@prairiemeter.example"))
    everything = deals(client, bearer(client, "se@wattline.example"))
    assert {d["partner"] for d in ng} == {"northgrid"}
    assert {d["partner"] for d in pm} == {"prairiemeter"}
    assert {d["id"] for d in everything} == {d["id"] for d in ng + pm}
    for d in everything:
        assert {"id", "status", "partner", "conflict"} <= d.keys()
        assert isinstance(d["conflict"], bool)
    # Only the vendor learns which registration a conflict is with.
    assert "conflict_with" in everything[0]
    assert "conflict_with" not in ng[0]


def test_another_tenants_deal_answers_404(portal: Flask) -> None:
    client = portal.test_client()
    ng, pm = bearer(client, "rep@northgrid.example"), bearer(client, "rep@prairiemeter.example")
    theirs = deals(client, pm)[0]["id"]
    assert client.get(f"/api/v1/deals/{theirs}", headers=ng).status_code == 404
    patch = client.patch(f"/api/v1/deals/{theirs}", headers=ng, json={"note": "mine now"})
    assert patch.status_code == 404
    assert client.get("/api/v1/deals/999999", headers=ng).status_code == 404
    assert client.get(f"/api/v1/deals/{theirs}", headers=pm).get_json()["note"] != "mine now"


def test_register_with_utility_and_segment_only(portal: Flask) -> None:
    client = portal.test_client()
    ng = bearer(client, "rep@northgrid.example")
    response = client.post(
        "/api/v1/deals",
        headers=ng,
        json={"utility": "Village of Elm Falls Light & Water", "segment": "service_bureau"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["partner"], body["conflict"], body["region"]) == (
        "submitted",
        "northgrid",
        False,
        "US-WI",
    )
    assert response.headers["Location"].endswith(f"/api/v1/deals/{body['id']}")
    assert client.get(response.headers["Location"], headers=ng).get_json()["id"] == body["id"]
    # Another rep of the partner registering it again would restart the protection window.
    again = client.post(
        "/api/v1/deals",
        headers=bearer(client, "manager@northgrid.example"),
        json={"utility": "Elm Falls Light and Water, Village of", "segment": "service_bureau"},
    )
    assert again.status_code == 409
    assert again.get_json()["field"] == "utility"
    assert f"deal #{body['id']}" in again.get_json()["message"]
    first = client.get(f"/api/v1/deals/{body['id']}", headers=ng).get_json()
    assert (first["conflict"], first["protected"]) == (False, True)
    # Withdrawing the pending registration (lost) releases the utility.
    withdrawn = client.patch(f"/api/v1/deals/{body['id']}", headers=ng, json={"status": "lost"})
    assert withdrawn.get_json()["status"] == "lost"
    assert (
        client.post(
            "/api/v1/deals",
            headers=bearer(client, "manager@northgrid.example"),
            json={"utility": "Elm Falls Light and Water, Village of", "segment": "service_bureau"},
        ).status_code
        == 201
    )


def test_a_name_that_folds_longer_than_its_column_registers(portal: Flask) -> None:
    """'&' becomes ' and ' and a ligature three letters: a 120-character name was a 500 on PostgreSQL."""
    client = portal.test_client()
    ng = bearer(client, "rep@northgrid.example")
    for name in (
        "Northern Indiana Public Service Electric&Gas Division " + "X" * 66,
        "\ufb03" * 120,
    ):
        assert len(name) == 120
        response = client.post(
            "/api/v1/deals", headers=ng, json={"utility": name, "segment": "iou", "region": "US-IN"}
        )
        assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"segment": "iou", "region": "US-MI"}, 400, "utility"),
        ({"utility": "X", "region": "US-MI"}, 400, "segment"),
        ({"utility": "X", "segment": "nuclear", "region": "US-MI"}, 400, "segment"),
        ({"utility": 7, "segment": "iou", "region": "US-MI"}, 400, "utility"),
        ({"utility": "X", "segment": "iou"}, 400, "region"),
        ({"utility": "X", "segment": "iou", "region": "Michigan"}, 400, "region"),
        ({"utility": "X", "segment": "iou", "region": "US-MI", "endpoints": "many"}, 400, "endpoints"),
        ({"utility": "X", "segment": "iou", "region": "US-MI", "endpoints": -1}, 400, "endpoints"),
        # Digits to str.isdigit that int() refuses, and more than int() will read.
        ({"utility": "X", "segment": "iou", "region": "US-MI", "endpoints": "\u00b2"}, 400, "endpoints"),
        ({"utility": "X", "segment": "iou", "region": "US-MI", "endpoints": "--5"}, 400, "endpoints"),
        ({"utility": "X", "segment": "iou", "region": "US-MI", "term_months": "9" * 5000}, 400, "term_months"),
        ({"utility": "X", "segment": "iou", "region": "US-MI", "colour": "red"}, 400, "colour"),
        ({"utility": "X", "segment": "iou", "region": "US-TX"}, 422, "region"),
        ({"utility": "X", "segment": "iou", "region": "DE-BY"}, 422, "region"),
        ({"utility": "X", "segment": "iou", "prospect": "kearney"}, 404, "prospect"),
    ],
)  # fmt: skip
def test_bad_registrations_get_a_4xx_naming_the_field(
    portal: Flask, body: dict[str, object], status: int, field: str
) -> None:
    client = portal.test_client()
    headers = bearer(client, "rep@northgrid.example")
    before = len(deals(client, headers))
    response = client.post("/api/v1/deals", headers=headers, json=body)
    assert response.status_code == status
    error = response.get_json()
    assert error["field"] == field
    assert error["message"].startswith(f"{field}:")
    assert len(deals(client, headers)) == before


def test_non_json_bodies_are_refused(portal: Flask) -> None:
    client = portal.test_client()
    headers = bearer(client, "rep@northgrid.example")
    for data in ("not json", "[1, 2]"):
        response = client.post(
            "/api/v1/deals", headers=headers, data=data, content_type="application/json"
        )
        assert response.status_code == 400
        assert response.get_json()["message"].startswith("body:")


def test_lifecycle_through_the_api_with_roi(portal: Flask) -> None:
    client = portal.test_client()
    rep, se = bearer(client, "rep@northgrid.example"), bearer(client, "se@wattline.example")
    deal = client.post(
        "/api/v1/deals",
        headers=rep,
        json={"utility": "Fort Meade Support Buildings", "segment": "security", "endpoints": 64},
    ).get_json()
    url = f"/api/v1/deals/{deal['id']}"
    refused = client.patch(url, headers=rep, json={"status": "approved"})
    assert refused.status_code == 409
    assert refused.get_json()["field"] == "status"
    assert "only the vendor" in refused.get_json()["message"]
    approved = client.patch(url, headers=se, json={"status": "approved"}).get_json()
    assert approved["status"] == "approved"
    assert approved["first_response_at"] is not None
    # `next` holds only moves that would be taken: an ROI needs the questionnaire first.
    assert client.get(url, headers=rep).get_json()["next"] == ["proposal", "lost"]
    bad = client.patch(url, headers=rep, json={"roi_inputs": {"inputs": {"endpoints": "x"}}})
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "roi_inputs.inputs.endpoints"
    requested = client.patch(
        url,
        headers=rep,
        json={"roi_inputs": {"inputs": {"endpoints": 64, "site_visits_per_year": 700}}},
    ).get_json()
    assert requested["status"] == "roi_requested"
    assert requested["roi"] is None
    assert requested["next"] == ["lost"]  # proposal waits for the vendor's ROI
    assert client.patch(url, headers=rep, json={"status": "proposal"}).status_code == 409
    assert client.patch(url, headers=rep, json={"evaluate_roi": True}).status_code == 403
    delivered = client.patch(url, headers=se, json={"evaluate_roi": True}).get_json()
    assert delivered["roi_delivered_at"] is not None
    assert delivered["next"] == ["proposal", "lost"]
    assert isinstance(delivered["roi"]["npv"], float)
    assert delivered["roi"]["npv_convention"] == "year0"
    assert (
        client.patch(url, headers=rep, json={"status": "proposal"}).get_json()["status"]
        == "proposal"
    )
    won = client.patch(url, headers=rep, json={"status": "won"}).get_json()
    assert won["closed_at"] is not None
    assert won["next"] == []
    assert client.patch(url, headers=rep, json={"status": "submitted"}).status_code == 409
    assert client.patch(url, headers=rep, json={"status": "done"}).status_code == 400


def test_vendor_cannot_approve_a_flagged_registration_while_the_first_is_protected(
    portal: Flask,
) -> None:
    client = portal.test_client()
    se = bearer(client, "se@wattline.example")
    ontario = sorted(
        (d for d in deals(client, se) if d["prospect"] == "ontario-east"),
        key=lambda d: d["created_at"],
    )
    first, second = ontario
    assert second["conflict"] is True
    assert second["protected_by"] == first["id"]
    assert second["next"] == ["rejected", "lost"]  # approving it would be refused
    refused = client.patch(f"/api/v1/deals/{second['id']}", headers=se, json={"status": "approved"})
    assert refused.status_code == 409
    assert f"deal #{first['id']}" in refused.get_json()["message"]
    rejected = client.patch(
        f"/api/v1/deals/{second['id']}", headers=se, json={"status": "rejected"}
    )
    assert rejected.get_json()["status"] == "rejected"
    approved = client.patch(f"/api/v1/deals/{first['id']}", headers=se, json={"status": "approved"})
    assert approved.get_json()["conflict"] is False


def test_cookie_writes_need_the_csrf_header(portal: Flask) -> None:
    client = portal.test_client()
    assert login(client, "rep@northgrid.example") == 302
    body = {"utility": "Village of Elm Falls Light & Water", "segment": "service_bureau"}
    assert client.post("/api/v1/deals", json=body).status_code == 400
    # A bearer header that does not authenticate leaves it a cookie write.
    junk = {"Authorization": "Bearer junk"}
    assert client.post("/api/v1/deals", json=body, headers=junk).status_code == 400
    token = csrf_from(client.get("/partners/deals").get_data(as_text=True))
    ok = client.post("/api/v1/deals", json=body, headers={"X-CSRFToken": token})
    assert ok.status_code == 201
