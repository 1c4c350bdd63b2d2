"""Backfill: write days of interval history for a whole fleet straight into the database.

Generation is the vectorised load model (a block of meters x intervals per call); writing
uses the fastest idempotent path per database: PostgreSQL COPY into a staging table then
`INSERT ... ON CONFLICT DO NOTHING`, SQLite `INSERT OR IGNORE` through executemany. The
readings' primary key (meter_id, start) makes a re-run, an overlap or two shards writing
the same meter harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import Engine, or_, update
from sqlalchemy.dialects import sqlite

from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_sessionmaker
from app.domain.localtime import zone_for
from app.ingest import rollups
from simulator.fleet import Meter
from simulator.incidents import Incident, effects_of
from simulator.model import FLAG_LISTS, Block, FleetArrays, interval_index, interval_start

log = logging.getLogger(__name__)

ROWS_PER_CHUNK: Final = 512
DAYS_PER_CHUNK: Final = 7
_FLAG_TEXT: Final = tuple(",".join(flags) for flags in FLAG_LISTS)
_COLUMNS: Final = (
    "meter_id",
    "start",
    "kwh",
    "kvarh",
    "demand_kw",
    "voltage_a",
    "voltage_b",
    "voltage_c",
    "flags",
    "quality",
    "received_at",
)

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A block of generated readings for some meters over some intervals."""

    meter_ids: Sequence[str]
    first: int
    block: Block


@dataclass(slots=True)
class BackfillStats:
    """What a backfill did."""

    intervals: int = 0
    written: int = 0
    generate_seconds: float = 0.0
    write_seconds: float = 0.0


def chunks(
    meters: Sequence[Meter],
    arrays: FleetArrays,
    first: int,
    count: int,
    *,
    rows_per_chunk: int = ROWS_PER_CHUNK,
    days_per_chunk: int = DAYS_PER_CHUNK,
) -> Iterator[Chunk]:
    """Yield the fleet's readings for intervals first .. first+count-1 in blocks."""
    step = days_per_chunk * 96
    for lo in range(0, len(meters), rows_per_chunk):
        rows = np.arange(lo, min(lo + rows_per_chunk, len(meters)), dtype=np.intp)
        ids = [meters[r].id for r in rows.tolist()]
        for t in range(first, first + count, step):
            n = min(step, first + count - t)
            yield Chunk(ids, t, arrays.block(t, n, rows))


def row_tuples(chunk: Chunk, received_at: datetime) -> list[tuple[Any, ...]]:
    """Return the chunk as database rows in _COLUMNS order."""
    block = chunk.block
    n_rows, n_t = block.kwh.shape
    starts = [interval_start(chunk.first + k) for k in range(n_t)]
    volts = block.voltage.reshape(-1, 3)
    return list(
        zip(
            [m for m in chunk.meter_ids for _ in range(n_t)],
            starts * n_rows,
            block.kwh.ravel().tolist(),
            block.kvarh.ravel().tolist(),
            block.demand_kw.ravel().tolist(),
            volts[:, 0].tolist(),
            volts[:, 1].tolist(),
            volts[:, 2].tolist(),
            [_FLAG_TEXT[f] for f in block.flags.ravel().tolist()],
            ["valid"] * (n_rows * n_t),
            [received_at] * (n_rows * n_t),
            strict=True,
        )
    )


class _Writer:
    """Idempotent bulk insert of reading rows for one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def write(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows, skipping any (meter_id, start) already stored; return rows inserted."""
        if self.postgres:
            return self._copy(rows)
        statement = sqlite.insert(models.Reading).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            result = conn.execute(statement, [dict(zip(_COLUMNS, r, strict=True)) for r in rows])
        return max(result.rowcount, 0)

    def _copy(self, rows: list[tuple[Any, ...]]) -> int:
        raw = self.engine.raw_connection()
        try:
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS backfill_stage "
                    "(LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                columns = ", ".join(_COLUMNS)
                with cur.copy(f"COPY backfill_stage ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO readings ({columns}) SELECT {columns} FROM backfill_stage "  # noqa: S608 - fixed names
                    "ON CONFLICT DO NOTHING"
                )
                inserted = int(cur.rowcount)
            raw.commit()
        finally:
            raw.close()
        return inserted


def backfill(
    engine: Engine,
    meters: Sequence[Meter],
    seed: int,
    start: datetime,
    days: float,
    incidents: Sequence[Incident] = (),
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> BackfillStats:
    """Write `days` of history from `start` for `meters` (seeding them first); idempotent."""
    first = interval_index(start)
    count = round(days * 96)
    received_at = now or datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, meters)
    writer = _Writer(engine)
    stats = BackfillStats()
    arrays = FleetArrays.build(meters, seed, effects_of(incidents))
    clock = time.perf_counter()
    for chunk in chunks(meters, arrays, first, count):
        generated = time.perf_counter()
        stats.generate_seconds += generated - clock
        rows = row_tuples(chunk, received_at)
        stats.written += writer.write(rows)
        stats.intervals += len(rows)
        clock = time.perf_counter()
        stats.write_seconds += clock - generated
        if progress is not None:
            progress(len(rows))
    if count:
        newest = interval_start(first + count - 1)
        ids = [m.id for m in meters]
        with engine.begin() as conn:
            for lo in range(0, len(ids), 500):
                conn.execute(
                    update(models.Meter)
                    .where(models.Meter.id.in_(ids[lo : lo + 500]))
                    .where(
                        or_(
                            models.Meter.last_interval_start.is_(None),
                            models.Meter.last_interval_start < newest,
                        )
                    )
                    .values(last_interval_start=newest)
                )
        _refresh_rollups(engine, meters, interval_start(first), newest)
    return stats


def _refresh_rollups(
    engine: Engine, meters: Sequence[Meter], first: datetime, last: datetime
) -> None:
    # The portal's fleet charts, meter summaries and exports read the hourly and daily
    # rollups the ingest keeps; history written around the ingest must update them too.
    hour = first.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= last:
        hours.append(hour)
        hour += timedelta(hours=1)
    zones = {m.id: zone_for(m.lon) for m in meters}
    for lo in range(0, len(meters), rollups.METERS_PER_QUERY):
        chunk = meters[lo : lo + rollups.METERS_PER_QUERY]
        with make_sessionmaker(engine).begin() as session:
            rollups.refresh(session, {m.id: hours for m in chunk}, zones)


def default_start(days: float, now: datetime) -> datetime:
    """Return the start of a backfill of `days` ending at the last complete interval before now."""
    end = interval_start(
        interval_index(now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 15))
    )
    return end - timedelta(days=days)
