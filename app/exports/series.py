"""The meter interval series that exporters write and importers return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from app.db import models
from app.domain import vee


@dataclass(frozen=True, slots=True)
class MeterSeries:
    """One meter's interval values over [start, end), with what an export needs to label them."""

    meter_id: str
    title: str
    utility_id: str
    tz: tzinfo
    start: datetime
    end: datetime
    intervals: tuple[vee.Interval, ...]


def interval_from_row(row: models.Reading) -> vee.Interval:
    """Convert a stored reading to the VEE core's value type."""
    quality = row.quality if row.quality in vee.QUALITIES else vee.QUESTIONABLE
    return vee.Interval(
        start=row.start,
        kwh=row.kwh,
        kvarh=row.kvarh,
        demand_kw=row.demand_kw,
        flags=frozenset(f for f in row.flags.split(",") if f),
        quality=quality,
    )
