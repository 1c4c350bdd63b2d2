"""A sales engineer walks the three segment pages in a real browser: charts render, no errors."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.fleet import Meter
from tests.e2e.conftest import log_in, watch

pytestmark = pytest.mark.e2e


def test_segment_pages_render_for_a_sales_engineer(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    base, _fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "se@wattline.example")

    for link, chart, table, utility in [
        ("IOU", "#iou-chart", "#iou-utilities", "Cascade Energy"),
        ("Service bureau", "#bureau-chart", "#bureau-utilities", "Millbrook Municipal Light"),
        ("Security", "#security-chart", "#security-sites", "Federal Center Campus"),
    ]:
        # Keyboard, not mouse: the nav must be reachable without a pointer.
        page.locator("nav[aria-label=Main]").get_by_role("link", name=link, exact=True).focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(f"{chart} .main-svg", timeout=15_000)
        assert page.locator(f"{chart} .barlayer .trace").count() >= 1
        assert utility in page.inner_text(table)
    context.close()
    assert problems == []
