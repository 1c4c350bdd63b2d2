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


def _start(
    row: dict[str, str], column: str, where: str, tz: tzinfo | None, repeated: set[datetime]
) -> datetime:
    """Return a row's start in UTC; `repeated` holds the fall-back hour's local times seen."""
    raw = (row.get(column) or "").strip()
    if not raw:
        raise CsvError(f"{where}: {column} is empty")
    if column == "start_utc_epoch":
        try:
            return datetime.fromtimestamp(int(raw), UTC)
        except (ValueError, OverflowError, OSError):
            raise CsvError(f"{where}: {column} {raw!r} is not an integer epoch") from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"{where}: {column} {raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        if column == "start_utc":
            parsed = parsed.replace(tzinfo=UTC)  # the column says what its times are in
        elif tz is None:
            raise CsvError(f"{where}: {column} {raw!r} has no UTC offset (give a time zone)")
        else:
            parsed = _local(parsed, tz, f"{where}: {column} {raw!r}", repeated)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise CsvError(f"{where}: {column} {raw!r} is out of range") from None


def _local(naive: datetime, tz: tzinfo, where: str, repeated: set[datetime]) -> datetime:
    """Place a local wall time in `tz`: refused in the spring-forward gap, in order in the
    repeated fall-back hour (its first appearance is the earlier hour, its second the later)."""
    try:
        first, second = naive.replace(tzinfo=tz), naive.replace(tzinfo=tz, fold=1)
        if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
            raise CsvError(f"{where} does not exist in {tz} (the clocks went forward)")
        if first.utcoffset() == second.utcoffset():
            return first
    except OverflowError:
        raise CsvError(f"{where} is out of range") from None
    if naive in repeated:
        return second
    repeated.add(naive)
    return first


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
    # Meters named at each start: a row without one is the import's meter, so it collides
    # with any row at its start.
    seen: dict[datetime, set[str | None]] = {}
    repeated: set[datetime] = set()
    try:
        for row in reader:
            _read_row(reader.line_num, row, column, tz, found, seen, repeated)
    except csv.Error as exc:
        # The reader counts a line once it has parsed it: the bad one is the next.
        raise CsvError(f"line {reader.line_num + 1}: {exc}") from None
    if not found:
        raise CsvError("the file has no data rows")
    return found


def _read_row(
    line: int,
    row: dict[str, str],
    column: str,
    tz: tzinfo | None,
    found: list[CsvInterval],
    seen: dict[datetime, set[str | None]],
    repeated: set[datetime],
) -> None:
    """Parse one data row into `found`, refusing anything doubtful."""
    if len(found) >= MAX_ROWS:
        raise CsvError(f"line {line}: more than {MAX_ROWS} rows")
    if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
        return
    start = _start(row, column, f"line {line}", tz, repeated)
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
    there = seen.setdefault(start, set())
    if meter in there or (there and (meter is None or None in there)):
        raise CsvError(f"line {line}: a second row for {_utc(start)}")
    there.add(meter)
    found.append(CsvInterval(meter, vee.Interval(start, kwh, kvarh, demand, flags, quality)))
