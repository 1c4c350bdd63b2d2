"""The meter interval series that exporters write and importers return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

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
