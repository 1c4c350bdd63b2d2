"""US federal holidays and per-day lookup tables indexed by days since the Unix epoch."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

FIRST_YEAR: Final = 1970
LAST_YEAR: Final = 2100
_EPOCH_DATE: Final = date(1970, 1, 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """Return the n-th (1-based; -1 = last) `weekday` (Mon = 0) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    # A fixed-date holiday on a Saturday is observed on Friday, on a Sunday on Monday (5 U.S.C. 6103).
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def federal_holidays(year: int) -> list[date]:
    """Return the observed US federal holidays of `year` (Juneteenth from 2021)."""
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    if year >= 2021:
        fixed.append(date(year, 6, 19))
    floating = [
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
    ]
    return sorted([_observed(d) for d in fixed] + floating)


def store_closures(year: int) -> list[date]:
    """Return the days most US stores close: Thanksgiving and Christmas Day itself."""
    return [_nth_weekday(year, 11, 3, 4), date(year, 12, 25)]


def _tables() -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.int16]]:
    days = (date(LAST_YEAR + 1, 1, 1) - _EPOCH_DATE).days
    holiday = np.zeros(days, dtype=np.bool_)
    closed = np.zeros(days, dtype=np.bool_)
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        for table, dates in ((holiday, federal_holidays(year)), (closed, store_closures(year))):
            for day in dates:
                index = (day - _EPOCH_DATE).days
                if 0 <= index < days:
                    table[index] = True
    stamps = np.arange(days).astype("datetime64[D]")
    doy = (stamps - stamps.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int16)
    return holiday, closed, doy


# Lookup tables by epoch day: much cheaper inside the vectorised model than date arithmetic.
HOLIDAY, STORES_CLOSED, DAY_OF_YEAR = _tables()
LAST_DAY: Final = len(HOLIDAY) - 1


def _on(table: NDArray[np.bool_], day: NDArray[np.int64]) -> NDArray[np.bool_]:
    inside = (day >= 0) & (day <= LAST_DAY)
    result: NDArray[np.bool_] = table[np.clip(day, 0, LAST_DAY)] & inside
    return result


def is_holiday(day: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Return whether each epoch day is a US federal holiday (False outside 1970-2100)."""
    return _on(HOLIDAY, day)


def stores_closed(day: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Return whether each epoch day is one most stores close (False outside 1970-2100)."""
    return _on(STORES_CLOSED, day)


def day_of_year(day: NDArray[np.int64]) -> NDArray[np.int16]:
    """Return the 0-based day of the year of each epoch day (clamped to the table's years)."""
    result: NDArray[np.int16] = DAY_OF_YEAR[np.clip(day, 0, LAST_DAY)]
    return result
