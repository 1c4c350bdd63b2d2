"""Keep the hourly and daily rollup tables equal to the intervals they summarise.

After readings change, the buckets they fall in are recomputed from the stored intervals
in the same transaction: exact under redelivery and estimate replacement, and the work is
proportional to what changed, never to the history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    Numeric,
    Table,
    and_,
    case,
    cast,
    column,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import models
from app.domain import rollups
from app.ingest import bulk, columnar

METERS_PER_QUERY = 500
_HOURLY: Table = models.HourlyRollup.__table__  # type: ignore[assignment]
_DAILY: Table = models.DailyRollup.__table__  # type: ignore[assignment]


def _upsert(session: Session, table: Table) -> Insert:
    return upsert_statement(session.get_bind().dialect.name, table)


def upsert_statement(dialect: str, table: Table) -> Insert:
    """Return an INSERT of rollup rows that replaces any bucket already stored."""
    stmt: postgresql.Insert | sqlite.Insert
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    keys = {"meter_id", "start"}
    return stmt.on_conflict_do_update(
        index_elements=[table.c.meter_id, table.c.start],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )


def _row(meter_id: str, r: rollups.Rollup) -> dict[str, Any]:
    return dict(zip(_COLUMN_NAMES, _values(meter_id, r), strict=True))


def add_hourly(
    session: Session,
    hours: list[tuple[str, rollups.Rollup]],
    zones: Mapping[str, tzinfo],
) -> tuple[int, int]:
    """Add new intervals' (meter, hourly rollup) pairs to the hourly and daily rollups.

    The fast path of the ingest: the batch's own intervals, rolled up in memory, are added
    to the stored buckets in SQL, so no raw interval is read back. Only exact when none of
    them was stored before (the caller proved it); an upsert that adds is also safe when
    two workers add to one bucket at once, as the row lock orders them.
    """
    day_of: dict[tuple[tzinfo, datetime], datetime] = {}
    by_day: dict[tuple[str, datetime], list[rollups.Rollup]] = defaultdict(list)
    hourly = []
    for meter_id, hour in hours:
        hourly.append(_values(meter_id, hour))
        tz = zones.get(meter_id, UTC)
        day = day_of.get((tz, hour.start))
        if day is None:
            day = day_of[(tz, hour.start)] = rollups.day_start(hour.start, tz)
        by_day[(meter_id, day)].append(hour)
    daily = [
        _values(m, r)
        for (m, day), parts in by_day.items()
        if (r := rollups.combine(parts, day)) is not None
    ]
    # A complete hour (4 intervals, all new) cannot be stored yet, so a day's backlog goes
    # in with one COPY; a part-hour usually adds to a stored bucket, and a local day almost
    # always does, so those go straight to the adding upsert.
    _add(session, _HOURLY, hourly, fresh=all(h[_INTERVALS] == 4 for h in hourly))
    _add(session, _DAILY, daily, fresh=False)
    return len(hourly), len(daily)


def _power_factor(kwh: ColumnElement[float], kvarh: ColumnElement[float]) -> ColumnElement[Any]:
    # The SQL twin of Rollup.power_factor: kWh over kVAh to 4 places, NULL without energy.
    kvah2 = kwh * kwh + kvarh * kvarh
    return case(
        (kvah2 > 0, cast(func.round(cast(kwh / func.sqrt(kvah2), Numeric), 4), Float)),
        else_=None,
    )


def _additive(stmt: postgresql.Insert | sqlite.Insert, table: Table) -> Insert:
    t, x = table.c, stmt.excluded
    later = or_(x.peak_kw > t.peak_kw, and_(x.peak_kw == t.peak_kw, x.peak_at < t.peak_at))
    counts = ("intervals", "valid", "estimated", "questionable", "edited")
    return stmt.on_conflict_do_update(
        index_elements=[t.meter_id, t.start],
        set_={
            "kwh": t.kwh + x.kwh,
            "kvarh": t.kvarh + x.kvarh,
            "peak_kw": case((x.peak_kw > t.peak_kw, x.peak_kw), else_=t.peak_kw),
            "peak_at": case((later, x.peak_at), else_=t.peak_at),
            "power_factor": _power_factor(t.kwh + x.kwh, t.kvarh + x.kvarh),
            **{c: t[c] + x[c] for c in counts},
        },
    )


_PG_TYPES = {"meter_id": "varchar", "start": "timestamptz", "peak_at": "timestamptz"}
_COUNTS = ("intervals", "valid", "estimated", "questionable", "edited")


# Rollup rows as tuples in table column order: the fast path builds no dicts.
_COLUMN_NAMES = tuple(c.name for c in _HOURLY.columns)
_INTERVALS = _COLUMN_NAMES.index("intervals")


def _values(meter_id: str, r: rollups.Rollup) -> tuple[Any, ...]:
    # Table order is the rollup's with meter_id first and power_factor after peak_at;
    # unpacked once, as this runs for every hour the ingest adds.
    start, kwh, kvarh, peak_kw, peak_at, intervals, valid, estimated, questionable, edited = r
    pf = rollups.power_factor(kwh, kvarh)
    return (
        meter_id,
        start,
        kwh,
        kvarh,
        peak_kw,
        peak_at,
        pf,
        intervals,
        valid,
        estimated,
        questionable,
        edited,
    )


def add_columns(session: Session, hours: columnar.Hours, zones: Mapping[str, tzinfo]) -> None:
    """Add a columnar batch's hours to the hourly and daily rollups (PostgreSQL).

    The same fast path as `add_hourly`, for hours computed a column at a time: their COPY
    data is built by numpy, and only the day parts (a 24th as many) are Python rows.
    """
    factors = hours.power_factors()
    data = hours.copy(factors)
    if data is None:  # an hour without energy has no power factor: NULL, a Python row
        _add(session, _HOURLY, [_values(m, r) for m, r in hours.pairs()], fresh=hours.complete)
    else:
        _add(session, _HOURLY, data, fresh=hours.complete)
    _add(session, _DAILY, [_values(m, r) for m, r in hours.days(zones)], fresh=False)


def _add(
    session: Session, table: Table, values: list[tuple[Any, ...]] | bytes, *, fresh: bool
) -> None:
    """Add rows (tuples in table order, or binary COPY tuples on PostgreSQL) to a rollup."""
    if not values:
        return
    if session.get_bind().dialect.name != "postgresql":
        if isinstance(values, bytes):
            raise TypeError("binary COPY rows need PostgreSQL")
        rows = [dict(zip(_COLUMN_NAMES, v, strict=True)) for v in values]
        session.connection().execute(_additive(sqlite.insert(table), table), rows)
        return
    # PostgreSQL: buckets expected to be new go in with one COPY (falling back if one was
    # not); otherwise COPY to a temporary table and add with one INSERT ... SELECT. A
    # quarter as many rows as readings: too many for executemany at full rate.
    columns = [
        (c.name, _PG_TYPES.get(c.name, "int4" if c.name in _COUNTS else "float8"))
        for c in table.columns
    ]
    if fresh and bulk.copy_if_all_new(session, table.name, columns, values):
        return
    stage = f"{table.name}_stage"
    bulk.copy_rows(
        session,
        stage,
        columns,
        values,
        create=f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    )
    names = [c for c, _ in columns]
    staged = sql_table(stage, *(column(c) for c in names))
    # Taken out of the stage as they are added: its rows otherwise last until the commit,
    # and a second add in the same transaction (a batch's columnar part, then its general
    # part) would add the first one's rows again.
    moved = delete(staged).returning(*staged.c).cte("moved")
    statement = postgresql.insert(table).from_select(names, select(*moved.c)).add_cte(moved)
    session.connection().execute(_additive(statement, table))


def rebuild_span(session: Session, meter_ids: Sequence[str]) -> tuple[datetime, datetime] | None:
    """Return [first, end) covering the meters' stored intervals and rollups, or None."""
    found: list[datetime] = []
    reading = models.Reading.__table__
    for table in (reading, _HOURLY, _DAILY):
        low, high = session.execute(
            select(func.min(table.c.start), func.max(table.c.start)).where(
                table.c.meter_id.in_(meter_ids)
            )
        ).one()
        found += [t for t in (low, high) if t is not None]
    if not found:
        return None
    # A day's rollup starts at local midnight and spans the day; an hour spans an hour.
    return min(found), max(found) + timedelta(days=1)


def count(session: Session, meter_ids: Sequence[str]) -> tuple[int, int]:
    """Return how many hourly and daily rollups the meters have."""
    return (
        session.scalar(select(func.count()).where(_HOURLY.c.meter_id.in_(meter_ids))) or 0,
        session.scalar(select(func.count()).where(_DAILY.c.meter_id.in_(meter_ids))) or 0,
    )


def rebuild(
    session: Session,
    meter_ids: Sequence[str],
    zones: Mapping[str, tzinfo],
    first: datetime,
    end: datetime,
) -> tuple[int, int]:
    """Drop the meters' rollups starting in [first, end) and recompute them from the intervals.

    Hours are those of the window; a local day that crosses the window's edge is
    recomputed from its hours, some of them not rebuilt yet, and again when the next
    window rebuilds those, so windows in order leave every day right.

    Safe beside a running ingest. On PostgreSQL the rollup tables are locked EXCLUSIVE for
    the transaction (the portal's reads go on): a batch about to add to a bucket waits and
    then adds to the rebuilt one, and a batch that wrote first has committed its readings
    before the rebuild reads them. `readings` is locked first, as a batch takes it first
    (a batch creates its months' partitions, which locks `readings`, before it writes any
    rollup); the other order deadlocked (`test_rollups_store.py` found it). On SQLite the
    first DELETE takes the database's one write lock, so no batch commits between the
    rebuild's reads and its writes.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE readings IN ACCESS SHARE MODE"))
        session.execute(text("LOCK TABLE readings_hourly, readings_daily IN EXCLUSIVE MODE"))
    for table in (_HOURLY, _DAILY):
        session.execute(
            delete(table).where(
                table.c.meter_id.in_(meter_ids), table.c.start >= first, table.c.start < end
            )
        )
    spans = session.execute(
        select(
            models.Reading.meter_id, func.min(models.Reading.start), func.max(models.Reading.start)
        )
        .where(
            models.Reading.meter_id.in_(meter_ids),
            models.Reading.start >= first,
            models.Reading.start < end,
        )
        .group_by(models.Reading.meter_id)
    )
    touched: dict[str, list[datetime]] = {}
    for meter_id, low, high in spans:
        hour, last = rollups.hour_start(low), rollups.hour_start(high)
        hours = touched[meter_id] = []
        while hour <= last:
            hours.append(hour)
            hour += timedelta(hours=1)
    return refresh(session, touched, zones) if touched else (0, 0)


def refresh(
    session: Session,
    touched: Mapping[str, Sequence[datetime]],
    zones: Mapping[str, tzinfo],
) -> tuple[int, int]:
    """Recompute the hourly and daily buckets holding `touched` interval starts per meter.

    Hours are recomputed from the raw intervals of the touched hours only; days from the
    (already updated) hourly rows, 24 per day instead of 96 intervals.
    """
    meters = sorted(touched)
    hourly = days = 0
    for at in range(0, len(meters), METERS_PER_QUERY):
        chunk = meters[at : at + METERS_PER_QUERY]
        h, d = _refresh_chunk(session, chunk, touched, zones)
        hourly += h
        days += d
    return hourly, days


def _refresh_chunk(
    session: Session,
    chunk: Sequence[str],
    touched: Mapping[str, Sequence[datetime]],
    zones: Mapping[str, tzinfo],
) -> tuple[int, int]:
    hour_of: dict[datetime, datetime] = {}

    def hour(start: datetime) -> datetime:
        # Every meter reports the same interval starts: bucket each start once.
        found = hour_of.get(start)
        if found is None:
            found = hour_of[start] = rollups.hour_start(start)
        return found

    hours = {m: {hour(s) for s in touched[m]} for m in chunk}
    low = min(min(h) for h in hours.values())
    high = max(max(h) for h in hours.values()) + timedelta(hours=1)
    _lock(session, _HOURLY, hours)
    by_hour: dict[tuple[str, datetime], rollups.Accumulator] = defaultdict(rollups.Accumulator)
    rows = session.execute(
        select(
            models.Reading.meter_id,
            models.Reading.start,
            models.Reading.kwh,
            models.Reading.kvarh,
            models.Reading.demand_kw,
            models.Reading.quality,
        )
        .where(
            models.Reading.meter_id.in_(chunk),
            models.Reading.start >= low,
            models.Reading.start < high,
        )
        # In time order, so float sums come out the same bits whatever the physical order.
        .order_by(models.Reading.meter_id, models.Reading.start)
    )
    for meter_id, start, kwh, kvarh, kw, quality in rows:
        bucket = hour(start)
        if bucket in hours[meter_id]:
            by_hour[(meter_id, bucket)].add(start, kwh, kvarh, kw, quality)
    hourly = [
        _row(m, r) for (m, bucket), acc in by_hour.items() if (r := acc.result(bucket)) is not None
    ]
    conn = session.connection()
    if hourly:
        conn.execute(_upsert(session, _HOURLY), hourly)
    # An hour left without readings (VEE withdrew its estimates) has no rollup any more.
    kept = {(row["meter_id"], row["start"]) for row in hourly}
    _delete_buckets(session, models.HourlyRollup, hours, kept)

    # Local days begin on an hour in every North American zone, so a day is its hours.
    day_of: dict[tuple[tzinfo, datetime], datetime] = {}

    def day(meter_id: str, hour_start: datetime) -> datetime:
        tz = zones.get(meter_id, UTC)
        found = day_of.get((tz, hour_start))
        if found is None:
            found = day_of[(tz, hour_start)] = rollups.day_start(hour_start, tz)
        return found

    days = {m: {day(m, h) for h in hours[m]} for m in chunk}
    low = min(min(d) for d in days.values())
    high = max(rollups.day_span(max(d), zones.get(m, UTC))[1] for m, d in days.items())
    _lock(session, _DAILY, days)
    parts: dict[tuple[str, datetime], list[rollups.Rollup]] = defaultdict(list)
    hr = models.HourlyRollup
    for h in session.execute(
        select(
            hr.meter_id,
            hr.start,
            hr.kwh,
            hr.kvarh,
            hr.peak_kw,
            hr.peak_at,
            hr.intervals,
            hr.valid,
            hr.estimated,
            hr.questionable,
            hr.edited,
        )
        .where(hr.meter_id.in_(chunk), hr.start >= low, hr.start < high)
        .order_by(hr.meter_id, hr.start)
    ):
        key = (h.meter_id, day(h.meter_id, h.start))
        if key[1] in days[h.meter_id]:
            parts[key].append(rollups.Rollup(*h[1:]))
    daily = [
        _row(m, r)
        for (m, bucket), hours_of_day in parts.items()
        if (r := rollups.combine(hours_of_day, bucket)) is not None
    ]
    if daily:
        conn.execute(_upsert(session, _DAILY), daily)
    _delete_buckets(session, models.DailyRollup, days, {(r["meter_id"], r["start"]) for r in daily})
    return len(hourly), len(daily)


def _lock(session: Session, table: Table, buckets: Mapping[str, set[datetime]]) -> None:
    """Lock the buckets a recompute will overwrite, waiting for writers adding to them.

    On PostgreSQL a recompute reads the raw rows and then writes the totals: without the
    lock, a writer that added to a bucket after the read and committed before the write
    was overwritten (a reading lost from its hour and day until a rebuild). A missing
    bucket is locked through a placeholder row; its insert waits for a writer's uncommitted
    one. Writers that come later wait for this transaction and add to the new totals.
    SQLite writes one transaction at a time: nothing to do.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted((m, start) for m, starts in buckets.items() for start in starts)
    placeholders = [
        {"meter_id": m, "start": start, "kwh": 0.0, "kvarh": 0.0, "peak_kw": 0.0,
         "peak_at": start, "power_factor": None,
         **dict.fromkeys(_COUNTS, 0)}
        for m, start in keys
    ]  # fmt: skip
    conn = session.connection()
    for at in range(0, len(placeholders), _LOCK_ROWS):
        conn.execute(
            postgresql.insert(table)
            .values(placeholders[at : at + _LOCK_ROWS])
            .on_conflict_do_nothing(index_elements=[table.c.meter_id, table.c.start])
        )
    # One statement for the chunk: its meters' buckets over the span, in key order (the
    # order every recompute locks in). A few untouched buckets inside the span are locked too.
    t = table.c
    starts = [start for _, start in keys]
    conn.execute(
        select(t.meter_id)
        .where(t.meter_id.in_(list(buckets)), t.start >= min(starts), t.start <= max(starts))
        .order_by(t.meter_id, t.start)
        .with_for_update()
    )


_LOCK_ROWS = 1000  # placeholder rows per INSERT (bound parameters stay well under 65,535)


def _delete_buckets(
    session: Session,
    model: type[models.HourlyRollup] | type[models.DailyRollup],
    touched: Mapping[str, set[datetime]],
    kept: set[tuple[str, datetime]],
) -> None:
    for meter_id, starts in touched.items():
        empty = sorted(s for s in starts if (meter_id, s) not in kept)
        if empty:
            session.execute(delete(model).where(model.meter_id == meter_id, model.start.in_(empty)))
