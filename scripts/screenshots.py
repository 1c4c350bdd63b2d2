"""Take the README's screenshots of the main portal pages (`make screenshots`).

Builds a throwaway SQLite demo (fleet, logins, channel data and three days of simulated
history through the real backfill), serves the portal on a free port and drives Debian's
chromium with Playwright. Writes docs/screenshots/*.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import update
from werkzeug.serving import make_server

from app import create_app
from app.config import Settings
from app.db import models
from app.db.migrate import upgrade
from app.db.seed import seed_fleet, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
from app.domain.telemetry import floor_interval
from simulator.backfill import backfill
from simulator.fleet import build_fleet
from simulator.scenario import load_scenario

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGES = (
    ("fleet", "/", "#fleet-map .main-svg"),
    ("iou", "/segments/iou", "#iou-chart .main-svg"),
    ("service-bureau", "/segments/service-bureau", "#bureau-chart .main-svg"),
    ("security", "/segments/security", "#security-chart .main-svg"),
    ("alarms", "/alarms/", "#open-alarms"),
    ("roi", "/roi", ".main-svg"),
    ("deals", "/partners/deals", "main"),
    ("kpis", "/partners/kpis", "#pipeline-chart .main-svg"),
)


def build_demo(root: Path) -> tuple[str, list[str]]:
    """Create the demo database; return its URL and a few meter ids."""
    url = f"sqlite:///{root / 'shots.db'}"
    upgrade(url)
    meters = build_fleet(200, 42)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, meters)
        seed_users(session, "demo")
        seed_partners(session, now)
    start = floor_interval(now - timedelta(days=3))
    incidents = load_scenario("demo").bind(meters, start, 42)
    backfill(engine, meters, 42, start, 3, incidents)
    # Backfill writes history, not liveness: show the fleet as a running demo would, with
    # a few meters offline.
    offline = {m.id for m in meters[::23]}
    with engine.begin() as conn:
        conn.execute(update(models.Meter).values(status="online", status_at=now))
        conn.execute(
            update(models.Meter).where(models.Meter.id.in_(offline)).values(status="offline")
        )
    engine.dispose()
    return url, [m.id for m in meters[:3]]


def main() -> None:
    """Serve a demo portal and save a screenshot of each main page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium: `make test` installs Debian's package")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url, meter_ids = build_demo(Path(tmp))
        # Demo mode: the demo logins work only there.
        settings = Settings.from_env(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": "screenshots",
                "WATTLINE_INSTANCE": tmp,
                "WATTLINE_DEMO": "1",
            }
        )
        app = create_app(settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        pages = (*PAGES, ("meter", f"/meters/{meter_ids[0]}", "#meter-chart .main-svg"))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--headless", "--no-sandbox"]
            )
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(f"{base}/login")
            page.fill("#email", "se@wattline.example")
            page.fill("#password", "demo")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            for name, path, ready in pages:
                page.goto(f"{base}{path}")
                page.locator(ready).first.wait_for(timeout=20_000)
                page.wait_for_timeout(500)  # let plotly finish its transitions
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(f"wrote docs/screenshots/{name}.png")
            browser.close()
        server.shutdown()
        app.extensions["wattline"]["engine"].dispose()


if __name__ == "__main__":
    main()
