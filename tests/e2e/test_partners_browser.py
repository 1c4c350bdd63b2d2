"""A rep registers a deal and requests an ROI; a vendor engineer produces it (real browser)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from simulator.fleet import Meter
from tests.e2e.conftest import log_in, watch

pytestmark = pytest.mark.e2e


def watched_page(browser: Any, base: str) -> tuple[Any, list[str]]:
    """Open a fresh context (downloads allowed) and the list its problems land in."""
    page = browser.new_context(accept_downloads=True).new_page()
    return page, watch(page, base)


def test_rep_registers_and_requests_roi_engineer_produces_it(
    browser: Any, live_portal: tuple[str, list[Meter]], tmp_path: Path
) -> None:
    base, _fleet = live_portal
    rep, rep_problems = watched_page(browser, base)
    se, se_problems = watched_page(browser, base)
    log_in(rep, base, "rep@northgrid.example")
    log_in(se, base, "se@wattline.example")

    # The rep registers a prospect from the list; choosing it fills the form.
    rep.click("text=Channel")
    rep.wait_for_url(f"{base}/partners/deals")
    rep.select_option("#prospect", "harrisburg")
    assert rep.input_value("#utility") == "City of Harrisburg Facilities"
    assert rep.input_value("#region") == "US-PA"
    rep.fill("#endpoints", "26")
    rep.click("#register-form button[type=submit]")
    rep.wait_for_url(f"{base}/partners/deals/*")
    deal_url = rep.url
    assert rep.inner_text("#deal-status") == "Submitted"
    # Harrisburg already has a NorthGrid deal: this one is flagged for the vendor.
    assert "Flagged" in rep.inner_text("#conflict")

    # The vendor decides the conflict: the older registration is closed as lost, and only
    # then may this one be approved (the first registration is protected while open).
    se.goto(f"{base}/partners/deals")
    older = se.locator("#deals tr", has_text="City of Harrisburg Facilities").last
    older.locator("a").first.click()
    se.wait_for_url(f"{base}/partners/deals/*")
    assert se.url != deal_url
    se.click("button[data-move=lost]")
    se.wait_for_selector("text=is now Lost")
    se.goto(deal_url)
    se.click("button[data-move=approved]")
    se.wait_for_selector("text=is now Approved")

    # The rep fills the customer questionnaire (the ROI model's inputs) and requests the ROI.
    rep.goto(deal_url)
    rep.fill("#in-endpoints", "26")
    rep.fill("#in-site_visits_per_year", "520")
    rep.click("#roi-request")
    rep.wait_for_selector("#roi-waiting")
    assert rep.inner_text("#deal-status") == "ROI requested"

    # The vendor's engineer reviews the figures and builds the model.
    se.goto(deal_url)
    assert se.input_value("#in-site_visits_per_year") == "520"
    se.fill("#in-escort_hourly_rate", "65")
    se.click("#roi-evaluate")
    se.wait_for_selector("#roi-result")

    rep.goto(deal_url)
    npv = rep.inner_text("#roi-npv")
    assert re.fullmatch(r"\$-?[0-9,]+", npv)
    # The rep downloads the co-branded report: it names the customer and carries that NPV.
    with rep.expect_download() as download:
        rep.click("#roi-report-pdf")
    pdf = tmp_path / "deal-roi.pdf"
    download.value.save_as(pdf)
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "City of Harrisburg Facilities" in text
    assert npv.replace("$", "").lstrip("-") in text
    history = rep.inner_text("#history")
    for step in ("registered", "approved", "roi questionnaire", "roi requested", "roi delivered"):
        assert step in history
    # Every step is timestamped.
    assert history.count(" UTC") >= 5

    out = Path("test-results")
    out.mkdir(exist_ok=True)
    rep.screenshot(path=str(out / "deal-with-roi.png"), full_page=True)
    se.goto(f"{base}/partners/kpis")
    se.wait_for_selector("#pipeline-chart .main-svg", timeout=15_000)
    se.goto(f"{base}/partners/registry")
    se.wait_for_selector("#ranking-chart .main-svg", timeout=15_000)
    se.screenshot(path=str(out / "partner-registry.png"), full_page=True)
    assert rep_problems + se_problems == []
