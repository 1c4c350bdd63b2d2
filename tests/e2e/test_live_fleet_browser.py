"""The fleet page updates itself in a real browser when an event reaches the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.e2e.conftest import log_in, watch

pytestmark = pytest.mark.e2e


def test_event_feed_and_map_update_live(
    browser: Any, live_portal: tuple[str, list[Meter]], e2e_database_url: str
) -> None:
    base, fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "se@wattline.example")
    page.wait_for_selector("#live-state.on", timeout=15_000)
    page.wait_for_selector("#fleet-map .main-svg", timeout=15_000)
    # The outline plus one trace per meter state present.
    assert page.locator("#fleet-map .scatterlayer .trace").count() >= 2

    meter = next(m for m in fleet if m.utility_id == "fedcenter")
    engine = make_engine(e2e_database_url)
    with make_sessionmaker(engine).begin() as session:
        message = telemetry.EventMessage(
            meter.id, "e2e-tamper", "tamper", datetime.now(UTC), "critical"
        )
        topic = telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "event")
        write_batch(session, [Accepted(topic, message, b"", datetime.now(UTC))], MeterDirectory())
    engine.dispose()

    # No reload: the Server-Sent Events stream brings it.
    page.wait_for_selector(f"#event-feed li:has-text('{meter.site_name}')", timeout=10_000)
    assert "tamper" in page.inner_text("#event-feed")
    item = page.locator(f"#event-feed li:has-text('{meter.site_name}')").first.inner_text()
    assert re.search(r" · \d{4}-\d\d-\d\d \d\d:\d\d UTC$", item), item  # no microseconds

    # The meter drops off: the security tile counts it with the totals, without a reload
    # (the segment tiles kept their page-load figures through a whole storm).
    tile = "[data-segment=security] [data-seg-field=offline]"
    before = int(page.inner_text(tile))
    engine = make_engine(e2e_database_url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            update(models.Meter).where(models.Meter.id == meter.id).values(status="offline")
        )
    engine.dispose()
    page.wait_for_function(
        "([sel, n]) => document.querySelector(sel).textContent === String(n)",
        arg=[tile, before + 1],
        timeout=10_000,
    )
    context.close()
    assert problems == []


def _write_event(database_url: str, meter: Meter, kind: str) -> None:
    """Store one event for a meter, as the ingest worker would."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        message = telemetry.EventMessage(
            meter.id,
            f"e2e-{kind}-{datetime.now(UTC).timestamp()}",
            kind,
            datetime.now(UTC),
            "warning",
        )
        topic = telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "event")
        write_batch(session, [Accepted(topic, message, b"", datetime.now(UTC))], MeterDirectory())
    engine.dispose()


def _set_status(database_url: str, meter: Meter, status: str) -> None:
    """Change a meter's status (a push that brings no new event)."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            update(models.Meter).where(models.Meter.id == meter.id).values(status=status)
        )
    engine.dispose()


def _pushes(page: Any) -> int:
    """Count the server pushes the page has applied."""
    return int(page.get_attribute("#live-totals", "data-updates") or 0)


def _wait_for_push(page: Any, after: int) -> None:
    page.wait_for_function(
        "n => Number(document.getElementById('live-totals').dataset.updates || 0) > n",
        arg=after,
        timeout=10_000,
    )


# Runs before the test that takes every live stream: a page opened after it may find them
# still held and fall back to a snapshot every 15 s.
def test_live_feed_keeps_focus_and_nodes_announces_new_events_and_pauses(
    browser: Any, live_portal: tuple[str, list[Meter]], e2e_database_url: str
) -> None:
    """The feed was rebuilt inside aria-live each push: re-announced, and focus fell to <body>."""
    base, fleet = live_portal
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "se@wattline.example")
    page.wait_for_selector("#live-state.on", timeout=15_000)
    # The list itself is not a live region; one quiet status element speaks for it.
    assert page.get_attribute("#event-feed", "aria-live") is None
    assert page.get_attribute("#feed-announce", "role") == "status"
    meter, other = [m for m in fleet if m.utility_id == "glpl"][:2]
    n = _pushes(page)
    _write_event(e2e_database_url, meter, "low_voltage")
    _wait_for_push(page, n)
    first = page.locator("#event-feed li").first
    assert meter.site_name in first.inner_text()
    page.wait_for_function(
        "s => document.getElementById('feed-announce').textContent.includes(s)",
        arg=meter.site_name,
        timeout=10_000,
    )
    first.locator("a").focus()
    page.evaluate("window.__feedItem = document.querySelector('#event-feed li')")

    # Two pushes that bring no new event: the items stay the same nodes, focus stays put.
    for status in ("offline", "online"):
        n = _pushes(page)
        _set_status(e2e_database_url, other, status)
        _wait_for_push(page, n)
    assert page.evaluate("document.activeElement.closest('#event-feed li') === window.__feedItem")
    assert page.evaluate("window.__feedItem.isConnected")

    # A new event is inserted above; the focused item is still the same node.
    n = _pushes(page)
    _write_event(e2e_database_url, other, "tamper")
    _wait_for_push(page, n)
    assert other.site_name in page.locator("#event-feed li").first.inner_text()
    assert page.evaluate("document.activeElement.closest('#event-feed li') === window.__feedItem")

    # Paused, pushes are not applied: the offline count stays, then catches up on resume.
    pause = page.locator("#live-pause")
    assert pause.inner_text() == "Pause live updates"
    offline = page.inner_text("[data-total=offline]")
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true"
    assert pause.inner_text() == "Pause live updates"
    n = _pushes(page)
    _set_status(e2e_database_url, other, "offline")
    page.wait_for_timeout(3_000)
    assert _pushes(page) == n
    assert page.inner_text("[data-total=offline]") == offline
    pause.click()
    assert pause.get_attribute("aria-pressed") == "false"
    page.wait_for_function(
        "v => document.querySelector('[data-total=offline]').textContent !== v",
        arg=offline,
        timeout=10_000,
    )
    _set_status(e2e_database_url, other, "online")
    context.close()
    assert problems == []


def test_a_fleet_page_past_the_live_streams_says_it_updates_every_15_s(
    browser: Any, live_portal: tuple[str, list[Meter]]
) -> None:
    """It showed a red "reconnecting…" as if broken; four pages stay live beside it."""
    from app.web.fleet import STREAM_SLOTS

    base, _fleet = live_portal
    context = browser.new_context()
    first = context.new_page()
    log_in(first, base, "se@wattline.example")
    pages = [first] + [context.new_page() for _ in range(STREAM_SLOTS)]
    for page in pages[1:]:
        page.goto(f"{base}/")
    states = []
    for page in pages:
        page.wait_for_function(
            "() => !['connecting…', 'reconnecting…'].includes("
            "document.getElementById('live-state').textContent)",
            timeout=15_000,
        )
        states.append(page.inner_text("#live-state"))
    # (A stream of an earlier test may still hold its slot until its next write.)
    assert set(states) == {"live", "updating every 15 s"}, states
    context.close()
