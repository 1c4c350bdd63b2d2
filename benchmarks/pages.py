"""Portal page server times on a big PostgreSQL fleet (10,000 meters x 90 days by default).

The database is seeded once with the simulator's backfill (plus events, statuses, dead
letters and the demo logins) and re-used while a marker row says that seed completed.
Every page and main API endpoint is requested through the real Flask app (in-process
test client) for each role that may see it; the figure is the app's own
`Server-Timing: app;dur=...` header, so the test client's overhead is not counted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import click
import numpy as np
from sqlalchemy import Engine, create_engine, insert, select, text, update
from sqlalchemy.engine import make_url

from app.db import models
from app.db.migrate import upgrade
from app.db.seed import DEMO_LOGINS, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
from simulator.backfill import backfill, default_start
from simulator.fleet import build_fleet

BUDGET_MS: Final = 300.0
PASSWORD: Final = "bench-pages"  # noqa: S105 - a throwaway benchmark database
SEED: Final = 42
MARKER_TABLE: Final = "bench_seed_marker"
EVENTS_PER_METER: Final = 12
_EVENT_KINDS: Final = (
    ("power_outage", "critical"),
    ("power_restored", "info"),
    ("tamper", "critical"),
    ("demand_threshold", "warning"),
    ("low_signal", "warning"),
    ("comms_failure", "warning"),
    ("comms_restored", "info"),
    ("clock_drift", "info"),
)


def database_url() -> str | None:
    """Return the page benchmark's database: BENCH_PAGES_DATABASE_URL, else `bench_pages` beside BENCH_DATABASE_URL."""
    explicit = os.environ.get("BENCH_PAGES_DATABASE_URL")
    if explicit:
        return explicit
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        return None
    return make_url(base).set(database="bench_pages").render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database if the server does not have it yet."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def _marker_key(meters: int, days: int) -> str:
    return f"pages:{meters}x{days}:seed{SEED}"


def _marker(engine: Engine, key: str) -> datetime | None:
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} "
                "(key text PRIMARY KEY, data_end timestamptz NOT NULL, completed_at timestamptz NOT NULL)"
            )
        )
        found = conn.scalar(
            text(f"SELECT data_end FROM {MARKER_TABLE} WHERE key = :key"),  # noqa: S608 - fixed name
            {"key": key},
        )
    return found if isinstance(found, datetime) else None


def seed(url: str, meters: int, days: int) -> tuple[datetime, float]:
    """Seed the benchmark database unless a marker says it is complete; return (data end, seconds)."""
    ensure_database(url)
    upgrade(url)
    engine = make_engine(url)
    key = _marker_key(meters, days)
    try:
        done = _marker(engine, key)
        if done is not None:
            click.echo(f"pages: re-using the seeded {meters:,} meters x {days} days (marker {key})")
            return done, 0.0
        clock = time.perf_counter()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = default_start(days, now)
        end = start + timedelta(days=days)
        fleet = build_fleet(meters, seed=SEED)
        total = meters * days * 96
        click.echo(
            f"pages: seeding {meters:,} meters x {days} days ({total:,} readings) into {url}"
        )
        with click.progressbar(length=total, label="backfill", show_pos=True) as bar:
            # Received when the period began, so "received in the last hour" counts hold
            # only what a live ingest adds, not the whole history for an hour after seeding.
            stats = backfill(engine, fleet, SEED, start, days, progress=bar.update, now=start)
        click.echo(
            f"pages: backfill wrote {stats.written:,} rows (writing {stats.write_seconds:.0f} s, "
            f"rollups {stats.rollup_seconds:.0f} s)"
        )
        _seed_the_rest(engine, [m.id for m in fleet], end)
        click.echo("pages: VACUUM ANALYZE")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("readings", "readings_hourly", "readings_daily", "events", "meters"):
                conn.execute(text(f"VACUUM (ANALYZE) {table}"))
            # The small tables too: autovacuum never analyzes a 7-row table, and without
            # statistics the planner guesses one utility per distributor and picks nested
            # loops over thousands of meters.
            conn.execute(text("ANALYZE"))
        with engine.begin() as conn:
            conn.execute(
                text(f"INSERT INTO {MARKER_TABLE} VALUES (:key, :end, :at)"),  # noqa: S608 - fixed name
                {"key": key, "end": end, "at": datetime.now(UTC)},
            )
        elapsed = time.perf_counter() - clock
        click.echo(f"pages: seeded in {elapsed / 60:.1f} min")
        return end, elapsed
    finally:
        engine.dispose()


def _seed_the_rest(engine: Engine, ids: list[str], end: datetime) -> None:
    # What the live ingest would have added: statuses, events, dead letters; and the logins.
    rng = np.random.default_rng(SEED)
    offline = rng.random(len(ids)) < 0.03
    with make_sessionmaker(engine).begin() as session:
        seed_users(session, PASSWORD)
        seed_partners(session, end)
        for state in (True, False):
            chosen = [m for m, off in zip(ids, offline.tolist(), strict=True) if off == state]
            for lo in range(0, len(chosen), 1000):
                session.execute(
                    update(models.Meter)
                    .where(models.Meter.id.in_(chosen[lo : lo + 1000]))
                    .values(
                        status="offline" if state else "online",
                        status_at=end - timedelta(hours=2 if state else 24),
                        last_seen_at=end - timedelta(hours=2 if state else 0),
                    )
                )
        n = len(ids) * EVENTS_PER_METER
        meter = rng.integers(0, len(ids), n)
        kind = rng.integers(0, len(_EVENT_KINDS), n)
        ago = rng.random(n) * 90 * 86400
        rows = [
            {
                "meter_id": ids[m],
                "event_id": f"bench-{k}",
                "type": _EVENT_KINDS[t][0],
                "severity": _EVENT_KINDS[t][1],
                "at": end - timedelta(seconds=round(s)),
                "details": {},
                "received_at": end - timedelta(seconds=round(s)),
            }
            for k, (m, t, s) in enumerate(
                zip(meter.tolist(), kind.tolist(), ago.tolist(), strict=True)
            )
        ]
        for lo in range(0, len(rows), 10_000):
            session.execute(insert(models.Event), rows[lo : lo + 10_000])
        session.execute(
            insert(models.DeadLetter),
            [
                {
                    "topic": f"wattline/v1/u/{ids[k]}/interval",
                    "payload": b'{"bad": true}',
                    "reason": "schema: missing readings",
                    "received_at": end - timedelta(minutes=k),
                    "meter_id": ids[k],
                }
                for k in range(min(500, len(ids)))
            ],
        )


@dataclass(frozen=True)
class Timing:
    """Server times of one page for one role."""

    page: str
    role: str
    status: int
    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        """Return the median in ms."""
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        """Return the 95th percentile in ms (nearest rank)."""
        ordered = sorted(self.samples)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]

    @property
    def worst(self) -> float:
        """Return the maximum in ms."""
        return max(self.samples)


def _pages(meter_id: str, end: datetime, deal_id: int | None) -> list[tuple[str, str]]:
    # (label, path): every portal page and the main API endpoints.
    week = f"start={(end - timedelta(days=7)).strftime('%Y-%m-%dT%H:%M:%SZ')}&end={end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    out = [
        ("fleet overview", "/"),
        ("fleet map points", "/fleet/map"),
        ("meter page (busiest visible meter)", f"/meters/{meter_id}"),
        ("segment: IOU", "/segments/iou"),
        ("segment: service bureau", "/segments/service-bureau"),
        ("segment: security", "/segments/security"),
        ("alarms", "/alarms/"),
        ("ROI", "/roi"),
        ("partners home", "/partners/"),
        ("partners registry", "/partners/registry"),
        ("partners prospects", "/partners/prospects"),
        ("partners deals", "/partners/deals"),
        ("partners RFx", "/partners/rfx"),
        ("partners prices", "/partners/prices"),
        ("partners KPIs", "/partners/kpis"),
        ("dead letters", "/dead-letters/"),
        ("demo control", "/demo/"),
        ("export: 7-day CSV", f"/api/v1/meters/{meter_id}/readings?format=csv&{week}"),
        ("export: 7-day Green Button", f"/api/v1/meters/{meter_id}/greenbutton?{week}"),
        ("API: meters", "/api/v1/meters"),
        ("API: meter", f"/api/v1/meters/{meter_id}"),
        ("API: fleet summary", "/api/v1/fleet/summary"),
        ("API: alarms", "/api/v1/alarms"),
        ("API: daily rollups", f"/api/v1/meters/{meter_id}/rollups?period=daily"),
        ("API: deals", "/api/v1/deals"),
    ]
    if deal_id is not None:
        out.append(("partners deal", f"/partners/deals/{deal_id}"))
    return out


def _busiest_meter(engine: Engine, scope: Any) -> str | None:
    from app.db.queries import scoped_meters

    with make_sessionmaker(engine)() as session:
        query = scoped_meters(scope).order_by(models.Meter.peak_kw.desc()).limit(1)
        meter = session.scalars(query).first()
    return meter.id if meter else None


def measure(url: str, end: datetime, runs: int, warmup: int) -> list[Timing]:
    """Request every page for every demo login that may see it; return the server times."""
    from app import create_portal
    from app.config import Settings
    from app.db.live_queries import live_snapshot
    from app.domain.access import scope_for

    # Demo mode: the demo logins work only there.
    settings = replace(
        Settings.from_env(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "WATTLINE_INSTANCE": tempfile.mkdtemp(),
                "WATTLINE_DEMO": "1",
            }
        ),
        mqtt_url=None,
    )
    app = create_portal(settings)  # what gunicorn serves: warmed, startup heap frozen
    app.config["WTF_CSRF_ENABLED"] = False
    engine: Engine = app.extensions["wattline"]["engine"]
    past_loads = app.extensions["wattline"]["past_loads"]
    with make_sessionmaker(engine)() as session:
        deal_ids = dict(
            session.execute(
                select(models.Deal.distributor_id, models.Deal.id).order_by(models.Deal.id)
            )
            .tuples()
            .all()
        )
    out: list[Timing] = []
    for login in DEMO_LOGINS:
        scope = scope_for(login.role.value, login.distributor_id, login.utility_id)
        tenant = login.distributor_id or login.utility_id
        role = f"{login.role.value} ({tenant})" if tenant else login.role.value
        meter_id = _busiest_meter(engine, scope)
        if meter_id is None:
            continue
        client = app.test_client()
        response = client.post("/login", data={"email": login.email, "password": PASSWORD})
        if response.status_code not in (200, 302):
            raise click.ClickException(
                f"pages: login as {login.email} failed ({response.status_code})"
            )
        deal = (
            deal_ids.get(login.distributor_id)
            if login.distributor_id
            else next(iter(deal_ids.values()), None)
        )

        def cold(path: str, client: Any = client) -> tuple[float, ...]:
            samples = []
            for _ in range(runs):
                past_loads.clear()
                samples.append(_server_ms(client.get(path).headers))
            return tuple(samples)

        for label, path in _pages(meter_id, end, deal):
            first = client.get(path)
            if first.status_code != 200:
                continue  # not this role's page
            for _ in range(warmup - 1):
                client.get(path)
            samples = tuple(_server_ms(client.get(path).headers) for _ in range(runs))
            out.append(Timing(label, role, 200, samples))
            click.echo(f"pages: {role:34s} {label:36s} p95 {out[-1].p95:7.1f} ms")
            if path == "/":
                # The load chart keeps completed hours for minutes; a first visit, or one
                # after they expire, sums the whole day again.
                out.append(Timing(f"{label}, load chart not cached", role, 200, cold(path)))
                click.echo(
                    f"pages: {role:34s} {'  chart not cached':36s} p95 {out[-1].p95:7.1f} ms"
                )

        def snapshot(scope: Any = scope) -> None:
            with make_sessionmaker(engine)() as session:
                live_snapshot(session, scope, datetime.now(UTC))

        out.append(
            Timing("live fleet SSE snapshot (one event)", role, 200, _timed(snapshot, runs, warmup))
        )
        click.echo(f"pages: {role:34s} {'SSE snapshot':36s} p95 {out[-1].p95:7.1f} ms")
    engine.dispose()
    return out


def _server_ms(headers: Any) -> float:
    value = headers.get("Server-Timing", "")
    if not value.startswith("app;dur="):
        raise click.ClickException("pages: response without a Server-Timing header")
    return float(value.removeprefix("app;dur="))


def _timed(func: Callable[[], None], runs: int, warmup: int) -> tuple[float, ...]:
    for _ in range(warmup):
        func()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        func()
        out.append((time.perf_counter() - t) * 1000)
    return tuple(out)


def table_rows(timings: list[Timing]) -> list[str]:
    """Return markdown rows, pages over budget marked."""
    rows = []
    for t in timings:
        flag = " **over 300 ms**" if t.p95 > BUDGET_MS else ""
        rows.append(f"| {t.page} | {t.role} | {t.p50:.1f} | {t.p95:.1f}{flag} | {t.worst:.1f} |")
    return rows


def section(meters: int, days: int, runs: int, warmup: int) -> tuple[list[str], str] | None:
    """Seed if needed, measure, and return (markdown rows, description); None without a database."""
    url = database_url()
    if url is None:
        click.echo("pages: skipped (set BENCH_PAGES_DATABASE_URL or BENCH_DATABASE_URL)")
        return None
    end, seconds = seed(url, meters, days)
    timings = measure(url, end, runs, warmup)
    seeded = f"; seeded in {seconds / 60:.1f} min this run" if seconds else "; seed re-used"
    over = [t for t in timings if t.p95 > BUDGET_MS]
    summary = (
        f"{meters:,} meters x {days} days ({meters * days * 96:,} readings) in PostgreSQL"
        f"{seeded}; {runs} requests per page and role after {warmup} warm-up; "
        f"{len(timings)} page/role pairs, {len(over)} over {BUDGET_MS:.0f} ms p95."
    )
    return table_rows(timings), summary
