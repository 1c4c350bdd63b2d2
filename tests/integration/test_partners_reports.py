"""The co-branded ROI report attached to a deal: produced by the vendor, downloaded by the rep."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader

from app import create_app
from tests.factories import seed_database
from tests.integration.test_partners_api import bearer, deals
from tests.integration.test_portal import make_settings


@pytest.fixture
def portal(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a database seeded with the fleet, demo logins and partner data."""
    seed_database(database_url, meters=7, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def delivered_deal(client: FlaskClient) -> int:
    """Have the vendor's engineer deliver the ROI a NorthGrid rep requested (seeded deal)."""
    rep, se = bearer(client, "rep@northgrid.example"), bearer(client, "se@wattline.example")
    deal = next(d for d in deals(client, rep) if d["status"] == "roi_requested")
    url = f"/api/v1/deals/{deal['id']}"
    assert (
        client.get(f"/partners/deals/{deal['id']}/roi/report.pdf", headers=rep).status_code == 409
    )
    built = client.patch(url, json={"evaluate_roi": True}, headers=se)
    assert built.status_code == 200, built.get_json()
    return int(deal["id"])


def test_rep_downloads_the_co_branded_report(portal: Flask) -> None:
    client = portal.test_client()
    deal_id = delivered_deal(client)
    rep = bearer(client, "rep@northgrid.example")
    body = client.get(f"/api/v1/deals/{deal_id}", headers=rep).get_json()
    response = client.get(f"/partners/deals/{deal_id}/roi/report.pdf", headers=rep)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
    assert body["utility"] in text
    assert "NorthGrid" in text
    assert f"{abs(body['roi']['npv']):,.0f}" in text
    again = client.get(f"/partners/deals/{deal_id}/roi/report.pdf", headers=rep)
    assert again.data == response.data  # dated by delivery: reproducible
    xlsx = client.get(f"/partners/deals/{deal_id}/roi/report.xlsx", headers=rep)
    assert xlsx.status_code == 200
    assert xlsx.data[:2] == b"PK"


def test_report_is_refused_to_other_tenants_and_before_delivery(portal: Flask) -> None:
    client = portal.test_client()
    deal_id = delivered_deal(client)
    other = bearer(client, "rep@prairiemeter.example")
    assert client.get(f"/partners/deals/{deal_id}/roi/report.pdf", headers=other).status_code == 404
    viewer = bearer(client, "ops@millbrook.example")
    assert (
        client.get(f"/partners/deals/{deal_id}/roi/report.pdf", headers=viewer).status_code == 403
    )
    rep = bearer(client, "rep@northgrid.example")
    assert client.get(f"/partners/deals/{deal_id}/roi/report.doc", headers=rep).status_code == 404
    pending = next(d for d in deals(client, rep) if d["roi"] is None)
    response = client.get(f"/partners/deals/{pending['id']}/roi/report.pdf", headers=rep)
    assert response.status_code == 409
