"""Read-side queries for the portal and API, every one scoped to the caller's tenant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import ColumnElement, Select, case, func, select, text, true
from sqlalchemy.orm import Session, aliased

from app.db import models
from app.domain import telemetry
from app.domain.access import Scope

HEARTBEAT_STALE_S = 30


def utility_clause(scope: Scope) -> ColumnElement[bool]:
    """Return the WHERE clause on `utilities` that a scope allows."""
    if scope.everything:
        return true()
    if scope.utility_id is not None:
        return models.Utility.id == scope.utility_id
    return models.Utility.distributor_id == scope.distributor_id


def scoped_meters(scope: Scope) -> Select[models.Meter]:
    """Select the meters a scope may see."""
    return (
        select(models.Meter)
        .join(models.Utility, models.Meter.utility_id == models.Utility.id)
        .where(utility_clause(scope))
    )


@dataclass(frozen=True, slots=True)
class UtilityRow:
    """One line of the fleet overview."""

    id: str
    name: str
    segment: str
    distributor: str
    meters: int
    online: int
    offline: int
    readings_last_hour: int


def fleet_overview(session: Session, scope: Scope, now: datetime) -> list[UtilityRow]:
    """Count meters, online/offline and readings received in the last hour, per visible utility."""
    counts = (
        select(
            models.Meter.utility_id.label("utility_id"),
            func.count().label("meters"),
            func.sum(case((models.Meter.status == "online", 1), else_=0)).label("online"),
            func.sum(case((models.Meter.status == "offline", 1), else_=0)).label("offline"),
        )
        .group_by(models.Meter.utility_id)
        .subquery()
    )
    recent = (
        select(models.Meter.utility_id.label("utility_id"), func.count().label("n"))
        .join(models.Reading, models.Reading.meter_id == models.Meter.id)
        .where(models.Reading.received_at >= now - timedelta(hours=1))
        .group_by(models.Meter.utility_id)
        .subquery()
    )
    query = (
        select(
            models.Utility.id,
            models.Utility.name,
            models.Utility.segment,
            models.Distributor.name,
            func.coalesce(counts.c.meters, 0),
            func.coalesce(counts.c.online, 0),
            func.coalesce(counts.c.offline, 0),
            func.coalesce(recent.c.n, 0),
        )
        .join(models.Distributor, models.Utility.distributor_id == models.Distributor.id)
        .outerjoin(counts, counts.c.utility_id == models.Utility.id)
        .outerjoin(recent, recent.c.utility_id == models.Utility.id)
        .where(utility_clause(scope))
        .order_by(models.Utility.segment, models.Utility.name)
    )
    return [UtilityRow(*row) for row in session.execute(query)]


def list_meters(
    session: Session,
    scope: Scope,
    *,
    utility_id: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[models.Meter]:
    """List visible meters, optionally for one utility."""
    query = scoped_meters(scope).order_by(models.Meter.id).limit(limit).offset(offset)
    if utility_id is not None:
        query = query.where(models.Meter.utility_id == utility_id)
    return list(session.scalars(query))


def get_meter(session: Session, scope: Scope, meter_id: str) -> models.Meter | None:
    """Return a meter if the scope may see it (None means 404, never 403: no existence leak)."""
    return session.scalars(scoped_meters(scope).where(models.Meter.id == meter_id)).first()


def recent_readings(session: Session, meter_id: str, limit: int = 192) -> list[models.Reading]:
    """Return a meter's newest `limit` intervals, oldest first."""
    rows = session.scalars(
        select(models.Reading)
        .where(models.Reading.meter_id == meter_id)
        .order_by(models.Reading.start.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def reading_changes(
    session: Session,
    meter_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> list[models.ReadingAudit]:
    """Return a meter's audited changes (newest first), of intervals in [start, end) if given."""
    query = select(models.ReadingAudit).where(models.ReadingAudit.meter_id == meter_id)
    if start is not None:
        query = query.where(models.ReadingAudit.start >= start)
    if end is not None:
        query = query.where(models.ReadingAudit.start < end)
    order = (models.ReadingAudit.changed_at.desc(), models.ReadingAudit.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def readings_between(
    session: Session, meter_id: str, start: datetime, end: datetime, limit: int = 10_000
) -> list[models.Reading]:
    """Return a meter's intervals with start in [start, end), oldest first."""
    return list(
        session.scalars(
            select(models.Reading)
            .where(
                models.Reading.meter_id == meter_id,
                models.Reading.start >= start,
                models.Reading.start < end,
            )
            .order_by(models.Reading.start)
            .limit(limit)
        )
    )


LoadRow = tuple[datetime, str, float]
# (scope, first hour, last hour) of the cached part of the chart.
LoadKey = tuple[Scope, datetime, datetime]
# The newest hours of the fleet load chart, always read from the database.
FRESH_HOURS = 2


class PastLoads:
    """Per-segment loads of completed hours, shared by a process's requests for `ttl` seconds.

    Summing a day of hourly rollups is 240,000 rows at 10,000 meters, most of the fleet
    overview's time; the hours before the newest two change only when a late reading
    lands, so they are kept a few minutes and the newest two are always read fresh. Keyed by
    scope, so one tenant's sums never reach another.
    """

    def __init__(
        self, ttl: float = 300.0, maxsize: int = 256, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache: TTLCache[LoadKey, tuple[LoadRow, ...]] = TTLCache(maxsize, ttl, timer)
        # TTLCache is not thread-safe and gunicorn serves with threads.
        self._lock = threading.Lock()

    def get(self, key: LoadKey) -> tuple[LoadRow, ...] | None:
        """Return the stored rows for (scope, first hour, last hour), or None."""
        with self._lock:
            return self._cache.get(key)

    def put(self, key: LoadKey, rows: tuple[LoadRow, ...]) -> None:
        """Keep `rows` for (scope, first hour, last hour)."""
        with self._lock:
            self._cache[key] = rows

    def clear(self) -> None:
        """Forget everything (the page benchmark's cold runs)."""
        with self._lock:
            self._cache.clear()


def fleet_load_by_segment(
    session: Session, scope: Scope, hours: int = 24, past: PastLoads | None = None
) -> list[LoadRow]:
    """Average demand kW per hour and segment over the newest `hours` of visible meters.

    With `past`, the hours before the newest `FRESH_HOURS` come from it when it has them.
    """
    newest = session.scalar(
        select(func.max(models.Meter.last_interval_start))
        .join(models.Utility, models.Meter.utility_id == models.Utility.id)
        .where(utility_clause(scope))
    )
    if newest is None:
        return []
    # The newest hour whose last quarter has arrived: an hour still arriving would be
    # drawn as a cliff (its first quarter's kWh read as the hour's average kW).
    hour = (newest + timedelta(minutes=15)).replace(minute=0, second=0, microsecond=0)
    hour -= timedelta(hours=1)
    since = hour - timedelta(hours=hours - 1)
    if past is None or hours <= FRESH_HOURS:
        return _load(session, scope, since, hour)
    # The hour before the newest is fresh too: the window moves when the first meter
    # reports a new hour, and a meter whose call failed sends its last quarter of the
    # previous hour along with its next one.
    before = hour - timedelta(hours=FRESH_HOURS)
    key = (scope, since, before)
    earlier = past.get(key)
    if earlier is None:
        earlier = tuple(_load(session, scope, since, before))
        past.put(key, earlier)
    return [*earlier, *_load(session, scope, before + timedelta(hours=1), hour)]


def _load(session: Session, scope: Scope, first: datetime, last: datetime) -> list[LoadRow]:
    # Hourly rollups, not raw intervals: a day of 10,000 meters is 240,000 rows instead of
    # 960,000. An hour's kWh is its average kW.
    rollup = models.HourlyRollup
    visible = select(models.Utility.id).where(utility_clause(scope))
    # Per hour and utility first (a hash join on the meters), then per segment: grouping
    # the joined rows by segment directly made PostgreSQL sort every hourly row.
    per_utility = (
        select(
            rollup.start.label("start"),
            models.Meter.utility_id.label("utility_id"),
            func.sum(rollup.kwh).label("kwh"),
        )
        .join(models.Meter, rollup.meter_id == models.Meter.id)
        .where(models.Meter.utility_id.in_(visible), rollup.start >= first, rollup.start <= last)
        .group_by(rollup.start, models.Meter.utility_id)
        .subquery()
    )
    query = (
        select(per_utility.c.start, models.Utility.segment, func.sum(per_utility.c.kwh))
        .join(models.Utility, per_utility.c.utility_id == models.Utility.id)
        .group_by(per_utility.c.start, models.Utility.segment)
        .order_by(per_utility.c.start, models.Utility.segment)
    )
    return [(start, segment, float(kwh)) for start, segment, kwh in session.execute(query)]


@dataclass(frozen=True, slots=True)
class Health:
    """Counts and liveness for /api/v1/health."""

    meters: int
    readings: int
    readings_exact: bool
    dead_letters: int
    dead_letters_exact: bool
    broker_connected: bool
    ingest_seen_at: datetime | None
    vee_done_at: datetime | None


# The heartbeat row `python -m app.ingest vee --every` writes (app/ingest/__main__.py).
VEE_HEARTBEAT = "vee"


def health(session: Session, now: datetime) -> Health:
    """Gather fleet-wide counts and whether a live ingest worker reports a broker connection."""
    beats = session.scalars(select(models.ServiceHeartbeat)).all()
    # Scheduled VEE's heartbeat says when a pass last finished, not whether the ingest is alive.
    vee = next((b for b in beats if b.name == VEE_HEARTBEAT), None)
    beats = [b for b in beats if b.name != VEE_HEARTBEAT]
    fresh = [b for b in beats if (now - b.updated_at).total_seconds() <= HEARTBEAT_STALE_S]
    readings, exact = reading_count(session)
    dead, dead_exact = dead_letter_count(session)
    done = vee.details.get("done_at") if vee else None
    return Health(
        meters=session.scalar(select(func.count()).select_from(models.Meter)) or 0,
        readings=readings,
        readings_exact=exact,
        dead_letters=dead,
        dead_letters_exact=dead_exact,
        broker_connected=any(b.broker_connected for b in fresh),
        ingest_seen_at=max((b.updated_at for b in beats), default=None),
        vee_done_at=telemetry.parse_time(done, "done_at") if isinstance(done, str) else None,
    )


# Each monthly partition (or TimescaleDB chunk) of `readings` with the planner's row count:
# reltuples is -1 until the partition is first analysed.
_PARTITION_ROWS = text(
    "SELECT c.oid::regclass::text, c.reltuples FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass"
)


_TABLE_ROWS = text("SELECT 'readings', reltuples FROM pg_class WHERE oid = 'readings'::regclass")


def reading_count(session: Session) -> tuple[int, bool]:
    """Return how many readings are stored and whether that is exact (not an estimate).

    On PostgreSQL, the planner's statistics of each partition: counting 86 million rows
    takes seconds, and the compose healthcheck asks every 30 s with a 4 s timeout. A
    partition never analysed yet (new, so small) is counted. SQLite (the demo) counts.
    """
    if session.get_bind().dialect.name != "postgresql":
        return session.scalar(select(func.count()).select_from(models.Reading)) or 0, True
    parts = list(session.execute(_PARTITION_ROWS))
    if not parts:
        # Not partitioned (a database migrated back below 0006): the table's own statistics.
        parts = list(session.execute(_TABLE_ROWS))
    total, exact = 0, True
    for name, rows in parts:
        if rows >= 0:
            total += round(rows)
            exact = False
        else:
            # The partition name comes from the catalogue, quoted by regclass's text form.
            total += session.scalar(text(f"SELECT count(*) FROM {name}")) or 0  # noqa: S608
    return total, exact


# Up to this many dead letters are counted; past it (a device sending garbage for days), the
# planner's statistics: counting millions of rows would outrun the healthcheck's 4 s.
DEAD_LETTERS_COUNTED = 100_000
_DEAD_LETTER_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = 'dead_letters'::regclass")


def dead_letter_count(session: Session) -> tuple[int, bool]:
    """Return how many dead letters are stored and whether that is exact (not an estimate).

    SQLite (the demo) counts them all. PostgreSQL counts up to `DEAD_LETTERS_COUNTED`;
    past that it reports the planner's row count, or the capped count when that is lower
    (statistics not yet updated): at least that many.
    """
    if session.get_bind().dialect.name != "postgresql":
        return session.scalar(select(func.count()).select_from(models.DeadLetter)) or 0, True
    first = select(models.DeadLetter.id).limit(DEAD_LETTERS_COUNTED + 1).subquery()
    counted = session.scalar(select(func.count()).select_from(first)) or 0
    if counted <= DEAD_LETTERS_COUNTED:
        return counted, True
    planned = session.scalar(_DEAD_LETTER_ROWS) or 0
    return max(counted, round(planned)), False


def find_user(session: Session, email: str) -> models.User | None:
    """Find an active user by e-mail, case-insensitively (stored addresses are lower case)."""
    return session.scalars(
        select(models.User).where(models.User.email == email.strip().lower(), models.User.active)
    ).first()


def dead_letters(
    session: Session, scope: Scope, *, limit: int = 200, before_id: int | None = None
) -> list[models.DeadLetter]:
    """Return the newest dead letters a scope may see (tenants: only those naming their meters)."""
    letter = models.DeadLetter
    older = letter.id < before_id if before_id is not None else true()
    query = select(letter).where(older).order_by(letter.id.desc()).limit(limit)
    if scope.everything:
        return list(session.scalars(query))
    if session.get_bind().dialect.name != "postgresql":
        visible = scoped_meters(scope).with_only_columns(models.Meter.id)
        return list(session.scalars(query.where(letter.meter_id.in_(visible))))
    # Each visible meter's newest few from (meter_id, id), merged: walking every letter
    # newest first (most name no known meter) read them all for a tenant with none lately
    # (683 ms at 260,000 letters). SQLite has no LATERAL and holds demo-sized tables.
    newest = (
        select(letter)
        .where(letter.meter_id == models.Meter.id, older)
        .order_by(letter.id.desc())
        .limit(limit)
        .lateral("newest")
    )
    row = aliased(models.DeadLetter, newest)
    merged = (
        scoped_meters(scope)
        .with_only_columns(row)
        .join(newest, true())
        .order_by(row.id.desc())
        .limit(limit)
    )
    return list(session.scalars(merged))


def dead_letter(session: Session, scope: Scope, letter_id: int) -> models.DeadLetter | None:
    """Return one dead letter if the scope may see it (tenants: only one naming their meter)."""
    query = select(models.DeadLetter).where(models.DeadLetter.id == letter_id)
    if not scope.everything:
        visible = scoped_meters(scope).with_only_columns(models.Meter.id)
        query = query.where(models.DeadLetter.meter_id.in_(visible))
    return session.scalars(query).first()


def rollups_between(
    session: Session, meter_id: str, period: str, start: datetime, end: datetime
) -> list[models.HourlyRollup] | list[models.DailyRollup]:
    """Return a meter's hourly or daily rollups with start in [start, end), oldest first."""
    if period == "hourly":
        return list(
            session.scalars(
                select(models.HourlyRollup)
                .where(
                    models.HourlyRollup.meter_id == meter_id,
                    models.HourlyRollup.start >= start,
                    models.HourlyRollup.start < end,
                )
                .order_by(models.HourlyRollup.start)
            )
        )
    return list(
        session.scalars(
            select(models.DailyRollup)
            .where(
                models.DailyRollup.meter_id == meter_id,
                models.DailyRollup.start >= start,
                models.DailyRollup.start < end,
            )
            .order_by(models.DailyRollup.start)
        )
    )


def recent_daily_rollups(
    session: Session, meter_id: str, limit: int = 14
) -> list[models.DailyRollup]:
    """Return a meter's newest `limit` daily rollups, newest first."""
    return list(
        session.scalars(
            select(models.DailyRollup)
            .where(models.DailyRollup.meter_id == meter_id)
            .order_by(models.DailyRollup.start.desc())
            .limit(limit)
        )
    )


def meter_events(session: Session, meter_id: str, limit: int = 20) -> list[models.Event]:
    """Return a meter's newest events (by the meter's own time), newest first."""
    return list(
        session.scalars(
            select(models.Event)
            .where(models.Event.meter_id == meter_id)
            .order_by(models.Event.at.desc(), models.Event.id.desc())
            .limit(limit)
        )
    )


def recent_hourly_rollups(
    session: Session, meter: models.Meter, days: int = 28
) -> list[models.HourlyRollup]:
    """Return a meter's hourly rollups over the `days` before its newest interval."""
    if meter.last_interval_start is None:
        return []
    end = meter.last_interval_start + timedelta(minutes=15)
    found = rollups_between(session, meter.id, "hourly", end - timedelta(days=days), end)
    return [r for r in found if isinstance(r, models.HourlyRollup)]
