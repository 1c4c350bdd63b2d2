"""Every role in a real browser: each allowed page renders without console errors, the rest are refused."""

from __future__ import annotations

from typing import Any

import pytest

from app.db.seed import DEMO_LOGINS, DemoLogin
from simulator.fleet import Meter
from tests.e2e.conftest import accessibility_problems, log_in, watch

pytestmark = pytest.mark.e2e

CHANNEL = {"vendor_admin", "vendor_se", "distributor_manager", "distributor_rep"}
# Page -> roles that may open it (everyone else gets 403). Tenant rows are checked elsewhere.
PAGES: dict[str, set[str]] = {
    "/": CHANNEL | {"utility_viewer", "building_manager"},
    "/alarms/": CHANNEL | {"utility_viewer", "building_manager"},
    "/segments/iou": CHANNEL,
    "/segments/service-bureau": CHANNEL | {"utility_viewer"},
    "/segments/security": CHANNEL | {"building_manager"},
    "/roi": CHANNEL,
    "/demo/": {"vendor_admin", "vendor_se"},
    "/dead-letters/": {"vendor_admin", "vendor_se", "distributor_manager", "utility_viewer"},
    "/partners/deals": CHANNEL,
    "/partners/prospects": CHANNEL,
    "/partners/rfx": CHANNEL,
    "/partners/prices": CHANNEL,
    "/partners/kpis": CHANNEL,
    "/partners/registry": {"vendor_admin", "vendor_se"},
}
DISTRIBUTOR = {"glpl": "northgrid", "atlantic": "northgrid", "cascade": "prairiemeter",
               "millbrook": "northgrid", "prec": "prairiemeter", "fedcenter": "northgrid",
               "riverton": "prairiemeter"}  # fmt: skip


def own_and_foreign_meter(login: DemoLogin, fleet: list[Meter]) -> tuple[Meter, Meter]:
    """Return a meter the login may see and one it may not."""

    def mine(m: Meter) -> bool:
        if login.utility_id:
            return m.utility_id == login.utility_id
        return login.distributor_id in (None, DISTRIBUTOR[m.utility_id])

    own = next(m for m in fleet if mine(m))
    foreign = next((m for m in fleet if not mine(m)), own)
    return own, foreign


@pytest.mark.parametrize("login", DEMO_LOGINS, ids=lambda d: d.email)
def test_role_walks_its_pages(
    browser: Any, live_portal: tuple[str, list[Meter]], login: DemoLogin
) -> None:
    base, fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    page.goto(f"{base}/login")
    barriers = accessibility_problems(page)
    log_in(page, base, login.email)

    for path, roles in PAGES.items():
        response = page.goto(f"{base}{path}")
        assert response is not None
        expected = 200 if login.role in roles else 403
        assert response.status == expected, (login.email, path)
        if expected == 200:
            # Every chart on the page has rendered (plotly draws an svg in each).
            for chart in page.locator("[data-plotly]").all():
                chart.locator(".main-svg").first.wait_for(timeout=15_000)
            barriers += accessibility_problems(page)
        else:
            assert "Traceback" not in page.content()
            # A refused page is a friendly page, and its console noise is the 403 itself.
            problems[:] = [p for p in problems if "403" not in p]
    own, foreign = own_and_foreign_meter(login, fleet)
    assert page.goto(f"{base}/meters/{own.id}").status == 200  # type: ignore[union-attr]
    page.locator("#meter-chart .main-svg").first.wait_for(timeout=15_000)
    barriers += accessibility_problems(page)
    if foreign is not own:
        assert page.goto(f"{base}/meters/{foreign.id}").status == 404  # type: ignore[union-attr]
        problems[:] = [p for p in problems if "404" not in p]
    context.close()
    assert problems == [], (login.email, problems)
    assert barriers == [], (login.email, barriers)


@pytest.mark.parametrize("email", ["se@wattline.example", "admin@wattline.example"])
def test_presenter_clicks_through_a_story_by_mouse_and_keyboard(
    browser: Any, live_portal: tuple[str, list[Meter]], email: str
) -> None:
    base, _fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, email)
    page.goto(f"{base}/demo/")
    page.click("#story-iou")
    banner = page.locator("#story-banner")
    banner.wait_for()
    assert "IOU story · step 1 of 4: The live fleet" in banner.inner_text()
    page.locator("#fleet-chart .main-svg").first.wait_for(timeout=15_000)
    barriers = accessibility_problems(page)
    # A presenter's clicker or the arrow keys step through without touching the mouse.
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"{base}/?utility=glpl")
    assert "step 2 of 4" in banner.inner_text()
    assert page.locator("#story-incident").is_visible()
    page.click("#story-next")
    page.wait_for_url(f"{base}/meters/**")
    assert "step 3 of 4: A two-way command" in banner.inner_text()
    assert "Send: Ping" in page.inner_text("#story-command")
    page.locator("#meter-chart .main-svg").first.wait_for(timeout=15_000)
    barriers += accessibility_problems(page)
    page.click("#story-back")
    page.wait_for_url(f"{base}/?utility=glpl")
    page.locator("#story-next").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/meters/**")
    page.click("#story-next")
    page.wait_for_url(f"{base}/roi?segment=iou&utility=glpl")
    assert "step 4 of 4: The ROI" in banner.inner_text()
    # The ROI arrives prefilled from the featured utility's fleet.
    page.locator("#calibration-note").wait_for(state="visible", timeout=15_000)
    assert page.input_value("#customer-name") == "Great Lakes Power & Light"
    page.locator("#chart-cumulative .main-svg").first.wait_for(timeout=15_000)
    barriers += accessibility_problems(page)
    page.click("#story-exit")
    page.wait_for_url(f"{base}/demo/")
    assert page.locator("#story-banner").count() == 0

    # In presenter mode the story buttons sit under the top bar on every page.
    page.click("#presenter-toggle")
    page.click("#presenter-story-security")
    banner.wait_for()
    assert "Security story · step 1 of 4" in banner.inner_text()
    barriers += accessibility_problems(page)
    page.click("#story-exit")
    context.close()
    assert problems == [], problems
    assert barriers == [], barriers


def test_presenter_mode_fits_a_1024_wide_projector(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    """At 20 px the nav stacked one item a line and pushed "Log out" off the screen."""
    base, _fleet = live_portal
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    log_in(page, base, "se@wattline.example")
    page.click("#presenter-toggle")
    page.wait_for_selector("body.presenter")
    for path in ("/", "/demo/", "/alarms/"):
        page.goto(f"{base}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024, path
        header = page.locator(".topbar").bounding_box()
        assert header is not None
        assert header["height"] < 140, (path, header)
        logout = page.get_by_role("button", name="Log out").bounding_box()
        assert logout is not None
        assert logout["x"] + logout["width"] <= 1024, path
    context.close()
