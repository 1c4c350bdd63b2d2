"""Browser fixtures: a live portal on a seeded database and Debian's chromium via Playwright."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.config import Settings
from simulator.fleet import Meter
from tests.conftest import skip_or_fail
from tests.factories import PASSWORD, seed_database

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# The dev server's threads drop a static file's handle to the garbage collector when the
# browser abandons the download by moving on (keyboard-fast story steps); that is the test
# server's housekeeping, not the portal's, so only that one warning is let through.
_ABANDONED_STATIC = (
    "ignore:Exception ignored in. <_io.FileIO name='.*/app/web/static/"
    ":pytest.PytestUnraisableExceptionWarning"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let through only the dev server's abandoned-static-file warning in browser tests."""
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings(_ABANDONED_STATIC))


def chromium_path() -> str | None:
    """Find Debian's chromium (Playwright never downloads its own browser here)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the live portal's instance and SQLite file."""
    return Path(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def e2e_database_url(e2e_root: Path) -> str:
    """The live portal's database, so a test can write to it while the browser watches."""
    return f"sqlite:///{e2e_root / 'e2e.db'}"


@pytest.fixture(scope="module")
def live_portal(e2e_root: Path, e2e_database_url: str) -> Iterator[tuple[str, list[Meter]]]:
    """Serve the portal on a free loopback port over a seeded SQLite database."""
    root, url = e2e_root, e2e_database_url
    from app.db.migrate import upgrade

    upgrade(url)
    fleet = seed_database(url)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "e2e-secret",
            "WATTLINE_INSTANCE": str(root),
            "WATTLINE_DEMO": "1",
        }
    )
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", fleet
    server.shutdown()
    thread.join(5)
    app.extensions["wattline"]["engine"].dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Launch headless chromium through Playwright."""
    path = chromium_path()
    if path is None:
        skip_or_fail("no chromium on this machine: `make test` installs Debian's package as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def watch(page: Any, base: str) -> list[str]:
    """Collect console errors, page errors and any request that leaves the portal (offline)."""
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith((base, "data:", "blob:"))
            else problems.append(f"external request: {r.url}")
        ),
    )
    return problems


# axe-core impacts that fail a page. "moderate" counts too: heading order, landmarks and
# unlabelled regions are barriers for screen-reader users even if axe ranks them lower.
BLOCKING_IMPACTS = frozenset({"moderate", "serious", "critical"})
# "minor" rules that still name a real WCAG failure on a page of ours.
BLOCKING_MINOR_RULES = frozenset({"empty-table-header"})


def accessibility_problems(page: Any) -> list[str]:
    """Run axe-core (bundled by axe-playwright-python, offline) on the page; list blocking violations."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(", ".join(n["target"]) for n in v["nodes"][:3])
        for v in results.response["violations"]
        if v.get("impact") in BLOCKING_IMPACTS or v["id"] in BLOCKING_MINOR_RULES
    ]


def chart_problems(page: Any) -> list[str]:
    """List charts whose SVG is read aloud or whose figure has no caption."""
    return page.evaluate(
        """() => {
          const out = [];
          document.querySelectorAll('.js-plotly-plot').forEach(el => {
            const name = el.id || el.className;
            el.querySelectorAll('.main-svg').forEach(svg => {
              if (svg.getAttribute('aria-hidden') !== 'true') out.push(location.pathname + ' ' + name + ': svg not aria-hidden');
            });
            const figure = el.closest('figure');
            if (!figure || !figure.querySelector('figcaption')) out.push(location.pathname + ' ' + name + ': no figcaption');
          });
          return out;
        }"""
    )


def log_in(page: Any, base: str, email: str) -> None:
    """Log in through the real form and wait for the fleet page."""
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
