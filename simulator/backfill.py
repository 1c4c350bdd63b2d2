"""Backfill: write days of interval history for a whole fleet straight into the database.

Generation is the vectorised load model (a block of meters x intervals per call); writing
uses the fastest idempotent path per database: PostgreSQL binary COPY of the arrays into a
staging table then `INSERT ... ON CONFLICT DO NOTHING`, SQLite `INSERT OR IGNORE` through
executemany. The readings' primary key (meter_id, start) makes a re-run, an overlap or two
shards writing the same meter harmless. Hourly and daily rollups come from the same arrays
(see `simulator.rollup_arrays`), upserted the same way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, Table, or_, select, update
from sqlalchemy.dialects import sqlite

from app.db import models, partitions
from app.db.seed import seed_fleet
from app.db.session import make_sessionmaker
from app.domain.localtime import zone_for
from app.ingest import pgcopy, rollups
from app.ingest.store import READING_COLUMNS
from simulator import rollup_arrays
from simulator.fleet import Meter
from simulator.incidents import Incident, effects_of
from simulator.model import (
    EPOCH,
    FLAG_LISTS,
    Block,
    FleetArrays,
    interval_index,
    interval_start,
)

log = logging.getLogger(__name__)

ROWS_PER_CHUNK: Final = 512
DAYS_PER_CHUNK: Final = 7
_FLAG_TEXT: Final = tuple(",".join(flags) for flags in FLAG_LISTS)

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
    rollup_seconds: float = 0.0


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
    for lo in range(0, len(meters), rows_per_chunk):
        rows = np.arange(lo, min(lo + rows_per_chunk, len(meters)), dtype=np.intp)
        ids = [meters[r].id for r in rows.tolist()]
        for t, n in _spans(first, count, days_per_chunk * 96):
            yield Chunk(ids, t, arrays.block(t, n, rows))


def row_tuples(chunk: Chunk, received_at: datetime) -> list[tuple[Any, ...]]:
    """Return the chunk as database rows in READING_COLUMNS order."""
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
            [None if v != v else v for v in volts[:, 2].tolist()],  # NaN: no phase C
            [_FLAG_TEXT[f] for f in block.flags.ravel().tolist()],
            ["valid"] * (n_rows * n_t),
            [received_at] * (n_rows * n_t),
            strict=True,
        )
    )


_EPOCH_SQL: Final = "timestamptz '1970-01-01 00:00:00+00'"
_HOURLY: Final[Table] = models.HourlyRollup.__table__  # type: ignore[assignment]
_DAILY: Final[Table] = models.DailyRollup.__table__  # type: ignore[assignment]


def _pg_binary(columns: Sequence[tuple[str, NDArray[Any]]]) -> bytes:
    """Encode equal-length arrays of (PostgreSQL type, values) as a binary COPY stream."""
    fields = [pgcopy.Field(kind, values) for kind, values in columns]
    return pgcopy.SIGNATURE + pgcopy.records(fields, len(columns[0][1])) + pgcopy.TRAILER


class _Writer:
    """Idempotent bulk writes of readings and rollup buckets for one database."""

    def __init__(self, engine: Engine, received_at: datetime) -> None:
        self.engine = engine
        self.received_at = received_at
        self.postgres = engine.dialect.name == "postgresql"
        self.months = partitions.Months()

    def readings(self, chunk: Chunk) -> int:
        """Insert a chunk, skipping any (meter_id, start) already stored; return rows inserted."""
        if self.postgres:
            # The months' partitions (partitioned layout) exist before their rows go in.
            n_t = chunk.block.kwh.shape[1]
            starts = [interval_start(chunk.first + k) for k in range(0, n_t, 96)]
            with self.engine.begin() as conn:
                self.months.ensure(conn, [*starts, interval_start(chunk.first + n_t - 1)])
            return self._copy_readings(chunk)
        rows = row_tuples(chunk, self.received_at)
        statement = sqlite.insert(models.Reading).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            result = conn.execute(
                statement, [dict(zip(READING_COLUMNS, r, strict=True)) for r in rows]
            )
        return max(result.rowcount, 0)

    def _copy_readings(self, chunk: Chunk) -> int:
        # Fixed-width numbers in binary COPY, names and times expanded by PostgreSQL: no
        # Python object per row, which would cost more than the database's own work.
        block = chunk.block
        n_rows, n_t = block.kwh.shape
        volts = block.voltage.reshape(-1, 3)
        data = _pg_binary(
            [
                ("int4", np.repeat(np.arange(n_rows), n_t)),
                ("int4", np.tile(np.arange(chunk.first, chunk.first + n_t), n_rows)),
                ("float8", block.kwh.ravel()),
                ("float8", block.kvarh.ravel()),
                ("float8", block.demand_kw.ravel()),
                ("float8", volts[:, 0]),
                ("float8", volts[:, 1]),
                ("float8", volts[:, 2]),
                ("int2", block.flags.ravel()),
            ]
        )
        return self._pg(
            "CREATE TEMP TABLE IF NOT EXISTS backfill_readings (meter int4, t int4, "
            "kwh float8, kvarh float8, demand_kw float8, voltage_a float8, voltage_b float8, "
            "voltage_c float8, flags int2) ON COMMIT DELETE ROWS",
            "backfill_readings",
            data,
            f"INSERT INTO readings ({', '.join(READING_COLUMNS)}) "  # noqa: S608 - fixed names
            "SELECT (%(ids)s::text[])[s.meter + 1], "
            f"{_EPOCH_SQL} + s.t * interval '15 minutes', s.kwh, s.kvarh, s.demand_kw, "
            # NaN is a two-element meter's missing phase C: NULL, as the ingest stores it.
            "s.voltage_a, s.voltage_b, NULLIF(s.voltage_c, 'NaN'), "
            "(%(flags)s::text[])[s.flags + 1], "
            "'valid', %(received)s FROM backfill_readings s ON CONFLICT DO NOTHING",
            {"ids": list(chunk.meter_ids), "flags": list(_FLAG_TEXT), "received": self.received_at},
        )

    def rollups(self, table: Table, meter_ids: Sequence[str], b: rollup_arrays.Buckets) -> None:
        """Insert or replace rollup buckets computed from the arrays."""
        if not len(b):
            return
        pf = b.power_factor()
        if not self.postgres:
            rows = [
                {
                    "meter_id": meter_ids[r],
                    "start": EPOCH + timedelta(seconds=s),
                    "kwh": kwh,
                    "kvarh": kvarh,
                    "peak_kw": peak,
                    "peak_at": interval_start(at),
                    "power_factor": f,
                    "intervals": n,
                    "valid": n,
                    "estimated": 0,
                    "questionable": 0,
                    "edited": 0,
                }
                for r, s, kwh, kvarh, peak, at, f, n in zip(
                    b.rows.tolist(),
                    b.start.tolist(),
                    b.kwh.tolist(),
                    b.kvarh.tolist(),
                    b.peak_kw.tolist(),
                    b.peak_at.tolist(),
                    pf,
                    b.intervals.tolist(),
                    strict=True,
                )
            ]
            with self.engine.begin() as conn:
                conn.execute(rollups.upsert_statement("sqlite", table), rows)
            return
        data = _pg_binary(
            [
                ("int4", b.rows),
                ("int8", b.start),
                ("float8", b.kwh),
                ("float8", b.kvarh),
                ("float8", b.peak_kw),
                ("int8", b.peak_at),
                ("float8", np.array([math.nan if f is None else f for f in pf])),
                ("int4", b.intervals),
            ]
        )
        keep = ("meter_id", "start")
        updates = ", ".join(
            f"{c.name} = EXCLUDED.{c.name}" for c in table.columns if c.name not in keep
        )
        self._pg(
            "CREATE TEMP TABLE IF NOT EXISTS backfill_rollups (meter int4, start int8, "
            "kwh float8, kvarh float8, peak_kw float8, peak_at int8, pf float8, n int4) "
            "ON COMMIT DELETE ROWS",
            "backfill_rollups",
            data,
            f"INSERT INTO {table.name} (meter_id, start, kwh, kvarh, peak_kw, peak_at, "  # noqa: S608 - fixed names
            "power_factor, intervals, valid, estimated, questionable, edited) "
            "SELECT (%(ids)s::text[])[s.meter + 1], "
            f"{_EPOCH_SQL} + s.start * interval '1 second', s.kwh, s.kvarh, s.peak_kw, "
            f"{_EPOCH_SQL} + s.peak_at * interval '15 minutes', NULLIF(s.pf, 'NaN'), "
            "s.n, s.n, 0, 0, 0 FROM backfill_rollups s "
            f"ON CONFLICT (meter_id, start) DO UPDATE SET {updates}",
            {"ids": list(meter_ids)},
        )

    def _pg(self, create: str, stage: str, data: bytes, insert: str, params: dict[str, Any]) -> int:
        raw = self.engine.raw_connection()
        try:
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                # A lost commit is redone by re-running the backfill: no need to wait for fsync.
                cur.execute("SET LOCAL synchronous_commit = off")
                cur.execute(create)
                with cur.copy(f"COPY {stage} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
                cur.execute(insert, params)
                count = int(cur.rowcount)
            raw.commit()
        finally:
            raw.close()
        return count


def _differing(engine: Engine, chunk: Chunk) -> Iterator[tuple[int, int]]:
    """Yield (row, interval) of stored readings whose rolled-up values differ from the chunk."""
    block = chunk.block
    n_t = block.kwh.shape[1]
    at = {m: r for r, m in enumerate(chunk.meter_ids)}
    r_ = models.Reading
    with engine.connect() as conn:
        stored = conn.execute(
            select(r_.meter_id, r_.start, r_.kwh, r_.kvarh, r_.demand_kw, r_.quality).where(
                r_.meter_id.in_(chunk.meter_ids),
                r_.start >= interval_start(chunk.first),
                r_.start < interval_start(chunk.first + n_t),
            )
        )
        for meter_id, start, kwh, kvarh, kw, quality in stored:
            r, k = at[meter_id], interval_index(start) - chunk.first
            model = (block.kwh[r, k], block.kvarh[r, k], block.demand_kw[r, k])
            if quality != "valid" or (kwh, kvarh, kw) != model:
                yield r, chunk.first + k


def _spans(first: int, count: int, step: int) -> Iterator[tuple[int, int]]:
    # Split on multiples of `step` (whole hours), so only the range's own ends cut an hour.
    t, end = first, first + count
    while t < end:
        stop = min((t // step + 1) * step, end)
        yield t, stop - t
        t = stop


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
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> BackfillStats:
    """Write `days` of history from `start` for `meters` (seeding them first); idempotent.

    The hourly and daily rollups are computed from the generated arrays and upserted; the
    few buckets the arrays cannot vouch for (cut by the range's ends, or holding readings
    stored earlier with other values) are recomputed from the database by the ingest's
    own `refresh`, so the rollups equal what re-reading every interval would give.
    """
    first = interval_index(start)
    count = round(days * 96)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, meters)
    writer = _Writer(engine, now or datetime.now(UTC))
    stats = BackfillStats()
    arrays = FleetArrays.build(meters, seed, effects_of(incidents))
    zones = [zone_for(m.lon) for m in meters]
    step = DAYS_PER_CHUNK * 96
    # A group's rollups are written on a second connection while the next group's readings
    # go in (disjoint meters, so the two never touch the same rows); at most two groups'
    # hour grids are alive at once.
    pending: Future[float] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-rollups") as rollup:
        for lo in range(0, len(meters) if count else 0, rows_per_chunk):
            rows = np.arange(lo, min(lo + rows_per_chunk, len(meters)), dtype=np.intp)
            ids = [meters[r].id for r in rows.tolist()]
            grid = rollup_arrays.HourGrid(len(rows), first, count)
            for t, n in _spans(first, count, step):
                clock = time.perf_counter()
                chunk = Chunk(ids, t, arrays.block(t, n, rows))
                generated = time.perf_counter()
                stats.generate_seconds += generated - clock
                inserted = writer.readings(chunk)
                size = chunk.block.kwh.size
                grid.add(t, chunk.block.kwh, chunk.block.kvarh, chunk.block.demand_kw)
                if inserted < size:
                    for r, interval in _differing(engine, chunk):
                        grid.spoil(r, interval)
                stats.written += inserted
                stats.intervals += size
                stats.write_seconds += time.perf_counter() - generated
                if progress is not None:
                    progress(size)
            if pending is not None:
                stats.rollup_seconds += pending.result()
            group_zones = dict(zip(ids, zones[lo : lo + len(rows)], strict=True))
            pending = rollup.submit(_write_rollups, writer, ids, grid, group_zones)
        if pending is not None:
            stats.rollup_seconds += pending.result()
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
    return stats


def _write_rollups(
    writer: _Writer, ids: Sequence[str], grid: rollup_arrays.HourGrid, zones: Mapping[str, tzinfo]
) -> float:
    # Hourly rows first: the refreshed days are summed from them.
    clock = time.perf_counter()
    writer.rollups(_HOURLY, ids, grid.hourly())
    daily, left = grid.days([zones[m] for m in ids])
    writer.rollups(_DAILY, ids, daily)
    _refresh(writer.engine, ids, grid, left, zones)
    return time.perf_counter() - clock


def _refresh(
    engine: Engine,
    ids: Sequence[str],
    grid: rollup_arrays.HourGrid,
    left: dict[int, set[int]],
    zones: Mapping[str, tzinfo],
) -> None:
    # The buckets the arrays could not vouch for, from the stored intervals; batched by
    # UTC day because refresh reads every interval between a batch's first and last hour.
    batches: dict[int, dict[str, list[datetime]]] = {}
    for r, cols in left.items():
        for c in cols:
            hour = rollup_arrays.hour_at(grid.first_hour + c)
            batches.setdefault((grid.first_hour + c) // 24, {}).setdefault(ids[r], []).append(hour)
    for _, touched in sorted(batches.items()):
        with make_sessionmaker(engine).begin() as session:
            rollups.refresh(session, touched, zones)


def default_start(days: float, now: datetime) -> datetime:
    """Return the start of a backfill of `days` ending at the last complete interval before now."""
    end = interval_start(
        interval_index(now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 15))
    )
    return end - timedelta(days=days)
