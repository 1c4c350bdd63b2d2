"""A real browser builds an ROI, downloads the PDF and the workbook, and saves a scenario."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from roi.inputs import parse_inputs
from roi.models import run
from roi.report import money
from simulator.fleet import Meter
from tests.e2e.conftest import chart_problems, log_in, watch
from tests.e2e.test_portal_browser import _artifact
from tests.factories import PASSWORD
from tests.unit.test_roi_reports import Workbook

pytestmark = pytest.mark.e2e
CUSTOMER = "Lakeshore Federal Campus"


def _evaluated(page: Any, action: Any) -> None:
    """Do something that re-evaluates the model and wait until the page has drawn the result."""
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/roi") and r.request.method == "POST"
    ) as response:
        action()
    assert response.value.status == 200
    page.wait_for_function("() => !document.getElementById('roi-app').classList.contains('busy')")


def test_build_an_roi_download_reports_and_save_a_scenario(
    browser: Any, live_portal: tuple[str, list[Meter]], tmp_path: Path
) -> None:
    base, _fleet = live_portal
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: (
            problems.append(f"external request: {r.url}")
            if not r.url.startswith((base, "data:", "blob:"))
            else None
        ),
    )

    page.goto(f"{base}/login")
    page.fill("#email", "manager@northgrid.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.click("nav >> text=ROI")
    page.wait_for_url(f"{base}/roi")
    page.wait_for_selector("#chart-montecarlo .main-svg", timeout=20_000)

    # Build a security-segment model and change two assumptions.
    _evaluated(page, lambda: page.select_option("#segment", "security"))
    page.wait_for_selector("#in-site_visits_per_year")
    _evaluated(page, lambda: page.fill("#in-site_visits_per_year", "300"))
    _evaluated(page, lambda: page.fill("#in-escort_hourly_rate", "95"))
    page.fill("#customer-name", CUSTOMER)

    shown_npv = page.inner_text("#kpi-npv")
    document = page.evaluate(
        "() => fetch('/api/v1/roi/defaults?segment=security').then(r => r.json())"
    )
    document["inputs"]["site_visits_per_year"] = 300
    document["inputs"]["escort_hourly_rate"] = 95
    model_npv = run(parse_inputs(document)).npv
    assert shown_npv == money(model_npv)

    # Every chart is drawn, the tornado and the histogram included.
    assert page.locator("#chart-cumulative .scatterlayer .trace").count() >= 2
    assert page.locator("#chart-savings .barlayer .trace").count() == 1
    assert page.locator("#chart-tornado .barlayer .trace").count() == 2
    assert page.locator("#chart-montecarlo .barlayer .trace").count() == 1
    assert "P10" in page.inner_text("#chart-montecarlo")
    assert page.locator("#cash-flows tbody tr").count() == 11
    assert page.is_visible("#risks-card")

    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    pdf_path = tmp_path / pdf_download.value.suggested_filename
    pdf_download.value.save_as(pdf_path)
    assert pdf_path.suffix == ".pdf"
    reader = PdfReader(io.BytesIO(pdf_path.read_bytes()))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert CUSTOMER in text
    assert shown_npv in text
    assert "NorthGrid Supply" in text

    with page.expect_download() as xlsx_download:
        page.click("#download-xlsx")
    xlsx_path = tmp_path / "model.xlsx"
    xlsx_download.value.save_as(xlsx_path)
    assert xlsx_download.value.suggested_filename.endswith(".xlsx")
    assert money(Workbook(xlsx_path).summary()["npv"]) == shown_npv

    with page.expect_download() as csv_download:
        page.click("#download-csv")
    assert csv_download.value.suggested_filename.endswith(".csv")

    # Save it as a scenario: the history shows version 1 by this user.
    page.fill("#scenario-name", "Campus pilot")
    page.click("#save-scenario")
    page.wait_for_selector("#history:not([hidden])")
    history = page.inner_text("#history")
    assert "Campus pilot" in history
    assert "v1" in history
    assert "Morgan NorthGrid" in history
    assert shown_npv in history

    # Prefill from a utility in the fleet: its counts and its network mix appear.
    _evaluated(page, lambda: page.select_option("#calibrate", "glpl"))
    assert page.input_value("#customer-name") == "Great Lakes Power & Light"
    assert page.input_value("#in-modem_lines") == "6200"
    page.wait_for_selector("#network-card:not([hidden])")
    page.wait_for_selector("#chart-network .main-svg")
    assert "public cellular" in page.inner_text("#network-summary")
    assert "after tax" in page.inner_text("#kpi-npv-note")
    assert "Low case" in page.inner_text("#cases-note")
    assert page.is_hidden("#budget-card")

    # A municipal utility on the service bureau gets the annual budget view.
    _evaluated(page, lambda: page.select_option("#calibrate", "millbrook"))
    page.wait_for_selector("#budget-card:not([hidden])")
    assert page.locator("#budget tbody tr").count() == 11

    page.screenshot(path=str(_artifact("roi-page.png")), full_page=True)
    context.close()
    assert problems == []


def test_roi_errors_name_the_field_and_results_are_announced(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    """Errors said "inputs.endpoints.value: ..." and marked a field only by colour."""
    base, _fleet = live_portal
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "manager@northgrid.example")
    page.goto(f"{base}/roi")
    page.wait_for_selector("#chart-cumulative .main-svg", timeout=20_000)

    # Results are told once in one status line, not tile by tile.
    assert page.get_attribute("#save-status", "role") == "status"
    announce = page.locator("#roi-announce")
    assert announce.get_attribute("role") == "status"
    page.wait_for_function(
        "() => document.getElementById('roi-announce').textContent.startsWith('NPV ')",
        timeout=10_000,
    )
    assert "payback" in announce.inner_text()

    # The charts' SVG is hidden from screen readers; savings and tornado have their numbers.
    page.locator("#chart-tornado .main-svg").first.wait_for()
    assert chart_problems(page) == []
    assert page.locator("#savings-data tbody tr").count() == page.evaluate(
        "document.querySelectorAll('#chart-savings .barlayer .point').length"
    )
    assert page.locator("#tornado-data tbody tr").count() >= 2

    # Each assumption's source is reachable without a mouse: the field describes itself.
    endpoints = page.locator("#in-endpoints")
    description = page.evaluate(
        "() => document.getElementById('in-endpoints').getAttribute('aria-describedby')"
        ".split(' ').map(id => document.getElementById(id).textContent).join(' ')"
    )
    assert "Source:" in description, description
    assert page.locator(".roi-inputs label[title]").count() == 0
    assert "Hover" not in page.inner_text(".roi-inputs")

    # A refused value: the message names the field as the page shows it, the field says so.
    label = page.inner_text("#label-endpoints")
    value_before = endpoints.input_value()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/roi")) as response:
        endpoints.fill("0")
    assert response.value.status == 400
    error = page.locator("#roi-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith(f"{label}: "), error.inner_text()
    assert "inputs." not in error.inner_text()
    assert endpoints.get_attribute("aria-invalid") == "true"
    assert "roi-error" in (endpoints.get_attribute("aria-describedby") or "").split()
    _evaluated(page, lambda: endpoints.fill(value_before))
    # A value typed on the way below a ranged assumption's low end widened its range for good
    # (a 0 stayed in the range sent, which the server refused until a fresh document); the
    # range now follows the value from the range as loaded.
    ranged = page.evaluate(
        "[...document.querySelectorAll('.roi-inputs .range')]"
        ".find(r => r.textContent !== 'fixed').id.replace('range-', '')"
    )
    field, shown = page.locator(f"#in-{ranged}"), page.locator(f"#range-{ranged}")
    loaded, typed = shown.inner_text(), field.input_value()
    low = float(loaded.split(" \u2013 ")[0])  # "800 \u2013 2000"
    with page.expect_response(lambda r: r.url.endswith("/api/v1/roi")):
        field.fill(str(low / 2))
    assert shown.inner_text() != loaded
    _evaluated(page, lambda: field.fill(typed))
    assert shown.inner_text() == loaded
    assert endpoints.get_attribute("aria-invalid") is None
    assert "roi-error" not in (endpoints.get_attribute("aria-describedby") or "").split()
    assert error.is_hidden()

    # Saving without a name marks the name field and takes the focus there.
    page.fill("#scenario-name", "")
    page.click("#save-scenario")
    page.wait_for_selector("#scenario-name[aria-invalid=true]")
    assert page.evaluate("document.activeElement.id") == "scenario-name"
    assert error.inner_text().startswith("Scenario name: "), error.inner_text()
    context.close()
    assert [p for p in problems if "400" not in p] == []
