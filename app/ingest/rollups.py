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

from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import models
from app.domain import rollups

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
    return {
        "meter_id": meter_id,
        "start": r.start,
        "kwh": r.kwh,
        "kvarh": r.kvarh,
        "peak_kw": r.peak_kw,
        "peak_at": r.peak_at,
        "power_factor": r.power_factor,
        "intervals": r.intervals,
        "valid": r.valid,
        "estimated": r.estimated,
        "questionable": r.questionable,
        "edited": r.edited,
    }


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
    sums: dict[tuple[str, datetime], list[Any]] = {}
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
        if key[1] not in days[h.meter_id]:
            continue
        acc = sums.get(key)
        if acc is None:
            sums[key] = [
                h.kwh,
                h.kvarh,
                h.peak_kw,
                h.peak_at,
                h.intervals,
                h.valid,
                h.estimated,
                h.questionable,
                h.edited,
            ]
            continue
        acc[0] += h.kwh
        acc[1] += h.kvarh
        if h.peak_kw > acc[2] or (h.peak_kw == acc[2] and h.peak_at < acc[3]):
            acc[2], acc[3] = h.peak_kw, h.peak_at
        for k, value in enumerate((h.intervals, h.valid, h.estimated, h.questionable, h.edited)):
            acc[4 + k] += value
    daily = [
        _row(
            m,
            rollups.Rollup(bucket, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]),
        )
        for (m, bucket), a in sums.items()
    ]
    if daily:
        conn.execute(_upsert(session, _DAILY), daily)
    return len(hourly), len(daily)
