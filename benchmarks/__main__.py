"""`python -m benchmarks`: ingest against its same-run ceilings, the simulator and the ROI model.

Each figure is a ratio to a baseline measured in the same run on the same machine, because
absolute rates on a shared 2-core box move by 10-20 % from run to run.
"""

from __future__ import annotations

import os
import platform
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from app.broker import MOSQUITTO, EmbeddedBroker, MosquittoProcess
from app.db.migrate import upgrade
from app.db.session import make_engine
from app.ingest.worker import QUEUE_ROWS, tune_gc
from benchmarks import ingest as bench_ingest
from benchmarks import pages, roi_bench

ROOT = Path(__file__).resolve().parent.parent
# Up to 1,000 unacknowledged messages in flight to a subscriber (the stock 20 starves a
# worker that acknowledges a whole batch at its commit).
MOSQUITTO_TUNING = "max_inflight_messages 1000\n"


def fresh_database(kind: str, tmp: Path) -> str:
    """Return a migrated, empty database URL, with the previous case's writes on disk."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    else:
        url = os.environ["BENCH_DATABASE_URL"]
        from sqlalchemy import text

        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    _settle(url)
    return url


def _settle(url: str) -> None:
    # Each case starts with nothing of the one before still being written: otherwise the
    # kernel's writeback of a previous run's pages lands in the next run's time and CPU.
    if url.startswith("postgresql"):
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("CHECKPOINT"))
        except DBAPIError:
            pass  # CHECKPOINT needs a superuser or pg_checkpoint: then the sync below only
        engine.dispose()
    os.sync()


@click.command()
@click.option("--meters", default=1000, show_default=True)
@click.option(
    "--per-message", default=96, show_default=True, help="readings per message (a day's backlog)"
)
@click.option("--messages-per-meter", default=10, show_default=True)
@click.option("--runs", default=3, show_default=True, help="median of this many runs")
@click.option(
    "--soak-seconds",
    default=600.0,
    show_default=True,
    help="length of the ingest memory soak (0 to skip)",
)
@click.option("--write/--no-write", default=True, help="write docs/benchmarks.md")
@click.option(
    "--only",
    type=click.Choice(["all", "ingest", "simulator", "roi", "pages"]),
    default="all",
    show_default=True,
    help="run one section only (the document is written with the sections run)",
)
@click.option(
    "--page-meters",
    default=10_000,
    show_default=True,
    help="meters in the page benchmark's database",
)
@click.option("--page-days", default=90, show_default=True, help="days of history for the pages")
@click.option("--page-runs", default=20, show_default=True, help="requests per page and role")
def main(
    meters: int,
    per_message: int,
    messages_per_meter: int,
    runs: int,
    soak_seconds: float,
    write: bool,
    only: str,
    page_meters: int,
    page_days: int,
    page_runs: int,
) -> None:
    """Measure ingest against its ceilings, the simulator, the ROI model and the pages.

    Pages run with `--only pages`, and within `all` when BENCH_DATABASE_URL (or
    BENCH_PAGES_DATABASE_URL) names a PostgreSQL server.
    """
    if only == "pages":
        found = pages.section(page_meters, page_days, page_runs, warmup=3)
        if found is None:
            raise click.ClickException("set BENCH_PAGES_DATABASE_URL or BENCH_DATABASE_URL")
        if write:
            _write_pages(*found)
        return
    brokers: list[tuple[str, str]] = []
    embedded = EmbeddedBroker().start()
    brokers.append(("embedded amqtt", embedded.url))
    own = tempfile.TemporaryDirectory()
    mosquitto: MosquittoProcess | None = None
    if MOSQUITTO:
        # Our own Mosquitto, configured as docs/ingest.md tells operators to: it never drops
        # a backlog (the stock config drops past 1,000 queued messages per client).
        mosquitto = MosquittoProcess(MOSQUITTO, Path(own.name), extra=MOSQUITTO_TUNING)
        mosquitto.start()
        brokers.append(("Mosquitto", mosquitto.url))
    elif url := os.environ.get("BENCH_MQTT_URL") or os.environ.get("TEST_MQTT_URL"):
        brokers.append(("Mosquitto", url))
    databases = ["sqlite"] + (["postgresql"] if os.environ.get("BENCH_DATABASE_URL") else [])
    sim_rows = (
        simulator_section(brokers[-1], databases, runs) if only in ("all", "simulator") else []
    )
    ingest_doc: list[str] = []
    if only in ("all", "ingest"):
        # As `python -m app.ingest` does: the worker measured is the worker that runs.
        tune_gc()
        batched = bench_ingest.Workload(meters, per_message, messages_per_meter)
        single = bench_ingest.Workload(2000, 1, 20)

        def broker_done(name: str) -> None:
            # Unless it is the only broker: the later cases run on the last one.
            if name == "embedded amqtt" and brokers[-1][0] != name:
                embedded.stop()

        ingest_doc = ingest_section(
            brokers, databases, batched, single, runs, soak_seconds, broker_done
        )
    embedded.stop()
    if mosquitto:
        mosquitto.stop()
    own.cleanup()
    roi_rows, roi_console = roi_bench.measure() if only in ("all", "roi") else ([], [])
    for line in roi_console:
        click.echo(line)
    page_section = (
        pages.section(page_meters, page_days, page_runs, warmup=3)
        if only == "all" and pages.database_url()
        else None
    )
    if write:
        _write(ingest_doc, roi_rows, sim_rows)
        if page_section is not None:
            _write_pages(*page_section)


def _median(runs: int, measure: Callable[[], bench_ingest.Rate]) -> bench_ingest.Rate:
    rates = [measure() for _ in range(runs)]
    return sorted(rates, key=lambda r: r.seconds)[len(rates) // 2]


def ingest_section(
    brokers: list[tuple[str, str]],
    databases: list[str],
    batched: bench_ingest.Workload,
    single: bench_ingest.Workload,
    runs: int,
    soak_seconds: float,
    broker_done: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Run the ingest benchmarks; return their part of the document.

    `broker_done(name)` is called once a broker's batched cases are measured: the embedded
    broker is stopped there, or its retries would share the process with later cases.
    """
    small = bench_ingest.Workload(batched.meters // 5 or 1, batched.per_message, batched.messages)
    table = [
        "| broker | database | path | readings/s | ceiling | ratio to the lower ceiling |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(kind: str) -> str:
            return fresh_database(kind, Path(tmp))

        loads = {
            kind: _median(runs, lambda kind=kind: bench_ingest.bulk_load(fresh(kind), batched))
            for kind in databases
        }
        for kind, load in loads.items():
            click.echo(f"ceiling: {load.name} ({kind}) {load.per_s:,.0f} rows/s")
        rates: dict[tuple[str, str], float] = {}
        cpu_rows: list[str] = []
        for broker, url in brokers:
            # amqtt gives up waiting for acknowledgements that come at commit and resends,
            # past a few thousand messages in flight: the embedded broker gets a fifth.
            work = small if broker == "embedded amqtt" else batched
            raw = _median(runs, lambda url=url, work=work: bench_ingest.raw_broker(url, work))
            click.echo(f"{broker}: raw subscriber {raw.per_s:,.0f} readings/s")
            table.append(
                f"| {broker} | — | bare paho subscriber (ceiling) | {raw.per_s:,.0f} | | |"
            )
            for kind in databases:
                load = loads[kind]
                got = _median(
                    runs,
                    lambda url=url, kind=kind, work=work: bench_ingest.ingest(
                        url, fresh(kind), work
                    ),
                )
                rates[(broker, kind)] = got.per_s
                if got.cpu and broker == "Mosquitto" and kind == "postgresql":
                    cpu_rows = _cpu_doc(got)
                lower = min(raw.per_s, load.per_s)
                which = "broker" if raw.per_s <= load.per_s else load.name
                click.echo(
                    f"{broker}: ingest → {kind} {got.per_s:,.0f} readings/s "
                    f"({got.per_s / lower:.2f} of the lower ceiling, {which})"
                )
                table.append(
                    f"| {broker} | {kind} | {load.name} (ceiling) | {load.per_s:,.0f} | | |"
                )
                table.append(
                    f"| {broker} | {kind} | **ingest worker** | **{got.per_s:,.0f}** "
                    f"| {lower:,.0f} ({which}) | **{got.per_s / lower:.2f}** |"
                )
            broker_done(broker)
        single_rows = [
            "| broker | path | messages/s = readings/s | ratio to the broker |",
            "|---|---|---|---|",
        ]
        broker, url = brokers[-1]
        raw = _median(runs, lambda: bench_ingest.raw_broker(url, single))
        single_rows.append(
            f"| {broker} | bare paho subscriber (ceiling) | {raw.per_s:,.0f} | 1.00 |"
        )
        for kind in databases:
            got = _median(runs, lambda kind=kind: bench_ingest.ingest(url, fresh(kind), single))
            click.echo(f"{broker}: one reading a message → {kind} {got.per_s:,.0f}/s")
            single_rows.append(
                f"| {broker} | ingest worker → {kind} | {got.per_s:,.0f} "
                f"| {got.per_s / raw.per_s:.2f} |"
            )
        profile = bench_ingest.profile(fresh(databases[-1]), batched)
        soak_rows: list[str] = []
        if soak_seconds > 0:
            # Half the batched rate just measured on this broker and database.
            rate = 0.5 * rates[(broker, databases[-1])]
            samples = bench_ingest.soak(url, fresh(databases[-1]), soak_seconds, rate, click.echo)
            soak_rows = _soak_doc(samples, broker, databases[-1])
    return _ingest_doc(batched, single, runs, table, single_rows, profile, soak_rows, cpu_rows)


def _cpu_doc(rate: bench_ingest.Rate) -> list[str]:
    """The machine's CPU per reading during the median ingest run, by process."""
    cpu = rate.cpu or {}
    total = sum(cpu.values())
    rows = [
        f"The whole machine during the median Mosquitto → PostgreSQL run "
        f"({rate.per_s:,.0f} readings/s): CPU time per reading of each process, from "
        "`/proc/<pid>/stat` and the processes' own clocks.",
        "",
        "| process | CPU µs/reading | cores at this rate |",
        "|---|---|---|",
    ]
    rows += [
        f"| {name} | {us:.2f} | {us * rate.per_s / 1e6:.2f} |"
        for name, us in sorted(cpu.items(), key=lambda kv: -kv[1])
    ]
    rows += [
        f"| **total** | **{total:.2f}** | **{total * rate.per_s / 1e6:.2f}** of 2 |",
        "",
        f"At {total:.2f} µs of CPU a reading, two fully busy cores store at most "
        f"{2e6 / total:,.0f} readings/s.",
    ]
    if rate.peak_rss_mb:
        rows += [
            "",
            f"The worker's peak resident memory in that run (VmHWM): {rate.peak_rss_mb:,.0f} MB. "
            "The publisher sends faster than the worker stores, and the broker does not hold "
            "the difference back (Mosquitto 2.0.11 drops its in-flight limit after the first "
            "acknowledgement): the worker's hand-offs, bounded at "
            f"{QUEUE_ROWS:,} readings, are what keeps the backlog in the broker.",
        ]
    return rows


def _soak_doc(samples: list[tuple[float, float, int]], broker: str, kind: str) -> list[str]:
    settled = [s for s in samples if s[0] >= samples[-1][0] / 4] or samples
    low = min(s[1] for s in settled)
    high = max(s[1] for s in settled)
    first, last = settled[0], settled[-1]
    slope = (last[1] - first[1]) / max((last[0] - first[0]) / 60, 1e-9)
    return [
        f"{samples[-1][0] / 60:.1f} minutes streaming through {broker} into {kind} at a steady "
        f"{samples[-1][2] / samples[-1][0]:,.0f} readings/s ({samples[-1][2]:,} readings, "
        "all stored, checked exactly). Resident memory of the worker's process, sampled:",
        "",
        "| minute | RSS MB | readings stored |",
        "|---|---|---|",
        *(f"| {t / 60:.1f} | {mb:.1f} | {n:,} |" for t, mb, n in samples),
        "",
        f"After the first quarter (warm-up: caches, connection pools, the stage tables), RSS "
        f"stays between {low:.1f} and {high:.1f} MB; drift {slope:+.2f} MB a minute.",
    ]


def _ingest_doc(
    batched: bench_ingest.Workload,
    single: bench_ingest.Workload,
    runs: int,
    table: list[str],
    single_rows: list[str],
    profile: bench_ingest.Profile | None,
    soak_rows: list[str],
    cpu_rows: list[str],
) -> list[str]:
    out = [
        "## Ingest (QoS 1, persistent session, acknowledged after commit, idempotent)",
        "",
        _when(),
        "",
        f"Batched uploads: {batched.describe()} (the embedded broker: a fifth of the "
        f"meters), median of {runs} runs. The publisher and the worker are each a "
        "process of their own, as meters and `python -m app.ingest` are; the publisher "
        "publishes from one thread (paho's network thread cost it a wake-up and a lock "
        "hand-over per message, half its CPU on small messages). Ceilings, measured in the same run: a bare paho subscriber "
        "draining the same stream, and the same rows loaded into the same empty `readings` "
        "table the cheapest way there is (PostgreSQL: binary COPY in the worker's batch "
        "size, of data built before the clock starts, so only the server and the send "
        "are timed; SQLite: `executemany`). The worker also keeps the hourly and daily rollups, "
        "which the ceilings do not. Every case starts on a fresh schema after a "
        "`CHECKPOINT` and a `sync`, so no run pays for writing out the one before.",
        "",
        *table,
        "",
        f"One reading a message: {single.describe()}.",
        "",
        *single_rows,
        "",
    ]
    if cpu_rows or profile:
        out += ["### Where the time goes", ""]
    if cpu_rows:
        out += [*cpu_rows, ""]
    if profile:
        out += [
            "Inside the worker and its PostgreSQL backend: CPU time per reading of each "
            "step of the PostgreSQL write path, run in one thread: the worker's own CPU (`thread_time`) and the database backend's "
            "(`/proc/<pid>/stat`), so the split does not depend on what else the machine "
            "is doing. On two cores the worker (decoding on paho's thread, two writer "
            "threads) and PostgreSQL run side by side; the slower of the two columns, "
            "plus the broker and the publisher, sets the rate.",
            "",
            "| step | worker µs/reading | PostgreSQL µs/reading |",
            "|---|---|---|",
            *profile.rows(),
            "",
        ]
    if soak_rows:
        out += ["### Memory over a soak", "", *soak_rows, ""]
    return out


def simulator_section(broker: tuple[str, str], databases: list[str], runs: int) -> list[str]:
    """Run the simulator benchmarks; return their markdown table rows."""
    from benchmarks import simulator as sim

    figures = sim.generation(2000, 28, runs)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in databases:
            figures.append(sim.backfill_write(fresh_database(kind, Path(tmp)), 200, 7))
    figures += sim.capacity(broker[1], broker[0])
    out = []
    for f in figures:
        ratio = f"{f.ratio:.3f}" if f.baseline else "—"
        base = f"{f.baseline:,.0f} ({f.baseline_name})" if f.baseline else "—"
        click.echo(f"simulator: {f.name}: {f.value:,.1f} {f.unit} (baseline {base})")
        out.append(f"| {f.name} | {f.value:,.0f} {f.unit} | {base} | {ratio} |")
    return out


def _when() -> str:
    """When and where a section was measured."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Measured {stamp}, Python {platform.python_version()}, {os.cpu_count()} CPUs."


SECTION_ORDER = ("## Ingest", "## Portal pages", "## ROI model", "## Simulator")


def _sections(text: str) -> dict[str, list[str]]:
    """Split a benchmarks document into its `## ` sections, keyed by known heading prefix."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            key = next((k for k in SECTION_ORDER if line.startswith(k)), line)
            current = found.setdefault(key, [])
        if current is not None:
            current.append(line)
    return found


def _write(ingest_doc: list[str], roi_rows: list[str], sim_rows: list[str]) -> None:
    """Rewrite docs/benchmarks.md: sections run now replace theirs, the others stay."""
    doc = ROOT / "docs" / "benchmarks.md"
    sections = _sections(doc.read_text()) if doc.exists() else {}
    if ingest_doc:
        sections["## Ingest"] = ingest_doc
    if roi_rows:
        sections["## ROI model"] = [
            "## ROI model (default IOU inputs with a 20 % network sunset, 10 years)",
            "",
            _when(),
            "",
            "Median milliseconds per run; each ratio is to the `numpy_financial.npv` loop "
            "over the same flows measured just before it.",
            "",
            "| what | ms per run | ratio to baseline |",
            "|---|---|---|",
            *roi_rows,
            "",
        ]
    if sim_rows:
        sim = _simulator_doc(sim_rows)
        sections["## Simulator"] = [sim[0], "", _when(), *sim[1:]]
    write_sections(sections)


def write_sections(sections: dict[str, list[str]]) -> None:
    """Write the document from its sections (known ones in order, then any others)."""
    doc = ROOT / "docs" / "benchmarks.md"
    ordered = [k for k in SECTION_ORDER if k in sections] + [
        k for k in sections if k not in SECTION_ORDER
    ]
    body: list[str] = []
    for key in ordered:
        lines = sections[key]
        body += [*lines, ""] if lines and lines[-1] != "" else lines
    doc.write_text(
        "\n".join(
            [
                "# Benchmarks",
                "",
                "Written by `make bench` (`python -m benchmarks`). Ratios compare with a baseline",
                "measured in the same run on the same machine; absolute rates on a shared 2-core",
                "box move by 10-20 % between runs. Set `BENCH_DATABASE_URL` to include",
                "PostgreSQL; Mosquitto is our own process when the binary is installed",
                "(else `BENCH_MQTT_URL` or `TEST_MQTT_URL`). `--only <section>` reruns one",
                "section and keeps the others as they were; each section says when it ran.",
                "",
                *body,
            ]
        )
    )
    click.echo(f"wrote {doc.relative_to(ROOT)}")


PAGES_HEADING = "## Portal pages (server time)"


def _write_pages(rows: list[str], summary: str) -> None:
    """Replace only the pages section, so `--only pages` keeps the other measurements."""
    doc = ROOT / "docs" / "benchmarks.md"
    sections = _sections(doc.read_text()) if doc.exists() else {}
    sections["## Portal pages"] = [
        PAGES_HEADING,
        "",
        _when(),
        "",
        "Every portal page and main API endpoint, requested through the real Flask app",
        "(in-process test client) by each demo login whose role may see it; the figure is",
        "the app's own `Server-Timing: app;dur=...` header (the SSE row times one snapshot",
        f"query, what the stream sends per event). Budget: p95 under {pages.BUDGET_MS:.0f} ms.",
        "",
        summary,
        "",
        "| page | role | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    write_sections(sections)


def _simulator_doc(sim_rows: list[str]) -> list[str]:
    if not sim_rows:
        return []
    return [
        "## Simulator",
        "",
        "Backfill generation is the vectorised load model on one core (numpy is single-threaded",
        "here), every channel (kWh, kVARh, kW, 3 voltages, flags) per interval, before any",
        "database work; the baseline is numpy filling the same number of float64 values from",
        "its default generator. Fleet capacity runs the publisher flat out (every interval due",
        "at once, QoS 1, one shared connection, the meters' own call-in schedules) and reports",
        "how many times real time it sustained, including the start-up statuses; the baseline",
        "is a bare paho client driven the same way publishing the same number of messages.",
        "",
        "| measure | value | same-run baseline | ratio |",
        "|---|---|---|---|",
        *sim_rows,
        "",
    ]


if __name__ == "__main__":
    main()
