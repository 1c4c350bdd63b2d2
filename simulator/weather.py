"""A synthetic hourly temperature per region: seasonal and daily cycles plus smooth weather.

Pure and counter-based: the temperature of (region, interval) depends only on the seed, so
the live simulator, backfill and a contingency read all see the same weather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from simulator import hashing
from simulator.calendar import day_of_year

SLOTS_PER_DAY: Final = 96
_CH_WEATHER: Final = 101


@dataclass(frozen=True, slots=True)
class Climate:
    """A region's temperature normals in degrees Celsius."""

    region: str
    utc_offset_hours: int  # standard time
    mean_c: float
    seasonal_c: float
    diurnal_c: float
    weather_sigma_c: float
    # The city's zone: its clocks, which buildings keep, move an hour in summer.
    zone: str = "America/New_York"

    @property
    def cooling_design_c(self) -> float:
        """Return the hot design temperature (a summer afternoon about 1.5 sigma above normal)."""
        return self.mean_c + self.seasonal_c + self.diurnal_c + 1.5 * self.weather_sigma_c

    @property
    def heating_design_c(self) -> float:
        """Return the cold design temperature (a winter night about 1.5 sigma below normal)."""
        return self.mean_c - self.seasonal_c - self.diurnal_c - 1.5 * self.weather_sigma_c


# Rounded normals for a representative city per region (NOAA 1991-2020 style figures).
# The sun keeps standard time (temperatures follow it); occupancy follows the clocks, which
# keep daylight-saving time (simulator.model.dst_table).
CLIMATES: Final = (
    Climate("Midwest", -5, 10.0, 13.0, 5.0, 4.0, "America/Detroit"),  # Detroit
    Climate("Northeast", -5, 13.5, 12.0, 4.5, 3.5, "America/New_York"),  # Philadelphia
    Climate("New England", -5, 8.0, 14.0, 6.0, 4.0, "America/New_York"),  # Keene NH
    Climate("Mid-Atlantic", -5, 14.5, 11.5, 5.0, 3.5, "America/New_York"),  # Washington DC
    Climate("Great Plains", -6, 9.5, 14.0, 8.0, 4.5, "America/Chicago"),  # North Platte NE
    Climate("Mountain West", -7, 10.5, 11.0, 8.0, 4.0, "America/Denver"),  # Denver
    Climate("Pacific Northwest", -8, 12.5, 8.0, 5.0, 2.5, "America/Los_Angeles"),  # Portland OR
)
REGIONS: Final = tuple(c.region for c in CLIMATES)
REGION_INDEX: Final = {r: i for i, r in enumerate(REGIONS)}
_MEAN = np.array([c.mean_c for c in CLIMATES])
_SEASONAL = np.array([c.seasonal_c for c in CLIMATES])
_DIURNAL = np.array([c.diurnal_c for c in CLIMATES])
_SIGMA = np.array([c.weather_sigma_c for c in CLIMATES])
_OFFSET_SLOTS = np.array([c.utc_offset_hours * 4 for c in CLIMATES], dtype=np.int64)
# Weather lasts a few days: today's anomaly mixes today's and the two previous days' draws.
_AR: Final = np.array([1.0, 0.8, 0.5]) / np.sqrt(1.0 + 0.64 + 0.25)


@dataclass(frozen=True, slots=True)
class HeatSpell:
    """A scripted temperature offset for one region over [start, end) interval indexes."""

    region: int
    start: int
    end: int
    delta_c: float


def temperature_table(
    seed: int, first: int, count: int, spells: Sequence[HeatSpell] = ()
) -> NDArray[np.float64]:
    """Return temperatures (regions x count) for intervals first .. first+count-1 (UTC index)."""
    t = np.arange(first, first + count, dtype=np.int64)
    local = t[None, :] + _OFFSET_SLOTS[:, None]
    day = local // SLOTS_PER_DAY
    hour = (local % SLOTS_PER_DAY + 0.5) * 0.25
    doy = day_of_year(day).astype(np.float64)
    seasonal = -_SEASONAL[:, None] * np.cos(2 * np.pi * (doy - 20.0) / 365.25)
    diurnal = -_DIURNAL[:, None] * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
    anomaly = _anomaly(seed, day) * _SIGMA[:, None]
    table: NDArray[np.float64] = _MEAN[:, None] + seasonal + diurnal + anomaly
    for spell in spells:
        hit = (t >= spell.start) & (t < spell.end)
        # A heat wave brings at least midsummer's normal heat for the hour, then delta_c on
        # top: a presenter's "heat wave" in December raised nothing but a winter day by 7 C,
        # which only cut the heating load.
        summer = _MEAN[spell.region] + _SEASONAL[spell.region] + diurnal[spell.region, hit]
        table[spell.region, hit] = np.maximum(table[spell.region, hit], summer) + spell.delta_c
    return table


def _anomaly(seed: int, day: NDArray[np.int64]) -> NDArray[np.float64]:
    # Per (region, day) draws: few distinct days per call, so hash the unique ones only.
    days, inverse = np.unique(day, return_inverse=True)
    keys = np.array(
        [hashing.key(seed, _CH_WEATHER, r) for r in range(len(CLIMATES))], dtype=np.uint64
    )
    out = np.zeros((len(CLIMATES), len(days)))
    for lag, weight in enumerate(_AR):
        out += weight * hashing.normal3(hashing.hash_at(keys[:, None], days[None, :] - lag))
    # normal3 is bounded at +-3 sd; the AR mix keeps unit variance.
    rows = np.arange(len(CLIMATES))[:, None]
    result: NDArray[np.float64] = out[rows, inverse.reshape(day.shape)]
    return result
