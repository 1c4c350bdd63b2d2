"""The portal's and exports' queries read rollups, never raw intervals (PostgreSQL plans).

Six weeks of 15-minute intervals for a small fleet (about 600,000 readings in monthly
partitions, as the ingest creates them) and their hourly and daily rollups are written
straight into the tables and analyzed. Each case calls a real query function, records every
statement SQLAlchemy sends, and asks PostgreSQL how it would run it, twice: with the bound
values (the plan of a statement's first executions) and as a generic plan (what a statement
psycopg has prepared after five executions may get). Fleet-wide pages must have no node on
`readings` or its partitions; reads of one meter's or one utility's intervals over a bounded
range must use the index named for them and only the partitions of that range; nothing
may read raw intervals with a sequential scan. The hourly register reads VEE's sum check
uses (monthly partitions too) are held to the same rules.

On a PostgreSQL with TimescaleDB (`make test-timescaledb`) the tables are hypertables and
the partitions are chunks (7 days of `readings`, 30 of `register_reads`): the same cases
hold, a chunk counting as pruned when it holds none of the months a case names, and its
indexes as the hypertable's they were made from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from app.db import alarm_queries, models, partitions, queries, roi_store, segment_queries
from app.db.live_queries import live_snapshot
from app.db.models import Base
from app.db.seed import seed_fleet
from app.db.segment_queries import utility_activity
from app.db.session import make_engine, make_sessionmaker
from app.domain.access import Scope
from app.ingest.estimation import run_vee
from app.ingest.store import stored_estimates
from simulator.fleet import build_fleet

pytestmark = pytest.mark.postgres

METERS = 150
# Six weeks over three months, so a range inside one month has partitions to leave out.
FIRST = datetime(2024, 12, 25, tzinfo=UTC)
END = FIRST + timedelta(days=42)
STEP = timedelta(minutes=15)
DEC, JAN, FEB = "readings_p202412", "readings_p202501", "readings_p202502"
REGISTERS_FEB = "register_reads_p202502"
DEAD_LETTERS = 30_000
VENDOR = Scope(everything=True)
NORTHGRID = Scope(distributor_id="northgrid")
MILLBROOK = Scope(utility_id="millbrook")
METER = "glpl-00000"

PK = "pk_readings"
REGISTERS_PK = "pk_register_reads"
ESTIMATED = "ix_readings_estimated"
RECEIVED = "ix_readings_received_at"
HOURLY_COVER = "ix_readings_hourly_start_meter"
# The scans that find rows through an index; any other scan of intervals reads them all.
INDEXED = frozenset({"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"})


@dataclass(frozen=True, slots=True)
class Node:
    """One plan node: its type, the table it reads and the index it uses (if any)."""

    type: str
    relation: str | None
    index: str | None
    provider: str | None = None  # a Custom Scan's, e.g. TimescaleDB's ChunkAppend


# TimescaleDB's appends over a hypertable's chunks: they name the hypertable but read
# nothing themselves, their children (one scan a chunk) do.
CHUNK_APPENDS = frozenset({"ChunkAppend", "ConstraintAwareAppend"})


def plan_nodes(plan: dict[str, Any]) -> Iterator[Node]:
    """Walk a JSON plan tree (children, InitPlans and SubPlans alike sit under "Plans")."""
    yield Node(
        plan["Node Type"],
        plan.get("Relation Name"),
        plan.get("Index Name"),
        plan.get("Custom Plan Provider"),
    )
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


@dataclass(frozen=True, slots=True)
class Expect:
    """What one query function's plans may do with raw intervals and other big tables."""

    # The partitioned indexes reads of `readings` may use; empty: no node on `readings`.
    indexes: frozenset[str] = frozenset()
    # The partitions those reads may touch; None: any (no bound on `start` to prune by).
    months: frozenset[str] | None = None
    # The same two for `register_reads`.
    register_indexes: frozenset[str] = frozenset()
    register_months: frozenset[str] | None = None
    # Other tables that must not be read by a sequential scan.
    no_seq_scan: frozenset[str] = frozenset()


ROLLUPS_ONLY = Expect()


def through(*indexes: str, months: tuple[str, ...] | None = None) -> Expect:
    """Expect reads of intervals through `indexes`, in `months` only when given."""
    return Expect(frozenset(indexes), None if months is None else frozenset(months))


@dataclass(frozen=True, slots=True)
class Part:
    """A partition (or TimescaleDB chunk): its table and the times it holds (None: DEFAULT)."""

    parent: str
    low: datetime | None
    high: datetime | None

    def holds_any(self, months: Iterable[str]) -> bool:
        """Return True if this partition may hold rows of one of the named months."""
        if self.low is None or self.high is None:
            return False
        return any(self.low < high and low < self.high for low, high in map(month_span, months))


def month_span(name: str) -> tuple[datetime, datetime]:
    """Return the [first, end) of a monthly partition's name's month ("readings_p202501")."""
    found = re.search(r"_p(\d{4})(\d{2})$", name)
    if found is None:
        return (datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    return partitions.month_bounds(datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class Catalog:
    """Each index's table and root index; the partitions or chunks; the empty ones."""

    table_of: dict[str, str]
    root_of: dict[str, str]
    parts: dict[str, Part]
    empty: frozenset[str]

    def table(self, node: Node) -> str | None:
        """Return the table a node reads (a Bitmap Index Scan names only its index)."""
        return node.relation or self.table_of.get(node.index or "")

    def is_intervals(self, table: str | None, parent: str = partitions.PARENT) -> bool:
        """Return True for `parent` (`readings` unless told) and its partitions or chunks."""
        if table is None:
            return False
        part = self.parts.get(table)
        return table == parent or (part is not None and part.parent == parent)


def check(plans: list[list[Node]], expect: Expect, cat: Catalog) -> None:
    """Assert that plans read raw intervals (and other tables) only as `expect` allows."""
    nodes = [n for plan in plans for n in plan]
    _check_reads(nodes, partitions.PARENT, expect.indexes, expect.months, cat)
    _check_reads(nodes, partitions.REGISTERS, expect.register_indexes, expect.register_months, cat)
    for n in nodes:
        assert not (n.type == "Seq Scan" and n.relation in expect.no_seq_scan), (
            f"Seq Scan on {n.relation}"
        )


def _check_reads(
    nodes: list[Node],
    parent: str,
    indexes: frozenset[str],
    months: frozenset[str] | None,
    cat: Catalog,
) -> None:
    """Assert that the nodes on `parent` and its partitions use `indexes` in `months`."""
    what = "raw intervals" if parent == partitions.PARENT else parent
    raw = [
        n
        for n in nodes
        if cat.is_intervals(cat.table(n), parent) and n.provider not in CHUNK_APPENDS
    ]
    if not indexes:
        assert raw == [], f"reads {what}: {raw}"
    # A case that expects reads of intervals must show some, or it checks nothing.
    assert raw or not indexes, f"expected reads of {what}, found none"
    for n in raw:
        table = cat.table(n)
        # An empty partition (the DEFAULT safety net, a month another test left) is read
        # directly, rightly: there is nothing to find through an index.
        empty = n.type == "Seq Scan" and table in cat.empty
        assert n.type in INDEXED or empty, f"{n.type} on {table}: {what} read without an index"
        if n.index is not None:
            root = cat.root_of.get(n.index, n.index)
            assert root in indexes, f"{n.type} on {table} uses {root}"
        if months is not None:
            kept = table in cat.parts and cat.parts[table].holds_any(months)
            assert kept, f"{n.type} on {table}: partition not pruned"


# ------------------------------------------------------------------------------- the seed


def _seed(engine: Engine) -> list[str]:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with make_sessionmaker(engine).begin() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        seed_fleet(session, build_fleet(METERS, seed=42))
        session.flush()
        conn = session.connection()
        middle = FIRST + (END - FIRST) / 2
        created = partitions.Months().ensure(conn, [FIRST, middle, END - STEP])
        created += partitions.Months(partitions.REGISTERS).ensure(conn, [FIRST, middle, END])
        params = {"first": FIRST, "last": END - STEP, "end": END}
        # In arrival order, as the ingest writes them (every meter's interval, then the
        # next), so received_at follows the physical order the way its BRIN index expects.
        # One interval in 250 is an estimate, for the ingest's partial index.
        conn.execute(
            text(
                "INSERT INTO readings (meter_id, start, kwh, kvarh, demand_kw, voltage_a, "
                "voltage_b, voltage_c, flags, quality, received_at) "
                "SELECT m.id, t.start, m.peak_kw * 0.15, m.peak_kw * 0.06, m.peak_kw * 0.6, "
                "277.0, 276.5, 277.5, '', "
                "CASE WHEN (abs(hashtext(m.id)) + extract(epoch FROM t.start)::bigint / 900) "
                "% 250 = 0 THEN 'estimated-linear' ELSE 'valid' END, "
                "t.start + interval '15 minutes 7 seconds' "
                "FROM generate_series(:first, :last, interval '15 minutes') AS t(start) "
                "CROSS JOIN meters m ORDER BY t.start, m.id"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO readings_hourly (meter_id, start, kwh, kvarh, peak_kw, peak_at, "
                "power_factor, intervals, valid, estimated, questionable, edited) "
                "SELECT meter_id, date_trunc('hour', start, 'UTC') AS hour, sum(kwh), "
                "sum(kvarh), max(demand_kw), min(start), 0.93, count(*), "
                "count(*) FILTER (WHERE quality = 'valid'), "
                "count(*) FILTER (WHERE quality <> 'valid'), 0, 0 "
                "FROM readings GROUP BY meter_id, hour ORDER BY hour, meter_id"
            )
        )
        # Days at UTC midnight: the plans do not depend on the meters' zones.
        conn.execute(
            text(
                "INSERT INTO readings_daily (meter_id, start, kwh, kvarh, peak_kw, peak_at, "
                "power_factor, intervals, valid, estimated, questionable, edited) "
                "SELECT meter_id, date_trunc('day', start, 'UTC') AS day, sum(kwh), sum(kvarh), "
                "max(peak_kw), min(peak_at), 0.93, sum(intervals), sum(valid), sum(estimated), "
                "0, 0 FROM readings_hourly GROUP BY meter_id, day ORDER BY day, meter_id"
            )
        )
        # The cumulative register on every whole hour, as interval messages carry it.
        conn.execute(
            text(
                "INSERT INTO register_reads (meter_id, at, kwh, kvarh, received_at) "
                "SELECT meter_id, start, 1000 + sum(kwh) OVER w, 400 + sum(kvarh) OVER w, "
                "start + interval '7 seconds' FROM readings_hourly "
                "WINDOW w AS (PARTITION BY meter_id ORDER BY start) ORDER BY start, meter_id"
            )
        )
        conn.execute(
            text(
                "UPDATE meters SET last_interval_start = :last, last_seen_at = :end, "
                "status = CASE WHEN right(id, 1) = '7' THEN 'offline' ELSE 'online' END, "
                "status_at = :first"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO events (meter_id, event_id, type, severity, at, details, received_at) "
                "SELECT m.id, 'e' || k, (ARRAY['tamper', 'power_outage', 'low_signal', "
                "'reverse_rotation'])[1 + k % 4], 'warning', at, '{}', at "
                "FROM meters m, generate_series(1, 12) AS k, "
                "LATERAL (SELECT :end - k * interval '3 days' - interval '1 hour' AS at) a"
            ),
            params,
        )
        # A device sending garbage fills this table quickly; the page lists the newest.
        conn.execute(
            text(
                "INSERT INTO dead_letters (topic, payload, reason, received_at, meter_id) "
                "SELECT 'wattline/v1/u/' || id || '/interval', '{\"bad\": true}', "
                "'schema: missing readings', :end - k * interval '1 minute', id "
                "FROM generate_series(1, :n) AS k, "
                "LATERAL (SELECT (SELECT array_agg(id) FROM meters)[1 + k % :meters] AS id) m"
            ),
            {**params, "n": DEAD_LETTERS, "meters": METERS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (
            "readings",
            "readings_hourly",
            "readings_daily",
            "register_reads",
            "dead_letters",
        ):
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
        # The small tables too: without statistics the planner guesses their sizes.
        conn.execute(text("ANALYZE"))
    return created


@pytest.fixture(scope="module")
def fleet(postgres_url: str) -> Iterator[Engine]:
    """Seed the intervals, rollups, events and dead letters once for the module."""
    engine = make_engine(postgres_url)
    created = _seed(engine)
    yield engine
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for name in created:
            conn.execute(text(f"DROP TABLE {name}"))
    engine.dispose()


@pytest.fixture(scope="module")
def cat(fleet: Engine) -> Catalog:
    """Read each index's table and root index, the partitions or chunks, the empty ones."""
    with fleet.connect() as conn:
        parts: dict[str, Part] = {}
        qualified: dict[str, str] = {}
        for parent in partitions.PARENTS:
            if partitions.layout(conn, parent) == "timescaledb":
                chunks = conn.execute(
                    text(
                        "SELECT chunk_schema, chunk_name, range_start, range_end "
                        "FROM timescaledb_information.chunks WHERE hypertable_name = :t"
                    ),
                    {"t": parent},
                ).all()
                for schema, name, low, high in chunks:
                    parts[name] = Part(parent, low, high)
                    qualified[name] = f"{schema}.{name}"
                continue
            for name in partitions.existing(conn, parent):
                span = None if name.endswith("_default") else month_span(name)
                parts[name] = Part(parent, *(span or (None, None)))
                qualified[name] = name
        empty = frozenset(
            name
            for name, table in qualified.items()
            if not conn.scalar(text(f"SELECT EXISTS (SELECT FROM {table})"))  # noqa: S608
        )
        rows = conn.execute(
            text(
                "SELECT i.relname, t.relname, coalesce(p.relname, i.relname) "
                "FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid "
                "LEFT JOIN pg_inherits h ON h.inhrelid = i.oid "
                "LEFT JOIN pg_class p ON p.oid = h.inhparent "
                "WHERE t.relnamespace::regnamespace::text IN ('public', '_timescaledb_internal')"
            )
        ).all()
        root_of = {i: r for i, _, r in rows}
        if any(p.parent != t for t, p in parts.items() if qualified[t] != t):
            # A chunk's index is not attached to the hypertable's: TimescaleDB's catalogue
            # says which one it was made from.
            made_from = conn.execute(
                text(
                    "SELECT index_name, hypertable_index_name FROM _timescaledb_catalog.chunk_index"
                )
            )
            root_of.update((index, root) for index, root in made_from)
    return Catalog({i: t for i, t, _ in rows}, root_of, parts, empty)


@pytest.fixture(autouse=True)
def no_pf_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compute the low power factor alarms on every call, so their query is always sent."""
    monkeypatch.setattr(alarm_queries, "PF_CACHE_S", 0.0)


# ------------------------------------------------------------------------------ the plans


def sent_by(engine: Engine, call: Callable[[Session], object]) -> list[tuple[str, Any]]:
    """Run `call` in a session; return every SELECT it sent, with its bound parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with make_sessionmaker(engine)() as session:
            call(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent, "the call sent no SELECT"
    return sent


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def explain(
    engine: Engine, statement: str, parameters: dict[str, Any], generic: bool
) -> dict[str, Any]:
    """Return the JSON plan of a statement as psycopg sends it, custom or generic."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        if not generic:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            return dict(cursor.fetchone()[0][0]["Plan"])
        # PREPARE takes $n placeholders and the values go in as typed literals; a forced
        # generic plan is one that cannot use the values, as a prepared statement's may not.
        names: list[str] = []

        def number(found: re.Match[str]) -> str:
            if found.group(1) is None:
                return "%"
            if found.group(1) not in names:
                names.append(found.group(1))
            return f"${names.index(found.group(1)) + 1}"

        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE plan_check AS {_PLACEHOLDER.sub(number, statement)}")
        try:
            values = sql.SQL(", ").join(sql.Literal(parameters[n]) for n in names)
            call = sql.SQL("plan_check({})").format(values) if names else sql.SQL("plan_check")
            cursor.execute(sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}").format(call))
            return dict(cursor.fetchone()[0][0]["Plan"])
        finally:
            # A prepared statement outlives its transaction; the pooled connection must
            # not keep this one for the next case (the setting ends with the transaction).
            raw.rollback()
            cursor.execute("DEALLOCATE plan_check")
            raw.rollback()


def plans_of(engine: Engine, call: Callable[[Session], object], generic: bool) -> list[list[Node]]:
    """Return the plan nodes of every SELECT `call` sends."""
    return [
        list(plan_nodes(explain(engine, statement, parameters, generic)))
        for statement, parameters in sent_by(engine, call)
    ]


# ------------------------------------------------------------------------------ the cases


def _estimate_keys(session: Session) -> list[tuple[str, datetime]]:
    # An ingest batch: the newest hour of 40 meters.
    meters = session.scalars(select(models.Meter.id).order_by(models.Meter.id).limit(40))
    return [(m, END - STEP * k) for m in meters for k in range(1, 5)]


def _meter_page_rollups(session: Session) -> None:
    meter = queries.get_meter(session, VENDOR, METER)
    assert meter is not None
    queries.recent_daily_rollups(session, meter.id)
    queries.recent_hourly_rollups(session, meter)


def _utility(session: Session, utility_id: str) -> models.Utility:
    found = session.get(models.Utility, utility_id)
    assert found is not None
    return found


WEEK = (datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 1, 17, tzinfo=UTC))
MONTH_END = (datetime(2025, 1, 28, tzinfo=UTC), datetime(2025, 2, 4, tzinfo=UTC))
YEAR = (END - timedelta(days=366), END)
MONTH = (END - timedelta(days=31), END)

CASES: dict[str, tuple[Callable[[Session], object], Expect]] = {
    # Fleet-wide pages and the rollup API: rollups only.
    "fleet-load-chart": (lambda s: queries.fleet_load_by_segment(s, VENDOR), ROLLUPS_ONLY),
    "fleet-load-chart-cached-distributor": (
        lambda s: queries.fleet_load_by_segment(s, NORTHGRID, past=queries.PastLoads()),
        ROLLUPS_ONLY,
    ),
    "alarms": (lambda s: alarm_queries.list_alarms(s, VENDOR), ROLLUPS_ONLY),
    "alarms-utility": (lambda s: alarm_queries.list_alarms(s, MILLBROOK), ROLLUPS_ONLY),
    "meter-page-rollups": (_meter_page_rollups, ROLLUPS_ONLY),
    "rollups-api-daily-year": (
        lambda s: queries.rollups_between(s, METER, "daily", *YEAR),
        ROLLUPS_ONLY,
    ),
    "rollups-api-hourly-month": (
        lambda s: queries.rollups_between(s, METER, "hourly", *MONTH),
        ROLLUPS_ONLY,
    ),
    # The compose healthcheck's probe: the planner's row counts, not a count of intervals.
    "health": (lambda s: queries.health(s, END), ROLLUPS_ONLY),
    "dead-letters": (
        lambda s: queries.dead_letters(s, VENDOR, limit=100),
        Expect(no_seq_scan=frozenset({"dead_letters"})),
    ),
    "dead-letters-distributor-older": (
        lambda s: queries.dead_letters(s, NORTHGRID, limit=100, before_id=DEAD_LETTERS // 2),
        Expect(no_seq_scan=frozenset({"dead_letters"})),
    ),
    # "Readings in the last hour": the BRIN index on arrival time, in every partition.
    "fleet-overview": (lambda s: queries.fleet_overview(s, VENDOR, END), through(RECEIVED)),
    "live-snapshot-distributor": (lambda s: live_snapshot(s, NORTHGRID, END), through(RECEIVED)),
    # One meter's or one utility's intervals over a bounded range: the primary key, and
    # only the range's partitions.
    "readings-export-week": (
        lambda s: queries.readings_between(s, METER, *WEEK),
        through(PK, months=(JAN,)),
    ),
    "readings-export-across-month-end": (
        lambda s: queries.readings_between(s, METER, *MONTH_END),
        through(PK, months=(JAN, FEB)),
    ),
    # The newest 192: no bound on start, but each partition is read backwards by the key.
    "meter-page-intervals": (lambda s: queries.recent_readings(s, METER), through(PK)),
    # Segment pages: completeness from the hourly rollups, then one hour of intervals to
    # find the first one (days in service), in the first month only.
    "segment-iou": (lambda s: utility_activity(s, NORTHGRID, "iou"), through(PK, months=(DEC,))),
    "segment-service-bureau": (
        lambda s: utility_activity(s, MILLBROOK, "service_bureau"),
        through(PK, months=(DEC,)),
    ),
    "segment-security": (
        lambda s: utility_activity(s, VENDOR, "security"),
        through(PK, months=(DEC,)),
    ),
    # ROI calibration: the segment pages' read success, from the hourly rollups and the
    # meters alone (no raw interval).
    "roi-fleet-profile": (
        lambda s: roi_store.fleet_profile(s, _utility(s, "glpl")),
        ROLLUPS_ONLY,
    ),
    # VEE of one meter's last day: its intervals since the reference days' lookback and
    # the register reads of that day, each by its key, in those months only; which of the
    # day's slots hold estimates, by the estimates' partial index as the ingest does.
    "vee-one-meter-day": (
        lambda s: run_vee(s, METER, END - timedelta(days=1), END, now=END),
        Expect(
            frozenset({PK, ESTIMATED}),
            frozenset({JAN, FEB}),
            frozenset({REGISTERS_PK}),
            frozenset({REGISTERS_FEB}),
        ),
    ),
    # The ingest: which of a batch's slots hold estimates, by the partial index of the
    # few estimated rows (its predicate is literal SQL so a generic plan can use it too).
    "ingest-stored-estimates": (
        lambda s: stored_estimates(s, _estimate_keys(s)),
        through(ESTIMATED, months=(FEB,)),
    ),
}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("case", list(CASES))
def test_plan(fleet: Engine, cat: Catalog, case: str, generic: bool) -> None:
    """A page's, export's or the ingest's queries read raw intervals only as `CASES` allows."""
    call, expect = CASES[case]
    check(plans_of(fleet, call, generic), expect, cat)


def test_the_segment_pages_read_counts_come_from_the_hourly_index_alone(fleet: Engine) -> None:
    """Each utility's intervals read in its last day: 240,000 heap rows at 10,000 meters."""
    with fleet.connect() as conn:
        latest_of = {
            utility: latest
            for utility, latest in conn.execute(
                select(
                    models.Meter.utility_id, func.max(models.Meter.last_interval_start)
                ).group_by(models.Meter.utility_id)
            )
            if latest is not None
        }
    assert latest_of
    sent = sent_by(fleet, lambda s: segment_queries.last_day_reads(s, latest_of))
    hourly = [
        node
        for statement, parameters in sent
        for node in plan_nodes(_explain_with_indexes_only(fleet, statement, parameters))
        if node.relation == "readings_hourly"
    ]
    assert hourly
    # A plan that could answer from the index alone: the counts are in it.
    assert {(n.type, n.index) for n in hourly} == {("Index Only Scan", HOURLY_COVER)}


def _explain_with_indexes_only(
    engine: Engine, statement: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    # The module's few rows would rather be scanned; with scans off the plan shows whether
    # an index holds every column the query reads.
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            return dict(cursor.fetchone()[0][0]["Plan"])
        finally:
            raw.rollback()


def test_the_checks_catch_a_scan_of_raw_intervals(fleet: Engine, cat: Catalog) -> None:
    """Plans that read intervals the wrong way fail `check`, so its passing means something."""
    january = select(models.Reading.kwh).where(
        models.Reading.start >= WEEK[0], models.Reading.start < WEEK[1]
    )
    # A week across the fleet: no index on start alone, so every January row is read.
    scanned = plans_of(fleet, lambda s: s.execute(january), generic=False)
    with pytest.raises(AssertionError, match="reads raw intervals"):
        check(scanned, ROLLUPS_ONLY, cat)
    january_parts = "|".join(
        t for t, p in cat.parts.items() if p.parent == partitions.PARENT and p.holds_any({JAN})
    )
    with pytest.raises(AssertionError, match=f"Seq Scan on ({january_parts}):"):
        check(scanned, through(PK, months=(JAN,)), cat)
    # One meter without a bound on start: the key, but every partition.
    unbounded = select(func.count()).where(models.Reading.meter_id == METER)
    every_month = plans_of(fleet, lambda s: s.execute(unbounded), generic=True)
    with pytest.raises(AssertionError, match="partition not pruned"):
        check(every_month, through(PK, months=(JAN,)), cat)
    with pytest.raises(AssertionError, match="uses pk_readings"):
        check(every_month, through(ESTIMATED), cat)
    # Register reads are held to the same rules: not read where not expected, by their
    # key, pruned to the months named.
    one_meters_reads = select(models.RegisterRead.kwh).where(models.RegisterRead.meter_id == METER)
    register_reads = plans_of(fleet, lambda s: s.execute(one_meters_reads), generic=False)
    with pytest.raises(AssertionError, match="reads register_reads"):
        check(register_reads, ROLLUPS_ONLY, cat)
    with pytest.raises(AssertionError, match="partition not pruned"):
        check(
            register_reads,
            Expect(register_indexes=frozenset({REGISTERS_PK}), register_months=frozenset({"x"})),
            cat,
        )
    with pytest.raises(AssertionError, match="uses pk_register_reads"):
        check(register_reads, Expect(register_indexes=frozenset({PK})), cat)
    # A case declared to read intervals whose calls read none checks nothing.
    rollups = plans_of(fleet, lambda s: queries.recent_daily_rollups(s, METER), generic=False)
    with pytest.raises(AssertionError, match="found none"):
        check(rollups, through(PK), cat)
