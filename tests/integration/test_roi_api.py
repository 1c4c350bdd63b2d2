"""ROI API and page through Flask's test client on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader

from app import create_app
from app.db.seed import DEMO_LOGINS
from roi.inputs import defaults
from roi.report import money
from simulator.fleet import UTILITY_BY_ID, Meter
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings
from tests.integration.test_segments import reshape_day
from tests.unit.test_roi_models import SMALL_IOU

ROI_LOGINS = {
    "admin@wattline.example",
    "se@wattline.example",
    "manager@northgrid.example",
    "rep@northgrid.example",
    "rep@prairiemeter.example",
}
NORTHGRID = "manager@northgrid.example"
PRAIRIE = "rep@prairiemeter.example"


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed the fleet, the demo logins and a day of readings per meter."""
    return seed_database(database_url)


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


class Caller:
    """A logged-in browser session: cookie auth plus the page's CSRF token for writes."""

    def __init__(self, app: Flask, email: str) -> None:
        self.client: FlaskClient = app.test_client()
        assert login(self.client, email) == 302
        page = self.client.get("/")
        self.csrf = csrf_from(page.get_data(as_text=True))

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def post(self, url: str, body: Any, *, csrf: bool = True) -> Any:
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return self.client.post(url, json=body, headers=headers)


def small_iou() -> dict[str, Any]:
    return {"segment": "iou", "horizon_years": 5, "discount_rate": 0.08, "inputs": SMALL_IOU}


@pytest.mark.parametrize("email", [d.email for d in DEMO_LOGINS])
def test_roi_access_by_role(app: Flask, email: str) -> None:
    caller = Caller(app, email)
    expected = 200 if email in ROI_LOGINS else 403
    assert caller.get("/roi").status_code == expected
    assert caller.get("/api/v1/roi/defaults?segment=iou").status_code == expected
    assert caller.post("/api/v1/roi", small_iou()).status_code == expected
    nav = caller.get("/").get_data(as_text=True)
    assert ('href="/roi"' in nav) == (email in ROI_LOGINS)


def test_roi_needs_login(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/api/v1/roi/defaults?segment=iou")
    assert response.status_code == 401
    assert response.get_json()["message"]
    assert client.post("/api/v1/roi", json=small_iou()).status_code == 401
    assert client.get("/roi").status_code == 302


@pytest.mark.parametrize("segment", ["iou", "service_bureau", "security"])
def test_defaults_document_is_complete(app: Flask, segment: str) -> None:
    caller = Caller(app, "se@wattline.example")
    body = caller.get(f"/api/v1/roi/defaults?segment={segment}").get_json()
    assert body == defaults(segment)
    assert body["inputs"]
    for item in body["inputs"].values():
        assert {"value", "unit", "source", "low", "high"} <= item.keys()
        assert item["source"]
        assert item["low"] <= item["value"] <= item["high"]
    # The document round-trips: posting it unedited evaluates.
    assert caller.post("/api/v1/roi", body).status_code == 200


def test_evaluate_matches_the_hand_worked_case_and_the_year0_convention(app: Flask) -> None:
    caller = Caller(app, "rep@northgrid.example")
    response = caller.post("/api/v1/roi", small_iou())
    assert response.status_code == 200
    body = response.get_json()
    assert body["npv"] == pytest.approx(76_528.14, abs=0.005)
    assert body["discount_rate"] == 0.08
    assert body["simple_payback_years"] == pytest.approx(2 + 41_520 / 59_240)
    assert body["discounted_payback_years"] == pytest.approx(3.1684, abs=1e-4)
    assert body["irr"] == pytest.approx(0.247904, abs=1e-6)
    flows = body["cash_flows"]
    assert [row["year"] for row in flows] == [0, 1, 2, 3, 4, 5]
    assert flows[0]["net"] == -160_000
    rebuilt = sum(row["net"] / 1.08 ** row["year"] for row in flows)
    assert body["npv"] == pytest.approx(rebuilt)
    assert body["monte_carlo"]["draws"] == 10_000
    assert 0 <= body["monte_carlo"]["probability_payback"] <= 1
    assert body["tornado"]["bars"]
    assert body["cases"]["low"]["npv"] <= body["npv"] <= body["cases"]["high"]["npv"]


def _with(**changes: Any) -> dict[str, Any]:
    doc = small_iou()
    inputs = changes.pop("inputs", None)
    if inputs is not None:
        doc["inputs"] = {**doc["inputs"], **inputs}
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"segment": "cooperative"}, "segment"),
        ({"horizon_years": 5}, "segment"),
        (_with(discount_rate=5), "discount_rate"),
        (_with(discount_rate="8 %"), "discount_rate"),
        (_with(horizon_years=0), "horizon_years"),
        (_with(horizon_years=2.5), "horizon_years"),
        (_with(inputs={"endpoints": -1}), "inputs.endpoints"),
        (_with(inputs={"endpoints": True}), "inputs.endpoints"),
        (_with(inputs={"endpoints": 1e300}), "inputs.endpoints"),
        (_with(inputs={"warp_drive": 1}), "inputs.warp_drive"),
        (
            _with(inputs={"modem_line_monthly": {"value": 600, "unit": "$/line/yr"}}),
            "inputs.modem_line_monthly.unit",
        ),
        (
            _with(inputs={"truck_roll_cost": {"value": 400, "low": 450}}),
            "inputs.truck_roll_cost.low",
        ),
        ({**small_iou(), "inputs": "lots"}, "inputs"),
        (_with(colour="blue"), "colour"),
        ([1, 2, 3], "document"),
    ],
)
def test_bad_fields_get_400_naming_the_field(app: Flask, body: Any, field: str) -> None:
    caller = Caller(app, "se@wattline.example")
    for url in ("/api/v1/roi", "/api/v1/roi/report?format=csv"):
        response = caller.post(url, body)
        assert response.status_code == 400, url
        answer = response.get_json()
        assert answer["field"] == field
        assert field in answer["message"]


def test_nan_and_non_json_bodies_are_400(app: Flask) -> None:
    caller = Caller(app, "se@wattline.example")
    headers = {"X-CSRFToken": caller.csrf, "Content-Type": "application/json"}
    nan = caller.client.post(
        "/api/v1/roi", data='{"segment": "iou", "discount_rate": NaN}', headers=headers
    )
    assert (nan.status_code, nan.get_json()["field"]) == (400, "discount_rate")
    junk = caller.client.post("/api/v1/roi", data="{not json", headers=headers)
    assert (junk.status_code, junk.get_json()["field"]) == (400, "document")


def test_bad_query_fields_name_the_field(app: Flask) -> None:
    caller = Caller(app, "se@wattline.example")
    response = caller.get("/api/v1/roi/defaults?segment=municipal")
    assert (response.status_code, response.get_json()["field"]) == (400, "segment")
    response = caller.post("/api/v1/roi/report?format=docx", small_iou())
    assert (response.status_code, response.get_json()["field"]) == (400, "format")
    response = caller.post("/api/v1/roi/report?format=pdf", {**small_iou(), "customer_name": 7})
    assert (response.status_code, response.get_json()["field"]) == (400, "customer_name")
    response = caller.get("/api/v1/roi/calibrate")
    assert (response.status_code, response.get_json()["field"]) == (400, "utility")


def test_cookie_writes_need_csrf_and_bearer_calls_do_not(app: Flask) -> None:
    caller = Caller(app, "rep@northgrid.example")
    refused = caller.post("/api/v1/roi", small_iou(), csrf=False)
    assert refused.status_code == 400
    assert "CSRF" in refused.get_json()["message"]
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/token", json={"email": "rep@northgrid.example", "password": PASSWORD}
    ).get_json()["token"]
    response = client.post(
        "/api/v1/roi", json=small_iou(), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_reports_in_three_formats(app: Flask) -> None:
    caller = Caller(app, NORTHGRID)
    body = {**small_iou(), "customer_name": "Lakeshore Widgets Inc."}
    npv = caller.post("/api/v1/roi", small_iou()).get_json()["npv"]

    pdf = caller.post("/api/v1/roi/report?format=pdf", body)
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert "lakeshore-widgets-inc" in pdf.headers["Content-Disposition"]
    text = " ".join(
        " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).split()
    )
    assert "Lakeshore Widgets Inc." in text
    assert "NorthGrid Supply" in text  # the distributor's own name on its reports
    assert money(npv) in text

    xlsx = caller.post("/api/v1/roi/report?format=xlsx", body)
    assert xlsx.status_code == 200
    assert xlsx.data[:2] == b"PK"
    assert xlsx.mimetype.endswith("spreadsheetml.sheet")

    csv_response = caller.post("/api/v1/roi/report?format=csv", body)
    assert csv_response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(csv_response.get_data(as_text=True))))
    assert [int(r["year"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert float(rows[3]["cumulative"]) == pytest.approx(17_720)


@pytest.mark.parametrize(
    ("segment", "inputs"),
    [
        ("iou", {"endpoints": 1, "modem_lines": 1, "installation_cost": 0, "integration_cost": 0,
                 "endpoint_cost": 1e-310}),
        ("service_bureau", {"onboarding_fee": 5e-324}),
    ],
)  # fmt: skip
def test_an_outlay_too_small_for_a_rate_of_return_answers_without_one(
    app: Flask, segment: str, inputs: dict[str, float]
) -> None:
    """numpy-financial's IRR of such flows is infinite, which was a 500 (JSON has no inf)."""
    if segment == "service_bureau":
        inputs = {**inputs, "subscription_monthly": 0}
    body = {"segment": segment, "horizon_years": 1, "inputs": inputs}
    response = Caller(app, NORTHGRID).post("/api/v1/roi", body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["irr"] is None


@pytest.mark.parametrize(
    ("keep_hours", "quality", "success"),
    [
        # A daily meter that called in 4 hours into the day owes nothing more yet.
        (4, None, 1.0),
        # A whole day, its first 2 hours VEE estimates: 8 of the fleet's intervals not read.
        (24, "estimated-linear", None),
    ],
)
def test_calibration_read_success_is_reads_over_what_was_due(
    app: Flask, fleet: list[Meter], database_url: str, keep_hours: int, quality: str | None,
    success: float | None,
) -> None:  # fmt: skip
    """The prefill counts read success as the IOU page does (it priced re-reads from it)."""
    meter_id = sorted(m.id for m in fleet if m.utility_id == "glpl")[0]
    reshape_day(database_url, meter_id, keep_hours=keep_hours, quality=quality, offline=False)
    body = Caller(app, NORTHGRID).get("/api/v1/roi/calibrate?utility=glpl").get_json()
    due = sum(m.utility_id == "glpl" for m in fleet) * 96
    expected = success if success is not None else (due - 8) / due
    assert body["profile"]["read_success"] == pytest.approx(expected)


def test_calibration_reads_the_fleet_within_the_tenant(app: Flask, fleet: list[Meter]) -> None:
    northgrid = Caller(app, NORTHGRID)
    body = northgrid.get("/api/v1/roi/calibrate?utility=glpl").get_json()
    glpl = UTILITY_BY_ID["glpl"]
    inputs = body["document"]["inputs"]
    assert body["customer_name"] == glpl.name
    assert inputs["endpoints"]["value"] == glpl.c_and_i_customers
    assert inputs["modem_lines"]["value"] == glpl.modem_lines
    assert inputs["manual_reads_per_year"]["value"] == (
        (glpl.c_and_i_customers - glpl.modem_lines) * 12
    )
    meters = [m for m in fleet if m.utility_id == "glpl"]
    assert body["profile"]["meters"] == len(meters)
    on_3g = sum(m.network == "3g" for m in meters)
    assert inputs["sunset_share"]["value"] == pytest.approx(round(on_3g / len(meters), 4))
    # Every seeded interval of the last day arrived.
    assert body["profile"]["read_success"] == pytest.approx(1.0)
    assert inputs["re_reads_per_year"]["value"] == 0
    assert northgrid.post("/api/v1/roi", body["document"]).status_code == 200

    security = northgrid.get("/api/v1/roi/calibrate?utility=fedcenter").get_json()
    sites = sum(m.utility_id == "fedcenter" for m in fleet)
    assert security["document"]["inputs"]["site_visits_per_year"]["value"] == sites * 12

    # Another distributor's utility does not exist for this caller; nor does a made-up one.
    assert northgrid.get("/api/v1/roi/calibrate?utility=cascade").status_code == 404
    assert northgrid.get("/api/v1/roi/calibrate?utility=nowhere").status_code == 404
    report = northgrid.post(
        "/api/v1/roi/report?format=csv", {**small_iou(), "utility_id": "cascade"}
    )
    assert report.status_code == 404
    assert Caller(app, PRAIRIE).get("/api/v1/roi/calibrate?utility=cascade").status_code == 200
    assert (
        Caller(app, "admin@wattline.example")
        .get("/api/v1/roi/calibrate?utility=cascade")
        .status_code
        == 200
    )


def test_scenarios_are_versioned_tenant_scoped_and_reproducible(app: Flask) -> None:
    manager = Caller(app, NORTHGRID)
    created = manager.post(
        "/api/v1/roi/scenarios",
        {
            "name": "GLPL phase 1",
            "customer_name": "Great Lakes Power & Light",
            "utility_id": "glpl",
            "document": small_iou(),
            "note": "first cut from the rep's survey",
        },
    )
    assert created.status_code == 201
    scenario = created.get_json()
    sid = scenario["id"]
    assert scenario["distributor_id"] == "northgrid"
    assert scenario["latest_version"] == 1

    v1_report = manager.get(f"/api/v1/roi/scenarios/{sid}/versions/1/report?format=pdf")
    assert v1_report.status_code == 200

    rep = Caller(app, "rep@northgrid.example")
    edited = {**small_iou(), "inputs": {**SMALL_IOU, "modem_line_monthly": 70}}
    second = rep.post(
        f"/api/v1/roi/scenarios/{sid}/versions", {"document": edited, "note": "phone bill"}
    )
    assert second.status_code == 201
    assert second.get_json()["version"] == 2
    assert second.get_json()["changes"] == [
        {"field": "inputs.modem_line_monthly.value", "from": 40, "to": 70}
    ]

    history = manager.get(f"/api/v1/roi/scenarios/{sid}").get_json()
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert [v["created_by"] for v in history["versions"]] == ["Riley NorthGrid", "Morgan NorthGrid"]
    assert history["versions"][1]["note"] == "first cut from the rep's survey"
    assert history["versions"][0]["npv"] > history["versions"][1]["npv"]

    stored = manager.get(f"/api/v1/roi/scenarios/{sid}/versions/1").get_json()
    assert stored["model_version"] == "roi-1"
    assert stored["document"]["inputs"]["modem_line_monthly"]["unit"] == "$/line/month"
    assert stored["document"]["inputs"]["modem_line_monthly"]["value"] == 40
    # Version 1's report is rebuilt byte for byte after later edits.
    again = manager.get(f"/api/v1/roi/scenarios/{sid}/versions/1/report?format=pdf")
    assert again.data == v1_report.data
    v1_text = " ".join(PdfReader(io.BytesIO(again.data)).pages[0].extract_text().split())
    assert money(history["versions"][1]["npv"]) in v1_text
    assert "v1" in v1_text

    listed = {s["id"] for s in manager.get("/api/v1/roi/scenarios").get_json()["scenarios"]}
    assert sid in listed
    assert sid in {
        s["id"]
        for s in Caller(app, "se@wattline.example")
        .get("/api/v1/roi/scenarios")
        .get_json()["scenarios"]
    }

    other = Caller(app, PRAIRIE)
    assert sid not in {s["id"] for s in other.get("/api/v1/roi/scenarios").get_json()["scenarios"]}
    for url in (
        f"/api/v1/roi/scenarios/{sid}",
        f"/api/v1/roi/scenarios/{sid}/versions/1",
        f"/api/v1/roi/scenarios/{sid}/versions/1/report?format=pdf",
    ):
        assert other.get(url).status_code == 404, url
    assert (
        other.post(f"/api/v1/roi/scenarios/{sid}/versions", {"document": edited}).status_code == 404
    )
    assert manager.get(f"/api/v1/roi/scenarios/{sid}/versions/9").status_code == 404
    assert manager.get("/api/v1/roi/scenarios/999999").status_code == 404
    viewer = Caller(app, "ops@millbrook.example")
    assert viewer.get(f"/api/v1/roi/scenarios/{sid}").status_code == 403

    page = manager.get("/roi").get_data(as_text=True)
    assert "GLPL phase 1" in page
    assert "GLPL phase 1" not in other.get("/roi").get_data(as_text=True)


def test_vendor_scenario_without_a_utility_stays_with_the_vendor(app: Flask) -> None:
    se = Caller(app, "se@wattline.example")
    created = se.post(
        "/api/v1/roi/scenarios",
        {"name": "Template", "customer_name": "Prospect", "document": defaults("security")},
    )
    assert created.status_code == 201
    sid = created.get_json()["id"]
    assert created.get_json()["distributor_id"] is None
    assert Caller(app, NORTHGRID).get(f"/api/v1/roi/scenarios/{sid}").status_code == 404
    assert (
        Caller(app, "admin@wattline.example").get(f"/api/v1/roi/scenarios/{sid}").status_code == 200
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_name": "X", "document": small_iou()}, "name"),
        ({"name": "X", "document": small_iou()}, "customer_name"),
        ({"name": "X", "customer_name": "Y"}, "document"),
        (
            {
                "name": "X",
                "customer_name": "Y",
                "document": {"segment": "iou", "horizon_years": 99},
            },
            "horizon_years",
        ),
        ({"name": "", "customer_name": "Y", "document": small_iou()}, "name"),
        ({"name": "X" * 500, "customer_name": "Y", "document": small_iou()}, "name"),
    ],
)
def test_saving_a_bad_scenario_names_the_field(
    app: Flask, body: dict[str, Any], field: str
) -> None:
    response = Caller(app, NORTHGRID).post("/api/v1/roi/scenarios", body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_a_version_cannot_change_segment(app: Flask) -> None:
    caller = Caller(app, NORTHGRID)
    sid = caller.post(
        "/api/v1/roi/scenarios", {"name": "A", "customer_name": "B", "document": small_iou()}
    ).get_json()["id"]
    response = caller.post(
        f"/api/v1/roi/scenarios/{sid}/versions", {"document": defaults("security")}
    )
    assert (response.status_code, response.get_json()["field"]) == (400, "document.segment")


def test_responses_keep_the_catalogue_order(app: Flask) -> None:
    raw = Caller(app, "se@wattline.example").get("/api/v1/roi/defaults?segment=iou").data
    assert list(json.loads(raw)["inputs"]) == list(defaults("iou")["inputs"])


def test_network_mix_from_a_request_and_from_the_fleet(app: Flask, fleet: list[Meter]) -> None:
    northgrid = Caller(app, NORTHGRID)
    body = {
        "sites": [{"site_id": "town", "area": "urban"}, {"site_id": "farm", "area": "rural"}],
        "discount_rate": 0.0,
        "costs": {"cost_escalation": 0},
    }
    mix = northgrid.post("/api/v1/roi/network-mix", body)
    assert mix.status_code == 200
    assert [c["network"] for c in mix.get_json()["choices"]] == ["cellular", "private"]
    bad = northgrid.post("/api/v1/roi/network-mix", {"sites": [{"site_id": "x", "area": "moon"}]})
    assert (bad.status_code, bad.get_json()["field"]) == (400, "sites[0].area")
    huge = northgrid.post(
        "/api/v1/roi/network-mix", {**body, "costs": {"cellular_endpoint": 10**400}}
    )
    assert (huge.status_code, huge.get_json()["field"]) == (400, "costs.cellular_endpoint")

    from_fleet = northgrid.get("/api/v1/roi/network-mix?utility=glpl")
    assert from_fleet.status_code == 200
    choices = from_fleet.get_json()["choices"]
    assert {c["site_id"] for c in choices} == {m.id for m in fleet if m.utility_id == "glpl"}
    assert sum(from_fleet.get_json()["counts"].values()) == len(choices)
    assert northgrid.get("/api/v1/roi/network-mix?utility=cascade").status_code == 404
    missing = northgrid.get("/api/v1/roi/network-mix")
    assert (missing.status_code, missing.get_json()["field"]) == (400, "utility")
    assert (
        Caller(app, "ops@millbrook.example")
        .get("/api/v1/roi/network-mix?utility=millbrook")
        .status_code
        == 403
    )
