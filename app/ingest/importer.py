"""Load interval data from files (CSV, Green Button) into the readings table, audited."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import models, partitions
from app.db.locks import hold_meters
from app.domain import vee
from app.domain.localtime import zone_for
from app.ingest import rollups
from app.ingest.store import (
    STORED_COLUMNS,
    Stored,
    audit_rows,
    stored_estimates,
    upsert_readings,
)

log = logging.getLogger(__name__)
CHUNK = 5_000
FLAGS_LENGTH = 120  # readings.flags is varchar(120)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did."""

    meter_id: str
    offered: int
    audited: int


def _overwrite(session: Session) -> Any:
    # --replace: the file wins over whatever is stored (the audit keeps the old values).
    table: Table = models.Reading.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    keys = {"meter_id", "start"}
    return stmt.on_conflict_do_update(
        index_elements=["meter_id", "start"],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )


def refused(interval: vee.Interval, now: datetime, limits: vee.Plausibility) -> str | None:
    """Return why a file's interval cannot be stored, or None.

    The limits the ingest dead-letters a meter's message for (a file is no more to be
    trusted than a meter), and what the readings table cannot hold as given.
    """
    values = (interval.kwh, interval.kvarh, interval.demand_kw)
    if not all(map(math.isfinite, values)):
        return "values must be finite"
    if interval.kwh < 0 or interval.demand_kw < 0:
        return "kwh and demand_kw must not be negative"
    flags = _flags(interval)
    if len(flags) > FLAGS_LENGTH:
        return f"flags {flags!r} are longer than {FLAGS_LENGTH} characters"
    return vee.implausible(
        interval.start,
        interval.kwh,
        interval.demand_kw,
        (),
        now=now,
        limits=limits,
        kvarh=interval.kvarh,
    )


def _flags(interval: vee.Interval) -> str:
    return ",".join(sorted(interval.flags))


def _stored(
    session: Session, meter_id: str, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Stored]:
    starts = [s for _, s in keys]
    rows = session.execute(
        select(models.Reading.start, *STORED_COLUMNS).where(
            models.Reading.meter_id == meter_id,
            models.Reading.start >= min(starts),
            models.Reading.start <= max(starts),
        )
    )
    wanted = set(keys)
    return {(meter_id, r[0]): Stored(*r[1:]) for r in rows if (meter_id, r[0]) in wanted}


def store_intervals(
    session: Session,
    meter_id: str,
    intervals: Sequence[vee.Interval],
    *,
    source: str,
    now: datetime,
    replace: bool = False,
    limits: vee.Plausibility = vee.Plausibility(),  # noqa: B008 - frozen, never mutated
) -> ImportSummary:
    """Store intervals for a meter in the caller's transaction.

    By default a file behaves like the meter: it fills empty slots and replaces estimates,
    never a stored actual. With `replace`, the file's values win everywhere. Every stored
    value that changes is written to the audit trail.
    """
    hold_meters(session, [meter_id])  # what is stored stays so until this writes
    meter = session.get(models.Meter, meter_id)
    if meter is None:
        raise LookupError(f"unknown meter {meter_id!r}")
    off_grid = next((i.start for i in intervals if not vee.on_grid(i.start)), None)
    if off_grid is not None:
        raise ValueError(f"interval start {off_grid.isoformat()} is not on the 15-minute grid")
    for i in intervals:
        problem = refused(i, now, limits)
        if problem is not None:
            raise ValueError(f"interval {i.start.isoformat()}: {problem}; nothing was stored")
    audited = 0
    months = partitions.Months()
    for at in range(0, len(intervals), CHUNK):
        chunk = intervals[at : at + CHUNK]
        new: dict[tuple[str, datetime], dict[str, Any]] = {
            (meter_id, i.start): {
                "meter_id": meter_id,
                "start": i.start,
                "kwh": i.kwh,
                "kvarh": i.kvarh,
                "demand_kw": i.demand_kw,
                "voltage_a": None,
                "voltage_b": None,
                "voltage_c": None,
                "flags": _flags(i),
                "quality": i.quality,
                "received_at": now,
            }
            for i in chunk
        }
        keys = list(new)
        months.ensure(session.connection(), {start for _, start in keys})
        before = _stored(session, meter_id, keys) if replace else stored_estimates(session, keys)
        session.connection().execute(
            _overwrite(session) if replace else upsert_readings(session), list(new.values())
        )
        changed: dict[tuple[str, datetime], Stored | None] = {
            k: v for k, v in before.items() if v.differs(new[k])
        }
        if changed:
            session.execute(insert(models.ReadingAudit), audit_rows(changed, new, source, now))
        audited += len(changed)
    if intervals:
        rollups.refresh(
            session, {meter_id: [i.start for i in intervals]}, {meter_id: zone_for(meter.lon)}
        )
    newest = max((i.start for i in intervals), default=None)
    if newest is not None and (
        meter.last_interval_start is None or meter.last_interval_start < newest
    ):
        meter.last_interval_start = newest
    log.info("imported %d intervals for %s from %s", len(intervals), meter_id, source)
    return ImportSummary(meter_id, len(intervals), audited)
