"""A meter's local time zone, for display, reference days and exports (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The fleet is North American and meters carry coordinates, not a zone: these longitude
# bands follow the US time-zone boundaries closely enough for a demo fleet.
_BANDS: Final = (
    (-87.5, "America/New_York"),
    (-101.0, "America/Chicago"),
    (-114.0, "America/Denver"),
)
FALLBACK: Final = "America/Los_Angeles"
# The instants the API and the tools take: local days, windows and look-backs are computed
# around them, and near year 1 or 9999 that leaves the calendar a datetime can hold.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)


def zone_name_for(lon: float) -> str:
    """Return the IANA zone name for a North American longitude."""
    for east_of, name in _BANDS:
        if lon >= east_of:
            return name
    return FALLBACK


def zone_for(lon: float) -> ZoneInfo:
    """Return the time zone for a North American longitude."""
    return ZoneInfo(zone_name_for(lon))


def zone_named(name: str) -> ZoneInfo:
    """Return the IANA zone `name`; ValueError for anything that is not one.

    ZoneInfo alone raises several kinds of error for bad names: not found, malformed, and
    OSError when the name is a folder of the zone database ("US", "America").
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone such as America/Chicago") from None
