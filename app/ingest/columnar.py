"""A batch of plain interval messages as numpy columns: its COPY data and its rollups.

The ingest's usual batch is thousands of messages of valid three-phase readings, each
gap-free and in time order; a meter's messages that continue one another form one run.
For such a batch
the readings' COPY data, the hourly rollups and their COPY data, and the daily parts are
computed a column at a time for the whole batch instead of a Python step per reading or
per hour. The sums are
the same additions in the same order as `rollups.by_hour` and `rollups.combine`, so the
results equal a recomputation from the stored rows bit for bit (unit tests hold them to it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from itertools import chain
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from app.domain import rollups, telemetry, vee
from app.ingest.pgcopy import PG_EPOCH, Field, pg_micros, records

STEP_US: Final = telemetry.INTERVAL_SECONDS * 1_000_000
HOUR_US: Final = 3_600_000_000
_SLOTS: Final = HOUR_US // STEP_US  # intervals in an hour

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def plain(columns: telemetry.Columns) -> bool:
    """Return True if a message's readings (as columns) suit this path.

    Valid three-phase readings without flags, UTC starts one interval apart in time order:
    the message's rows are then its first start and its value columns.
    """
    starts = columns.starts
    n = len(starts)
    first = starts[0]
    return (
        not any(columns.flags)
        and None not in columns.voltage_b
        and None not in columns.voltage_c
        and first.tzinfo is UTC
        # Strictly increasing and n-1 steps from first to last: every step is one interval.
        and (n == 1 or starts[-1] - first == (n - 1) * vee.STEP)
        and all(map(operator.lt, starts, starts[1:]))
    )


class Builder:
    """Collects plain messages of one batch; `block()` turns them into columns.

    A meter's messages that continue one another (each starting one interval after the
    last one ended) become one run of rows: a stream of one reading a message brings
    several messages a meter to every batch, and the rollups need one run per meter.
    """

    def __init__(self) -> None:
        """Start empty."""
        self.meters: list[str] = []
        self.counts: list[int] = []
        self.first: list[int] = []
        self._index: dict[str, int] = {}
        # Per meter's run: its messages' value columns, sizes and times received.
        self._values: list[list[tuple[Any, ...]]] = []
        self._sizes: list[list[int]] = []
        self._received: list[list[int]] = []

    def add(self, meter_id: str, columns: telemetry.Columns, received_at: datetime) -> bool:
        """Add one message that `plain` accepted; False if it does not continue its meter's run.

        The caller stores a message refused here (and the meter's later ones) another way.
        """
        n = len(columns.starts)
        first = pg_micros(columns.starts[0])
        at = self._index.get(meter_id)
        if at is None:
            self._index[meter_id] = len(self.meters)
            self.meters.append(meter_id)
            self.counts.append(n)
            self.first.append(first)
            self._values.append([columns[1:7]])
            self._sizes.append([n])
            self._received.append([pg_micros(received_at)])
            return True
        if first != self.first[at] + self.counts[at] * STEP_US:
            return False
        self.counts[at] += n
        self._values[at].append(columns[1:7])
        self._sizes[at].append(n)
        self._received[at].append(pg_micros(received_at))
        return True

    def holds(self, meter_id: str, start: datetime) -> bool:
        """Return True if `meter_id`'s run has a row at `start` (an interval start)."""
        at = self._index.get(meter_id)
        if at is None:
            return False
        us = pg_micros(start)
        return self.first[at] <= us < self.first[at] + self.counts[at] * STEP_US

    def __len__(self) -> int:
        """Return the number of runs (meters) added."""
        return len(self.meters)

    def block(self) -> Block:
        """Return the runs' readings as one set of columns."""
        n = sum(self.counts)
        kwh, kvarh, demand_kw, a, b, c = (
            np.fromiter(chain.from_iterable(column), np.float64, n)
            for column in zip(*chain.from_iterable(self._values), strict=True)
        )
        return Block(
            meters=self.meters,
            counts=np.array(self.counts, dtype=np.int64),
            first=np.array(self.first, dtype=np.int64),
            received=np.repeat(
                np.fromiter(chain.from_iterable(self._received), np.int64),
                np.fromiter(chain.from_iterable(self._sizes), np.int64),
            ),
            kwh=kwh,
            kvarh=kvarh,
            demand_kw=demand_kw,
            volts=np.stack((a, b, c), axis=1),
        )


@dataclass
class Block:
    """Readings of plain messages as columns; `counts[i]` rows from run (meter) `i`.

    `received` is per row: the time its own message was received.
    """

    meters: list[str]
    counts: Ints
    first: Ints
    received: Ints
    kwh: Floats
    kvarh: Floats
    demand_kw: Floats
    volts: Floats

    @cached_property
    def message(self) -> Ints:
        """Return each row's run (meter) index."""
        return np.repeat(np.arange(len(self.meters), dtype=np.int64), self.counts)

    @cached_property
    def position(self) -> Ints:
        """Return each row's index within its run."""
        offsets = np.cumsum(self.counts) - self.counts
        return np.arange(len(self.kwh), dtype=np.int64) - np.repeat(offsets, self.counts)

    @cached_property
    def starts(self) -> Ints:
        """Return each row's interval start in PostgreSQL microseconds."""
        return np.repeat(self.first, self.counts) + self.position * STEP_US

    def start_times(self) -> set[datetime]:
        """Return every distinct interval start (for the monthly partitions)."""
        return {PG_EPOCH + timedelta(microseconds=int(us)) for us in np.unique(self.starts)}

    def reading_copy(self) -> bytes:
        """Return the rows as binary COPY tuples in `store.READING_COLUMNS` order."""
        starts = self.starts
        received = self.received
        message = self.message
        parts = []
        for rows, ids in _by_id_length(self.meters, message):
            parts.append(
                records(
                    [
                        Field("varchar", ids),
                        Field("timestamptz", starts[rows]),
                        Field("float8", self.kwh[rows]),
                        Field("float8", self.kvarh[rows]),
                        Field("float8", self.demand_kw[rows]),
                        Field("float8", self.volts[rows, 0]),
                        Field("float8", self.volts[rows, 1]),
                        Field("float8", self.volts[rows, 2]),
                        Field("varchar", b""),
                        Field("varchar", vee.VALID.encode()),
                        Field("timestamptz", received[rows]),
                    ],
                    len(ids),
                )
            )
        return b"".join(parts)

    def hours(self) -> Hours:
        """Return the rows' hourly rollups, as `rollups.valid_hours` gives them per message."""
        # Python adds past 1.8e308 to inf without a word; numpy would warn (kVArh is bounded
        # only by the largest float), and a warning must not fail a batch.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._hours()

    def _hours(self) -> Hours:
        starts, position, message = self.starts, self.position, self.message
        slot = (starts // STEP_US) % _SLOTS
        # A new hour at every hour boundary and at every run's first row.
        opens = (slot == 0) | (position == 0)
        group = np.cumsum(opens) - 1
        heads = np.flatnonzero(opens)
        count = len(heads)
        energy = np.zeros((2, count, _SLOTS))
        energy[0, group, slot] = self.kwh
        energy[1, group, slot] = self.kvarh
        # Left to right from 0.0, an empty slot adding 0.0: the same bits as reduce(add, ...,
        # 0.0) over the hour's intervals (a sum from 0.0 is never -0.0, so + 0.0 keeps it).
        kwh, kvarh = np.zeros(count), np.zeros(count)
        for s in range(_SLOTS):
            kwh = kwh + energy[0, :, s]
            kvarh = kvarh + energy[1, :, s]
        demand = np.full((count, _SLOTS), -np.inf)
        demand[group, slot] = self.demand_kw
        # argmax takes the first of equal maxima: the earliest peak, as by_hour does.
        peak_slot = np.argmax(demand, axis=1)
        hour = starts[heads] - slot[heads] * STEP_US
        return Hours(
            meters=self.meters,
            message=message[heads],
            start=hour,
            kwh=kwh,
            kvarh=kvarh,
            peak_kw=demand[np.arange(count), peak_slot],
            peak_at=hour + peak_slot * STEP_US,
            intervals=np.bincount(group, minlength=count).astype(np.int64),
        )


@dataclass
class Hours:
    """Hourly rollups of a block's valid readings, as columns; `message` (run) indexes `meters`."""

    meters: list[str]
    message: Ints
    start: Ints
    kwh: Floats
    kvarh: Floats
    peak_kw: Floats
    peak_at: Ints
    intervals: Ints

    def power_factors(self) -> list[float | None]:
        """Return each hour's power factor, as `rollups.power_factor` computes it."""
        return rollups.power_factors(self.kwh, self.kvarh)

    @property
    def complete(self) -> bool:
        """Return True if every hour has all its intervals (so none can be stored yet)."""
        return bool((self.intervals == _SLOTS).all())

    def copy(self, factors: Sequence[float | None]) -> bytes | None:
        """Return the hours as `readings_hourly` COPY tuples; None if a power factor is NULL."""
        if any(f is None for f in factors):
            return None
        pf = np.array(factors, dtype=np.float64)
        zero = np.int32(0)
        parts = []
        for rows, ids in _by_id_length(self.meters, self.message):
            parts.append(
                records(
                    [
                        Field("varchar", ids),
                        Field("timestamptz", self.start[rows]),
                        Field("float8", self.kwh[rows]),
                        Field("float8", self.kvarh[rows]),
                        Field("float8", self.peak_kw[rows]),
                        Field("timestamptz", self.peak_at[rows]),
                        Field("float8", pf[rows]),
                        Field("int4", self.intervals[rows]),
                        Field("int4", self.intervals[rows]),  # all valid
                        Field("int4", zero),
                        Field("int4", zero),
                        Field("int4", zero),
                    ],
                    len(ids),
                )
            )
        return b"".join(parts)

    def pairs(self) -> list[tuple[str, rollups.Rollup]]:
        """Return the hours as (meter, Rollup) pairs (the general path's form)."""
        out = []
        times = _times()
        for m, start, kwh, kvarh, peak, at, n in zip(
            self.message.tolist(),
            self.start.tolist(),
            self.kwh.tolist(),
            self.kvarh.tolist(),
            self.peak_kw.tolist(),
            self.peak_at.tolist(),
            self.intervals.tolist(),
            strict=True,
        ):
            out.append(
                (
                    self.meters[m],
                    rollups.Rollup(times(start), kwh, kvarh, peak, times(at), n, n, 0, 0, 0),
                )
            )
        return out

    def days(self, zones: Mapping[str, tzinfo]) -> list[tuple[str, rollups.Rollup]]:
        """Return the parts of local days these hours add, as `rollups.combine` makes them."""
        with np.errstate(over="ignore", invalid="ignore"):  # as in Block.hours
            return self._days(zones)

    def _days(self, zones: Mapping[str, tzinfo]) -> list[tuple[str, rollups.Rollup]]:
        count = len(self.start)
        if not count:
            return []
        times = _times()
        day_of: dict[tuple[tzinfo, int], int] = {}
        message = self.message.tolist()
        day = []
        for m, start in zip(message, self.start.tolist(), strict=True):
            tz = zones.get(self.meters[m], UTC)
            found = day_of.get((tz, start))
            if found is None:
                found = day_of[(tz, start)] = pg_micros(rollups.day_start(times(start), tz))
            day.append(found)
        days = np.array(day, dtype=np.int64)
        # A new day part where the meter or the local day changes (hours are in time order).
        opens = np.ones(count, dtype=bool)
        opens[1:] = (days[1:] != days[:-1]) | (self.message[1:] != self.message[:-1])
        part = np.cumsum(opens) - 1
        heads = np.flatnonzero(opens)
        width = int(np.bincount(part).max())
        column = np.arange(count) - heads[part]
        energy = np.zeros((2, len(heads), width))
        energy[0, part, column] = self.kwh
        energy[1, part, column] = self.kvarh
        kwh, kvarh = np.zeros(len(heads)), np.zeros(len(heads))
        for c in range(width):  # left to right from 0.0, as rollups.combine adds
            kwh = kwh + energy[0, :, c]
            kvarh = kvarh + energy[1, :, c]
        peak = np.full((len(heads), width), -np.inf)
        peak[part, column] = self.peak_kw
        first_peak = np.argmax(peak, axis=1)
        peak_at = self.peak_at[heads + first_peak]
        intervals = np.bincount(part, weights=self.intervals).astype(np.int64)
        out = []
        for h, d, k, q, p, at, n in zip(
            heads.tolist(),
            days[heads].tolist(),
            kwh.tolist(),
            kvarh.tolist(),
            peak[np.arange(len(heads)), first_peak].tolist(),
            peak_at.tolist(),
            intervals.tolist(),
            strict=True,
        ):
            out.append(
                (
                    self.meters[message[h]],
                    rollups.Rollup(times(d), k, q, p, times(at), n, n, 0, 0, 0),
                )
            )
        return out


def _times() -> Callable[[int], datetime]:
    cache: dict[int, datetime] = {}

    def time(us: int) -> datetime:
        found = cache.get(us)
        if found is None:
            found = cache[us] = PG_EPOCH + timedelta(microseconds=us)
        return found

    return time


def _by_id_length(
    meters: Sequence[str], message: Ints
) -> list[tuple[Ints | slice, npt.NDArray[np.bytes_]]]:
    """Split rows (by their message index) into groups whose meter ids have one length."""
    lengths = np.array([len(m) for m in meters], dtype=np.int64)
    ids = np.array([m.encode() for m in meters])
    row_lengths = lengths[message]
    groups: list[tuple[Ints | slice, npt.NDArray[np.bytes_]]] = []
    distinct = np.unique(lengths)
    for length in distinct.tolist():
        rows: Ints | slice = (
            slice(None) if len(distinct) == 1 else np.flatnonzero(row_lengths == length)
        )
        groups.append((rows, ids.astype(f"S{length}")[message[rows]]))
    return groups
