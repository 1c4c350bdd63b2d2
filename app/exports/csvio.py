"""Interval CSV: one row per 15-minute interval, labelled by its beginning, in both directions.

Columns written: meter_id, start_utc_epoch, start_utc, start_local (ISO 8601 with the
UTC offset, so the repeated hour of a 25-hour day stays unambiguous), kwh, kvarh,
demand_kw, quality, flags. The reader needs a start column and kwh; the rest is optional.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final

from app.domain import vee

COLUMNS: Final = (
    "meter_id",
    "start_utc_epoch",
    "start_utc",
    "start_local",
    "kwh",
    "kvarh",
    "demand_kw",
    "quality",
    "flags",
)
START_COLUMNS: Final = ("start_utc_epoch", "start_utc", "start", "start_local")
MAX_ROWS: Final = 1_000_000


class CsvError(ValueError):
    """Raise when a CSV cannot be imported; the message names the line and column."""


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rows(meter_id: str, intervals: Iterable[vee.Interval], tz: tzinfo) -> Iterator[list[str]]:
    """Yield the header and one formatted row per interval."""
    yield list(COLUMNS)
    for i in intervals:
        yield [
            meter_id,
            str(int(i.start.timestamp())),
            _utc(i.start),
            i.start.astimezone(tz).isoformat(),
            f"{i.kwh:.4f}",
            f"{i.kvarh:.4f}",
            f"{i.demand_kw:.4f}",
            i.quality,
            ";".join(sorted(i.flags)),
        ]


def write_csv(meter_id: str, intervals: Iterable[vee.Interval], tz: tzinfo) -> str:
    """Return a meter's intervals as CSV text."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows(meter_id, intervals, tz))
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class CsvInterval:
    """One imported row: the meter it names (if any) and its interval."""

    meter_id: str | None
    interval: vee.Interval


def _number(raw: str, where: str, *, minimum: float | None = None) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise CsvError(f"{where}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise CsvError(f"{where}: must be finite")
    if minimum is not None and value < minimum:
        raise CsvError(f"{where}: {value:g} is below {minimum:g}")
    return value


def _start(row: dict[str, str], column: str, where: str, tz: tzinfo | None) -> datetime:
    raw = (row.get(column) or "").strip()
    if not raw:
        raise CsvError(f"{where}: {column} is empty")
    if column == "start_utc_epoch":
        try:
            return datetime.fromtimestamp(int(raw), UTC)
        except (ValueError, OverflowError):
            raise CsvError(f"{where}: {column} {raw!r} is not an integer epoch") from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"{where}: {column} {raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        if tz is None:
            raise CsvError(f"{where}: {column} {raw!r} has no UTC offset (give a time zone)")
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def read_csv(text: str, *, tz: tzinfo | None = None) -> list[CsvInterval]:
    """Parse interval CSV (our export or a customer's), refusing anything doubtful."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    column = next((c for c in START_COLUMNS if c in header), None)
    if column is None:
        raise CsvError(f"line 1: no start column (one of {', '.join(START_COLUMNS)})")
    if "kwh" not in header:
        raise CsvError("line 1: no kwh column")
    found: list[CsvInterval] = []
    seen: set[tuple[str | None, datetime]] = set()
    for row in reader:
        line = reader.line_num
        if len(found) >= MAX_ROWS:
            raise CsvError(f"line {line}: more than {MAX_ROWS} rows")
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        start = _start(row, column, f"line {line}", tz)
        if start.timestamp() % vee.INTERVAL_SECONDS:
            raise CsvError(f"line {line}: {column} is not on the 15-minute grid")
        kwh = _number(row.get("kwh") or "", f"line {line}: kwh", minimum=0)
        kvarh = _number(row["kvarh"], f"line {line}: kvarh") if row.get("kvarh") else 0.0
        demand = (
            _number(row["demand_kw"], f"line {line}: demand_kw", minimum=0)
            if row.get("demand_kw")
            else kwh / vee.HOURS_PER_INTERVAL
        )
        quality_raw = (row.get("quality") or vee.VALID).strip()
        quality = next((q for q in vee.QUALITIES if q == quality_raw), None)
        if quality is None:
            raise CsvError(
                f"line {line}: quality {quality_raw!r} is not one of {', '.join(vee.QUALITIES)}"
            )
        flags = frozenset(f for f in (row.get("flags") or "").split(";") if f.strip())
        meter = (row.get("meter_id") or "").strip() or None
        if (meter, start) in seen:
            raise CsvError(f"line {line}: a second row for {_utc(start)}")
        seen.add((meter, start))
        found.append(CsvInterval(meter, vee.Interval(start, kwh, kvarh, demand, flags, quality)))
    if not found:
        raise CsvError("the file has no data rows")
    return found
