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
    # NorthGrid already has Harrisburg open: registering it again would restart its
    # protection window, so the form says which deal to update instead.
    rep.wait_for_selector("text=for this utility is still open")
    assert rep.url == f"{base}/partners/deals"
    # The refusal is a 409 page, which Chromium logs; nothing else may be.
    refused = (
        "console: Failed to load resource: the server responded with a status of 409 (CONFLICT)"
    )
    assert rep_problems == [refused]
    rep_problems.clear()

    # The vendor closes the old registration as lost; the rep registers it anew.
    se.goto(f"{base}/partners/deals")
    older = se.locator("#deals tr", has_text="City of Harrisburg Facilities").last
    older.locator("a").first.click()
    se.wait_for_url(f"{base}/partners/deals/*")
    se.click("button[data-move=lost]")
    se.wait_for_selector("text=is now Lost")
    rep.select_option("#prospect", "harrisburg")
    rep.fill("#endpoints", "26")
    rep.click("#register-form button[type=submit]")
    rep.wait_for_url(f"{base}/partners/deals/*")
    deal_url = rep.url
    assert deal_url != se.url
    assert rep.inner_text("#deal-status") == "Submitted"
    assert rep.locator("#conflict").count() == 0  # no other registration holds it
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
