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
