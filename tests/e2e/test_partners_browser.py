"""A rep registers a deal and requests an ROI; a vendor engineer produces it (real browser)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from simulator.fleet import Meter
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def watched_page(browser: Any, base: str, problems: list[str]) -> Any:
    """Open a fresh context whose console errors and off-site requests land in `problems`."""
    page = browser.new_context().new_page()
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: (
            problems.append(f"external request: {r.url}")
            if not r.url.startswith(base) and not r.url.startswith("data:")
            else None
        ),
    )
    return page


def log_in(page: Any, base: str, email: str) -> None:
    """Log in through the real form."""
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_rep_registers_and_requests_roi_engineer_produces_it(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    base, _fleet = live_portal
    problems: list[str] = []
    rep = watched_page(browser, base, problems)
    se = watched_page(browser, base, problems)
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
    assert re.fullmatch(r"\$-?[0-9,]+", rep.inner_text("#roi-npv"))
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
    assert problems == []
