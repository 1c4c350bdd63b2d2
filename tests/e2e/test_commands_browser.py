"""A command round trip in a real browser against the real simulator, broker and ingest."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.broker import EmbeddedBroker
from app.config import Settings
from app.db.migrate import upgrade
from app.domain.telemetry import floor_interval
from app.ingest.worker import IngestWorker
from simulator.fleet import Meter
from simulator.publisher import FleetPublisher
from tests.e2e.conftest import log_in, watch
from tests.factories import seed_database

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Meter]]]:
    """Embedded broker, ingest worker, simulator and portal on one SQLite file, all real."""
    root = Path(tmp_path_factory.mktemp("stack"))
    url = f"sqlite:///{root / 'stack.db'}"
    upgrade(url)
    fleet = seed_database(url, intervals=4)
    prefix = f"wle2e/{uuid.uuid4().hex[:8]}"
    broker = EmbeddedBroker().start()
    worker = IngestWorker(broker.url, url, prefix=prefix, client_id=f"e2e-{uuid.uuid4().hex[:6]}")
    worker.start()
    assert worker.wait_connected(10)
    # 60x from yesterday: the meters answer commands as they would live, and their clocks
    # stay in the past for the whole test (the ingest refuses readings from the future).
    start = floor_interval(datetime.now(UTC) - timedelta(days=1))
    publisher = FleetPublisher(
        fleet, mqtt_url=broker.url, seed=7, start=start, speed=60.0, prefix=prefix
    )
    thread = threading.Thread(target=publisher.run, kwargs={"duration": 600}, daemon=True)
    thread.start()
    assert publisher.ready.wait(15)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "e2e-secret",
            "WATTLINE_INSTANCE": str(root),
            "WATTLINE_DEMO": "1",
        }
    )
    app = create_app(replace(settings, mqtt_url=broker.url, topic_prefix=prefix))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield f"http://127.0.0.1:{server.server_port}", fleet
    server.shutdown()
    serving.join(5)
    app.extensions["wattline"]["commands"].close()
    app.extensions["wattline"]["engine"].dispose()
    publisher.stop()
    thread.join(15)
    worker.stop()
    broker.stop()


def test_ping_and_register_read_from_the_meter_page(
    browser: Any, live_stack: tuple[str, list[Meter]]
) -> None:
    base, fleet = live_stack
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "se@wattline.example")
    # A private-network or LTE meter: the cellular cohort may sit on a sunset network.
    meter = next((m for m in fleet if m.network in ("private_nb", "lte")), fleet[0])
    page.goto(f"{base}/meters/{meter.id}")
    for label, expected in (("Ping", "signal_dbm"), ("On-demand read", "kWh")):
        answered = False
        # A wireless call can fail like a real one; an operator would press again.
        for _attempt in range(3):
            page.get_by_role("button", name=label, exact=True).click()
            row = page.locator("#command-log tbody tr").first
            row.locator(".cmd-status.ok, .cmd-status.error, .cmd-status.timeout").wait_for(
                timeout=45_000
            )
            if row.locator(".cmd-status.ok").count():
                answered = True
                break
        assert answered, f"{label}: the meter never answered"
        assert expected in row.inner_text()
    # A reload keeps the log: the commands come back from the meter's history.
    sent = page.locator("#command-log tbody tr").count()
    page.reload()
    page.locator("#command-log tbody tr .cmd-status").first.wait_for(timeout=10_000)
    assert page.locator("#command-log tbody tr").count() == sent
    newest = page.locator("#command-log tbody tr").first
    assert newest.locator("td").nth(1).inner_text() == "On-demand read"
    assert "kWh" in newest.inner_text()
    context.close()
    assert problems == []


def test_security_story_tamper_now_then_a_read_of_the_meter_it_hit(
    browser: Any, live_stack: tuple[str, list[Meter]]
) -> None:
    base, fleet = live_stack
    security = {m.id for m in fleet if m.utility_id in ("fedcenter", "riverton")}
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page, base)
    log_in(page, base, "se@wattline.example")
    page.goto(f"{base}/demo/")
    page.click("#story-security")
    page.locator("#story-banner").wait_for()
    page.click("#story-next")
    page.click("#story-incident")
    page.wait_for_url(f"{base}/?utility=*")
    assert "Started at" in page.inner_text("#story-incident-state")
    # The simulator starts the tamper now; the live feed shows it without a reload.
    page.locator("#event-feed li", has_text="tamper").first.wait_for(timeout=60_000)
    page.click("#story-next")
    page.wait_for_url(f"{base}/meters/**")
    meter_id = page.url.split("/meters/")[1].split("#")[0]
    assert meter_id in security
    assert "reported tamper" in page.inner_text("#story-banner")
    answered = False
    for _attempt in range(3):  # a wireless call can fail like a real one
        page.click("#story-command")
        row = page.locator("#command-log tbody tr").first
        row.locator(".cmd-status.ok, .cmd-status.error, .cmd-status.timeout").wait_for(
            timeout=45_000
        )
        if row.locator(".cmd-status.ok").count():
            answered = True
            break
    assert answered, "the tampered meter never answered the read"
    assert "kWh" in row.inner_text()
    assert "On-demand read: ok" in page.inner_text("#command-announce")
    page.click("#story-next")
    page.wait_for_url(f"{base}/roi?segment=security&utility=*")
    page.locator("#calibration-note").wait_for(state="visible", timeout=15_000)
    context.close()
    assert problems == [], problems
