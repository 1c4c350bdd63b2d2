"""Hourly and daily rollups computed from the backfill's generated arrays (pure numpy).

The backfill has every interval of a group of meters in memory, so re-reading 86 million
rows to roll them up would waste most of its time. The sums here are taken in the same
order as `app.ingest.rollups.refresh` takes them (interval by interval, hour by hour,
left to right), so the floats come out bit-for-bit equal; buckets the arrays cannot vouch
for (partial hours at the edges, days that reach outside the range, rows already stored
with other values) are marked incomplete and left to `refresh`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
from numpy.typing import NDArray

from app.domain.rollups import day_span, day_start, power_factors

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INTERVALS_PER_HOUR = 4


def hour_at(index: int) -> datetime:
    """Return the UTC start of hour `index` (hours since the Unix epoch)."""
    return EPOCH + timedelta(hours=index)


@dataclass(slots=True)
class Buckets:
    """Rollup buckets of some meters as arrays, rows x buckets (starts in epoch seconds)."""

    rows: NDArray[np.intp]
    start: NDArray[np.int64]
    kwh: NDArray[np.float64]
    kvarh: NDArray[np.float64]
    peak_kw: NDArray[np.float64]
    peak_at: NDArray[np.int64]  # interval index
    intervals: NDArray[np.int64]

    def power_factor(self) -> list[float | None]:
        """Return each bucket's PF exactly as `Rollup.power_factor` computes it (None without energy)."""
        return power_factors(self.kwh, self.kvarh)

    def __len__(self) -> int:
        """Return the number of buckets."""
        return len(self.rows)


class HourGrid:
    """The UTC hours overlapping intervals first .. first+count-1 for a group of meters."""

    def __init__(self, n_rows: int, first: int, count: int) -> None:
        """Allocate empty hours; every hour starts incomplete."""
        self.first_interval = first
        self.end_interval = first + count
        self.first_hour = first // INTERVALS_PER_HOUR
        end_hour = -(-self.end_interval // INTERVALS_PER_HOUR)
        shape = (n_rows, end_hour - self.first_hour)
        self.kwh = np.zeros(shape)
        self.kvarh = np.zeros(shape)
        self.peak_kw = np.zeros(shape)
        self.peak_at = np.zeros(shape, dtype=np.int64)
        self.complete = np.zeros(shape, dtype=bool)

    @property
    def hours(self) -> int:
        """Return the number of hour columns."""
        return int(self.kwh.shape[1])

    def add(
        self,
        first: int,
        kwh: NDArray[np.float64],
        kvarh: NDArray[np.float64],
        demand_kw: NDArray[np.float64],
    ) -> None:
        """Roll up the whole hours inside a block of intervals (rows x time) from `first`."""
        off = (-first) % INTERVALS_PER_HOUR
        n = (kwh.shape[1] - off) // INTERVALS_PER_HOUR
        if n <= 0:
            return
        end = off + n * INTERVALS_PER_HOUR

        def hours(a: NDArray[np.float64]) -> NDArray[np.float64]:
            return a[:, off:end].reshape(a.shape[0], n, INTERVALS_PER_HOUR)

        col = (first + off) // INTERVALS_PER_HOUR - self.first_hour
        e, q, kw = hours(kwh), hours(kvarh), hours(demand_kw)
        # Left to right, as the ingest's accumulator adds them.
        self.kwh[:, col : col + n] = ((e[..., 0] + e[..., 1]) + e[..., 2]) + e[..., 3]
        self.kvarh[:, col : col + n] = ((q[..., 0] + q[..., 1]) + q[..., 2]) + q[..., 3]
        # argmax takes the first of equal peaks: the earliest, as the accumulator does.
        at = kw.argmax(axis=2)
        self.peak_kw[:, col : col + n] = np.take_along_axis(kw, at[..., None], axis=2)[..., 0]
        base = first + off + INTERVALS_PER_HOUR * np.arange(n, dtype=np.int64)
        self.peak_at[:, col : col + n] = base[None, :] + at
        self.complete[:, col : col + n] = True

    def spoil(self, row: int, interval: int) -> None:
        """Mark the hour holding `interval` as not computable from the arrays."""
        self.complete[row, interval // INTERVALS_PER_HOUR - self.first_hour] = False

    def hourly(self) -> Buckets:
        """Return the complete hours."""
        rows, cols = np.nonzero(self.complete)
        return Buckets(
            rows.astype(np.intp),
            (cols + self.first_hour).astype(np.int64) * 3600,
            self.kwh[rows, cols],
            self.kvarh[rows, cols],
            self.peak_kw[rows, cols],
            self.peak_at[rows, cols],
            np.full(len(rows), INTERVALS_PER_HOUR, dtype=np.int64),
        )

    def days(self, zones: Sequence[tzinfo]) -> tuple[Buckets, dict[int, set[int]]]:
        """Return the local days made only of complete hours, and the hours left to `refresh`.

        The second value maps a row to hour columns whose hour or day the arrays cannot
        vouch for; refreshing them recomputes those hours from the stored intervals and
        their days from the (by then written) hourly rows.
        """
        left: dict[int, set[int]] = {}
        for r, c in zip(*np.nonzero(~self.complete), strict=True):
            left.setdefault(int(r), set()).add(int(c))
        parts: list[Buckets] = []
        by_zone: dict[tzinfo, list[int]] = {}
        for r, tz in enumerate(zones):
            by_zone.setdefault(tz, []).append(r)
        for tz, members in by_zone.items():
            rows = np.array(members, dtype=np.intp)
            for a, b, start in self._day_segments(tz):
                # A day with an incomplete hour is rebuilt when that hour is refreshed.
                whole = self.complete[rows, a:b].all(axis=1)
                if start is None:
                    # The day reaches outside the range: one refreshed hour rebuilds it.
                    for r in rows[whole].tolist():
                        left.setdefault(r, set()).add(a)
                elif whole.any():
                    parts.append(self._day(rows[whole], a, b, start))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Buckets(empty.astype(np.intp), empty, *(np.zeros(0),) * 3, empty, empty), left
        return (
            Buckets(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS)),
            left,
        )

    def _day_segments(self, tz: tzinfo) -> Iterator[tuple[int, int, int | None]]:
        # Consecutive hour columns sharing a local day; start None if the day is cut off.
        starts = [day_start(hour_at(self.first_hour + c), tz) for c in range(self.hours)]
        a = 0
        for b in range(1, self.hours + 1):
            if b < self.hours and starts[b] == starts[a]:
                continue
            begin, end = day_span(starts[a], tz)
            inside = begin == hour_at(self.first_hour + a) and end == hour_at(self.first_hour + b)
            yield a, b, int(begin.timestamp()) if inside else None
            a = b

    def _day(self, rows: NDArray[np.intp], a: int, b: int, start: int) -> Buckets:
        kwh = self.kwh[rows, a]
        kvarh = self.kvarh[rows, a]
        for c in range(a + 1, b):
            kwh = kwh + self.kwh[rows, c]
            kvarh = kvarh + self.kvarh[rows, c]
        peaks = self.peak_kw[rows, a:b]
        at = peaks.argmax(axis=1)
        n = len(rows)
        return Buckets(
            rows,
            np.full(n, start, dtype=np.int64),
            kwh,
            kvarh,
            peaks[np.arange(n), at],
            self.peak_at[rows, a:b][np.arange(n), at],
            np.full(n, INTERVALS_PER_HOUR * (b - a), dtype=np.int64),
        )


_FIELDS = ("rows", "start", "kwh", "kvarh", "peak_kw", "peak_at", "intervals")
