"""Channel workspace pages through the Flask client on a real database."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from app import create_app
from app.db import models
from app.db.session import make_sessionmaker
from tests.factories import seed_database
from tests.integration.test_portal import csrf_from, login, make_settings


@pytest.fixture
def portal(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a database seeded with the fleet, demo logins and partner data."""
    seed_database(database_url, meters=7, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def client_for(portal: Flask, email: str) -> FlaskClient:
    """Return a logged-in client."""
    client = portal.test_client()
    assert login(client, email) == 302
    return client


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    """GET a page, check its status and return its text."""
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def deal_row(portal: Flask, **where: object) -> models.Deal:
    """Read one deal straight from the database."""
    engine = portal.extensions["wattline"]["engine"]
    with make_sessionmaker(engine)() as s:
        query = select(models.Deal)
        for key, value in where.items():
            query = query.where(getattr(models.Deal, key) == value)
        return s.scalars(query.order_by(models.Deal.id.desc())).first()  # type: ignore[return-value]


def test_registry_ranks_twelve_candidates_with_editable_weights(portal: Flask) -> None:
    se = client_for(portal, "se@wattline.example")
    html = page(se, "/partners/registry")
    assert len(re.findall(r'<tr data-partner="', html)) == 12
    assert 'data-plotly="ranking-chart-data"' in html
    assert "Sensitivity of the ranking" in html
    # Weight only meter-vendor neutrality: the neutral 5/5 candidates lead, the meter maker is last.
    only = "&".join(
        f"{k}={1 if k == 'vendor_neutrality' else 0}"
        for k in (
            "utility_customers",
            "sales_reps",
            "avg_rep_tenure_years",
            "compensation_alignment",
            "network_fit",
            "mdm_fit",
            "vendor_neutrality",
        )
    )
    order = re.findall(r'<tr data-partner="([^"]+)"', page(se, f"/partners/registry?{only}"))
    assert order[-1] == "meridian"
    assert order[0] in {"bajio", "clearwave", "gridsoft"}
    bad = page(se, "/partners/registry?mdm_fit=-4", 400)
    assert "weights.mdm_fit" in bad


def test_prospects_by_segment_only_the_leads_routed_to_the_partner(portal: Flask) -> None:
    ng = page(client_for(portal, "rep@northgrid.example"), "/partners/prospects")
    assert "Ohio Valley Electric" in ng
    assert "Kearney Public Power" not in ng
    assert "Municipal / co-op service bureau" in ng
    vendor = page(client_for(portal, "admin@wattline.example"), "/partners/prospects")
    assert "Railbelt Electric Co-op" in vendor
    assert "vendor follow-up" in vendor


def test_register_a_deal_through_the_form(portal: Flask) -> None:
    rep = client_for(portal, "rep@northgrid.example")
    html = page(rep, "/partners/deals?prospect=elm-falls")
    assert 'value="Village of Elm Falls Light &amp; Water"' in html
    token = csrf_from(html)
    form = {"utility": "Village of Elm Falls Light & Water", "segment": "service_bureau"}
    assert rep.post("/partners/deals", data=form).status_code == 400  # no CSRF token
    refused = rep.post("/partners/deals", data={**form, "region": "US-TX", "csrf_token": token})
    assert refused.status_code == 422
    assert "outside NorthGrid Supply&#39;s territory" in refused.get_data(as_text=True)
    # The refused field is marked, described by the error and focused; the others are not.
    marked = re.findall(
        r'<(?:input|select)[^>]*aria-invalid="true"[^>]*>', refused.get_data(as_text=True)
    )
    assert len(marked) == 1, marked
    assert 'name="region"' in marked[0]
    assert 'aria-describedby="flash-error"' in marked[0]
    assert "autofocus" in marked[0]
    assert 'id="flash-error" role="alert"' in refused.get_data(as_text=True)
    ok = rep.post("/partners/deals", data={**form, "prospect": "elm-falls", "csrf_token": token})
    assert ok.status_code == 302
    deal = deal_row(portal, utility_name="Village of Elm Falls Light & Water")
    assert ok.headers["Location"].endswith(f"/partners/deals/{deal.id}")
    assert (deal.status, deal.region, deal.endpoints, deal.prospect_id) == (
        "submitted",
        "US-WI",
        55,
        "elm-falls",
    )


def test_transitions_roi_request_and_evaluation_through_the_pages(portal: Flask) -> None:
    rep = client_for(portal, "rep@northgrid.example")
    se = client_for(portal, "se@wattline.example")
    token = csrf_from(page(rep, "/partners/deals"))
    rep.post(
        "/partners/deals",
        data={"prospect": "fort-meade", "utility": "Fort Meade Support Buildings",
              "segment": "security", "csrf_token": token},
    )  # fmt: skip
    deal = deal_row(portal, prospect_id="fort-meade")
    url = f"/partners/deals/{deal.id}"
    html = page(rep, url)
    assert 'data-move="approved"' not in html  # not the rep's move
    se_token = csrf_from(page(se, url))
    assert 'data-move="approved"' in page(se, url)
    assert se.post(f"{url}/status", data={"status": "approved"}).status_code == 400  # CSRF
    assert (
        se.post(f"{url}/status", data={"status": "approved", "csrf_token": se_token}).status_code
        == 302
    )
    bad = rep.post(f"{url}/roi", data={"in.endpoints": "lots", "csrf_token": token})
    assert bad.status_code == 400
    assert "roi_inputs.inputs.endpoints" in bad.get_data(as_text=True)
    assert (
        rep.post(
            f"{url}/roi",
            data={"in.endpoints": "64", "in.site_visits_per_year": "700", "csrf_token": token},
        ).status_code
        == 302
    )
    assert deal_row(portal, id=deal.id).status == "roi_requested"
    assert 'id="roi-waiting"' in page(rep, url)
    assert rep.post(f"{url}/roi/evaluate", data={"csrf_token": token}).status_code == 403
    review = page(se, url)
    assert 'value="700"' in review  # the engineer sees the rep's figures
    assert se.post(
        f"{url}/roi/evaluate",
        data={"edited": "1", "in.endpoints": "64", "in.site_visits_per_year": "720",
              "csrf_token": se_token},
    ).status_code == 302  # fmt: skip
    stored = deal_row(portal, id=deal.id)
    assert stored.roi_result is not None
    assert stored.roi_inputs is not None
    assert stored.roi_inputs["inputs"]["site_visits_per_year"]["value"] == 720
    assert stored.roi_delivered_at is not None
    assert stored.roi_requested_at is not None
    assert stored.roi_requested_at <= stored.roi_delivered_at
    shown = page(rep, url)
    assert 'id="roi-npv"' in shown
    history = re.findall(r"<li><strong>([a-z ]+)</strong> · (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", shown)
    assert [a for a, _ in history] == [
        "registered", "approved", "roi questionnaire", "roi requested", "roi delivered"
    ]  # fmt: skip


def test_rfx_paste_upload_answer_suggest_and_export(portal: Flask) -> None:
    rep = client_for(portal, "rep@northgrid.example")
    se = client_for(portal, "se@wattline.example")
    token = csrf_from(page(rep, "/partners/rfx"))
    pasted = rep.post(
        "/partners/rfx",
        data={"title": "Ohio Valley RFI", "csrf_token": token,
              "requirements": "1. Is data encrypted in transit?\n2. =cmd|' /C calc'!A0\n3. Remote disconnect"},
    )  # fmt: skip
    assert pasted.status_code == 302
    doc_url = pasted.headers["Location"]
    upload = rep.post(
        "/partners/rfx",
        data={"title": "Uploaded", "csrf_token": token,
              "file": (io.BytesIO(b"id,requirement\nR1,Green Button export\n"), "rfq.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert upload.status_code == 302
    assert "Green Button export" in page(rep, upload.headers["Location"])
    assert (
        rep.post(
            "/partners/rfx", data={"title": "Empty", "requirements": " ", "csrf_token": token}
        ).status_code
        == 400
    )
    for deal in ("\u00b2", "9" * 30):  # not a deal number: 400, not a 500
        refused = rep.post(
            "/partners/rfx",
            data={"title": "T", "requirements": "R1", "deal": deal, "csrf_token": token},
        )
        assert refused.status_code == 400
        assert "deal: must be a deal number" in refused.get_data(as_text=True)
        assert re.search(r'<select name="deal" aria-invalid="true"', refused.get_data(as_text=True))
    vendor_view = page(se, doc_url)
    assert "Suggested (" in vendor_view
    assert "TLS 1.2" in vendor_view  # the encryption answer is suggested
    assert "TLS 1.2" in page(se, f"{doc_url}?q=encryption")
    assert "Suggested (" not in page(rep, doc_url)  # distributors do not browse the library
    req_id = re.findall(r'<tr id="req-(\d+)">', vendor_view)[0]
    se_token = csrf_from(vendor_view)
    answer_url = f"{doc_url}/requirements/{req_id}"
    assert (
        rep.post(
            answer_url, data={"answer": "x", "compliance": "no", "csrf_token": token}
        ).status_code
        == 403
    )
    assert (
        se.post(
            answer_url, data={"answer": "x", "compliance": "maybe", "csrf_token": se_token}
        ).status_code
        == 400
    )
    assert se.post(
        answer_url,
        data={"answer": "Yes, TLS 1.3 end to end.", "compliance": "compliant", "save": "1",
              "csrf_token": se_token},
    ).status_code == 302  # fmt: skip
    rows = list(csv.reader(io.StringIO(page(rep, f"{doc_url}/matrix.csv"))))
    assert rows[0] == ["#", "Requirement", "Answer", "Compliance"]
    assert rows[1] == [
        "1",
        "Is data encrypted in transit?",
        "Yes, TLS 1.3 end to end.",
        "compliant",
    ]
    assert rows[2][1].startswith("'=")
    assert rows[3][3] == "unanswered"
    xlsx = rep.get(f"{doc_url}/matrix.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.data))["Compliance matrix"]
    assert sheet["C3"].value == "Yes, TLS 1.3 end to end."
    assert (sheet["B4"].value[:1], sheet["B4"].data_type) == ("=", "s")  # text, as typed
    assert "TLS 1.3 end to end" in page(se, f"{doc_url}?q=encrypted")  # saved to the library
    assert rep.get(f"{doc_url}/matrix.pdf").status_code == 404


def test_price_book_shows_each_partner_its_own_tier(portal: Flask) -> None:
    ng = page(client_for(portal, "rep@northgrid.example"), "/partners/prices")
    assert 'data-tier="gold"' in ng
    assert 'data-tier="silver"' not in ng
    pm_client = client_for(portal, "rep@prairiemeter.example")
    pm = page(pm_client, "/partners/prices")
    assert 'data-tier="silver"' in pm
    assert "3G sunset replacement push" in pm
    assert "Service-bureau launch" not in pm  # a gold-tier promotion
    page(pm_client, "/partners/prices?tier=gold", 403)
    vendor = page(client_for(portal, "se@wattline.example"), "/partners/prices?endpoints=10")
    assert all(f'data-tier="{t}"' in vendor for t in ("gold", "silver", "bronze"))
    page(client_for(portal, "se@wattline.example"), "/partners/prices?endpoints=-3", 400)
    page(client_for(portal, "se@wattline.example"), "/partners/prices?endpoints=%C2%B2", 400)
    page(client_for(portal, "se@wattline.example"), "/partners/prices?endpoints=" + "9" * 5000, 400)
    # An id past the INTEGER columns is not found, on pages as in the API.
    page(client_for(portal, "se@wattline.example"), "/partners/deals/" + "9" * 30, 404)
    page(client_for(portal, "se@wattline.example"), "/partners/rfx/" + "9" * 30, 404)


def test_kpi_dashboard_and_csv_per_side(portal: Flask) -> None:
    se = client_for(portal, "se@wattline.example")
    html = page(se, "/partners/kpis")
    for chart in ("pipeline-data", "revenue-data", "cycle-data"):
        assert f'data-plotly="{chart}"' in html
    rows = list(csv.reader(io.StringIO(page(se, "/partners/kpis.csv"))))
    assert rows[0] == ["KPI", "All", "NorthGrid Supply", "Prairie Meter & Supply"]
    table = {r[0]: r[1:] for r in rows}
    assert table["Won"] == ["2", "1", "1"]
    assert table["Meters deployed"] == ["1120", "900", "220"]
    revenue = table["Vendor revenue (USD)"]
    assert all(re.fullmatch(r"\d+\.\d\d", v) for v in revenue)  # plain numbers for a sheet
    # The page shows the same figures for people: thousands separated, whole dollars.
    shown = html.split('id="kpi-table"', 1)[1]
    assert '<td class="num">1,120</td>' in shown
    assert f'<td class="num">${float(revenue[0]):,.0f}</td>' in shown
    rep = client_for(portal, "rep@prairiemeter.example")
    own = list(csv.reader(io.StringIO(page(rep, "/partners/kpis.csv"))))
    assert own[0] == ["KPI", "All", "Prairie Meter & Supply"]
    page(rep, "/partners/kpis?partner=northgrid", 404)
    only_ng = {
        r[0]: r[1:]
        for r in csv.reader(io.StringIO(page(se, "/partners/kpis.csv?partner=northgrid")))
    }
    assert only_ng["Won"] == ["1", "1"]


def test_channel_nav_link_only_for_channel_roles(portal: Flask) -> None:
    assert ">Channel</a>" in page(client_for(portal, "rep@northgrid.example"), "/")
    assert ">Channel</a>" not in page(client_for(portal, "ops@millbrook.example"), "/")


def test_vendor_adds_a_lead_and_it_is_routed_by_segment_and_territory(portal: Flask) -> None:
    se = client_for(portal, "se@wattline.example")
    token = csrf_from(page(se, "/partners/prospects"))
    lead = {"name": "Buckeye Rural Co-op", "segment": "service_bureau", "region": "us-oh",
            "c_and_i_customers": "300", "modem_lines": "45", "csrf_token": token}  # fmt: skip
    assert se.post("/partners/prospects", data=lead).status_code == 302
    assert "Buckeye Rural Co-op" in page(
        client_for(portal, "rep@northgrid.example"), "/partners/prospects"
    )
    assert "Buckeye Rural Co-op" not in page(
        client_for(portal, "rep@prairiemeter.example"), "/partners/prospects"
    )
    assert (
        se.post("/partners/prospects", data={**lead, "name": "Buckeye Rural Co-op"}).status_code
        == 302
    )
    west = se.post("/partners/prospects", data={**lead, "name": "Tundra Power", "region": "US-AK"})
    assert west.status_code == 302
    engine = portal.extensions["wattline"]["engine"]
    with make_sessionmaker(engine)() as s:
        rows = {p.id: p for p in s.scalars(select(models.Prospect))}
    assert rows["buckeye-rural-co-op"].distributor_id == "northgrid"
    assert rows["buckeye-rural-co-op"].region == "US-OH"
    assert "buckeye-rural-co-op-2" in rows  # a second lead of the same name gets its own id
    assert rows["tundra-power"].distributor_id is None
    assert "no partner covers" in rows["tundra-power"].routing_reason
    bad = se.post("/partners/prospects", data={**lead, "region": "Ohio"})
    assert bad.status_code == 400
    assert "region:" in bad.get_data(as_text=True)
    assert se.post("/partners/prospects", data={**lead, "modem_lines": "-2"}).status_code == 400
    rep = client_for(portal, "rep@northgrid.example")
    rep_token = csrf_from(page(rep, "/partners/prospects"))
    assert (
        rep.post("/partners/prospects", data={**lead, "csrf_token": rep_token}).status_code == 403
    )


def test_a_stale_questionnaire_does_not_break_the_deal_page(portal: Flask) -> None:
    engine = portal.extensions["wattline"]["engine"]
    with make_sessionmaker(engine).begin() as s:
        deal = s.scalars(select(models.Deal).where(models.Deal.status == "roi_requested")).first()
        assert deal is not None
        # As if written by an older ROI model version with an input that no longer exists.
        deal.roi_inputs = {"segment": deal.segment, "inputs": {"retired_input": 3}}
        deal_id = deal.id
    html = page(client_for(portal, "se@wattline.example"), f"/partners/deals/{deal_id}")
    assert 'id="roi-form"' in html
    assert 'id="in-endpoints"' in html
