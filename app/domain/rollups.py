"""Hourly and daily rollups of interval data: energy, peak demand and when, PF, quality counts.

Pure: the ingest recomputes the buckets a batch touched from their stored intervals, so a
rollup is always exactly the sum of its intervals, however often a reading is redelivered
or an estimate is replaced.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import reduce
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from app.domain import vee


class Rollup(NamedTuple):
    """One bucket of one meter's intervals."""

    # A NamedTuple, like telemetry.Reading: the ingest builds one per meter-hour at the
    # stream's rate, and a frozen dataclass took five times as long to build.

    start: datetime
    kwh: float
    kvarh: float
    peak_kw: float
    peak_at: datetime
    intervals: int
    valid: int
    estimated: int
    questionable: int
    edited: int

    @property
    def power_factor(self) -> float | None:
        """Return the average power factor (kWh over kVAh), None without energy."""
        return power_factor(self.kwh, self.kvarh)


def power_factor(kwh: float, kvarh: float) -> float | None:
    """Return the power factor of kWh and kVArh (kWh over kVAh, 4 places), None without energy."""
    kvah = math.hypot(kwh, kvarh)
    return round(kwh / kvah, 4) if kvah > 0 else None


def power_factors(
    kwh: npt.NDArray[np.float64], kvarh: npt.NDArray[np.float64]
) -> list[float | None]:
    """Return `power_factor` of each pair of columns, bit for bit, a column at a time."""
    # round(kwh / hypot, 4) as k / 10⁴: the same double Python's round() returns whenever
    # the scaled ratio is clearly on one side of a half (numpy's hypot and product can
    # differ from Python's in the last bit); the rare ratio within 1e-6 of a half, and a
    # bucket without energy, go to Python.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = kwh / np.hypot(kwh, kvarh) * 10_000.0
    whole = np.rint(scaled)
    doubtful = ~np.isfinite(scaled) | (np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6)
    out: list[float | None] = (whole / 10_000.0).tolist()
    for i in np.flatnonzero(doubtful).tolist():
        out[i] = power_factor(float(kwh[i]), float(kvarh[i]))
    return out


def hour_start(start: datetime) -> datetime:
    """Return the UTC hour an interval belongs to."""
    return start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(start: datetime, tz: tzinfo) -> datetime:
    """Return the UTC instant of the local midnight that begins an interval's local day."""
    local = start.astimezone(tz)
    return datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)


def day_span(day: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """Return [start, end) in UTC of the local day beginning at `day` (23 to 25 hours)."""
    local = day.astimezone(tz)
    following = local.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    return day, end


class Accumulator:
    """Running sums of one bucket; add intervals in any order, then take `result`."""

    __slots__ = ("counts", "kvarh", "kwh", "n", "peak_at", "peak_kw")

    def __init__(self) -> None:
        """Start empty."""
        self.kwh = 0.0
        self.kvarh = 0.0
        self.peak_kw = -math.inf
        self.peak_at: datetime | None = None
        self.n = 0
        self.counts: dict[str, int] = dict.fromkeys(vee.QUALITIES, 0)

    def add(self, start: datetime, kwh: float, kvarh: float, kw: float, quality: str) -> None:
        """Add one interval (an unknown quality counts as questionable)."""
        self.kwh += kwh
        self.kvarh += kvarh
        self.n += 1
        # The earliest of equal peaks, whatever the order intervals arrive in.
        if kw > self.peak_kw or (kw == self.peak_kw and self.peak_at and start < self.peak_at):
            self.peak_kw, self.peak_at = kw, start
        key = quality if quality in self.counts else vee.QUESTIONABLE
        self.counts[key] += 1

    def result(self, bucket: datetime) -> Rollup | None:
        """Return the bucket's rollup, None if nothing was added."""
        if self.peak_at is None:
            return None
        c = self.counts
        return Rollup(
            start=bucket,
            kwh=self.kwh,
            kvarh=self.kvarh,
            peak_kw=self.peak_kw,
            peak_at=self.peak_at,
            intervals=self.n,
            valid=c[vee.VALID],
            estimated=c[vee.ESTIMATED_LINEAR] + c[vee.ESTIMATED_REFERENCE_DAY],
            questionable=c[vee.QUESTIONABLE],
            edited=c[vee.EDITED],
        )


def aggregate(intervals: Iterable[vee.Interval], bucket: datetime) -> Rollup | None:
    """Roll up the intervals of one bucket (None if there are none)."""
    acc = Accumulator()
    for i in intervals:
        acc.add(i.start, i.kwh, i.kvarh, i.demand_kw, i.quality)
    return acc.result(bucket)


_new_rollup = tuple.__new__


def combine(parts: Iterable[Rollup], bucket: datetime) -> Rollup | None:
    """Roll up smaller buckets (hours into a day, or old and new parts of one bucket)."""
    columns = list(zip(*parts, strict=True))
    if not columns:
        return None
    _, kwh, kvarh, peak_kw, peak_at, *counts = columns
    peak = max(peak_kw)
    at = min([t for kw, t in zip(peak_kw, peak_at, strict=True) if kw == peak])
    return _new_rollup(
        Rollup, (bucket, _sum(kwh), _sum(kvarh), peak, at, *(sum(c) for c in counts))
    )


def _sum(values: Iterable[float]) -> float:
    # Left to right from 0.0, in C, on every Python: sum() compensates from 3.12 on, and the
    # fast path's sums must equal the recomputed ones (Accumulator's `+=`) bit for bit.
    return reduce(operator.add, values, 0.0)


def by_hour(
    intervals: Iterable[tuple[str, datetime, float, float, float, str]],
) -> list[tuple[str, Rollup]]:
    """Roll up (meter, start, kWh, kVArh, kW, quality) intervals into (meter, hourly rollup).

    The same sums, peak rule and quality counts as Accumulator, written out inline: the
    ingest calls it for every reading it stores.
    """
    hour_of: dict[datetime, datetime] = {}
    sums: dict[tuple[str, datetime], list[Any]] = {}
    slot: dict[str, int] = {
        vee.VALID: 5,
        vee.ESTIMATED_LINEAR: 6,
        vee.ESTIMATED_REFERENCE_DAY: 6,
        vee.EDITED: 8,
    }
    last_meter: str | None = None
    last_hour: datetime | None = None
    acc: list[Any] = []
    for meter_id, start, kwh, kvarh, kw, quality in intervals:
        hour = hour_of.get(start)
        if hour is None:
            hour = hour_of[start] = hour_start(start)
        # A message's readings arrive in order: most follow one of the same meter and hour.
        if hour != last_hour or meter_id != last_meter:
            last_meter, last_hour = meter_id, hour
            found = sums.get((meter_id, hour))
            if found is None:
                # kWh, kVArh, peak kW, peak at, intervals, valid, estimated, questionable, edited
                found = sums[(meter_id, hour)] = [0.0, 0.0, kw, start, 0, 0, 0, 0, 0]
            acc = found
        acc[0] += kwh
        acc[1] += kvarh
        if kw > acc[2] or (kw == acc[2] and start < acc[3]):
            acc[2], acc[3] = kw, start
        acc[4] += 1
        acc[slot.get(quality, 7)] += 1
    return [(meter_id, Rollup(hour, *acc)) for (meter_id, hour), acc in sums.items()]


_HOUR = timedelta(hours=1)


def valid_hours(
    meter_id: str,
    starts: Sequence[datetime],
    kwh: Sequence[float],
    kvarh: Sequence[float],
    demand_kw: Sequence[float],
) -> list[tuple[str, Rollup]] | None:
    """Roll up one meter's valid intervals, given as columns, into (meter, hourly rollup).

    For UTC starts 15 minutes apart in time order (a message as the decoder returns it);
    None for anything else: a gap, a start twice, out of order, another zone (the caller
    then uses by_hour). It slices whole hours and lets C add them: the same sums in the
    same order, peak rule and counts as by_hour, which costs a Python step per interval.
    """
    n = len(starts)
    if not n:
        return []
    first = starts[0]
    if first.tzinfo is not UTC or (
        n > 1
        and (
            starts[-1] - first != (n - 1) * vee.STEP
            or not all(map(operator.lt, starts, starts[1:]))
        )
    ):
        # Strictly increasing and n-1 steps from first to last: every step is one interval.
        return None
    hour = hour_start(first)
    out = []
    a, b = 0, min(n, 4 - (first - hour) // vee.STEP)
    while a < n:
        d = demand_kw[a:b]
        peak = max(d)  # and the earliest of equal peaks: the first in time order
        k = b - a
        rollup = (hour, _sum(kwh[a:b]), _sum(kvarh[a:b]), peak, starts[a + d.index(peak)], k, k)
        out.append((meter_id, _new_rollup(Rollup, (*rollup, 0, 0, 0))))
        a, b, hour = b, min(n, b + 4), hour + _HOUR
    return out
