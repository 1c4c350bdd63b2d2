"""A real browser logs in and sees the fleet with rendered plotly charts and no console errors."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.fleet import Meter
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def test_login_fleet_and_meter_pages_render_charts(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    base, fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # Everything must come from the portal itself: no CDN, works offline.
    page.on(
        "request",
        lambda r: (
            problems.append(f"external request: {r.url}")
            if not r.url.startswith(base) and not r.url.startswith("data:")
            else None
        ),
    )

    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")
    page.fill("#email", "rep@northgrid.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    assert page.inner_text("h1") == "Fleet overview"
    page.wait_for_selector("#fleet-chart .main-svg", timeout=15_000)
    traces = page.locator("#fleet-chart .scatterlayer .trace").count()
    assert traces >= 1
    table = page.inner_text("#utilities")
    assert "Great Lakes Power & Light" in table
    assert "Cascade Energy" not in table

    meter = next(m for m in fleet if m.utility_id == "glpl")
    page.click(f"text={meter.id}")
    page.wait_for_selector("#meter-chart .main-svg", timeout=15_000)
    assert meter.site_name in page.inner_text("h1")
    assert page.locator("#meter-chart .barlayer .trace").count() == 1

    page.screenshot(path=str(_artifact("meter-page.png")), full_page=True)
    context.close()
    assert problems == []


def _artifact(name: str) -> Any:
    from pathlib import Path

    out = Path("test-results")
    out.mkdir(exist_ok=True)
    return out / name
