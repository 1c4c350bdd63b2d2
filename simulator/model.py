"""The load model: vectorised 15-minute energy, reactive energy, demand and voltage per meter.

Pure (numpy + the telemetry contract). A reading of (meter, interval) is a function of the
seed, the meter, the interval and the scripted effects only: every random quantity is a
counter-based hash, so it never depends on call order, batch size or fleet size, and the
live simulator, backfill and a contingency read agree to the last decimal.

Demand of a meter is ``P * (b + (1 - b) * s(t)) * day * (1 + noise) + spike`` where
``s`` mixes an occupancy curve by building type and day type (weekday, Saturday, Sunday,
US federal holiday; schools break for summer and the winter holidays, stores close on
Thanksgiving and Christmas Day) with cooling and electric heating driven by a
synthetic regional temperature. ``s`` is scaled to peak at 1 over a reference year of the
same region, and the base ``b`` is solved so the annual load factor is the meter's own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from app.domain.telemetry import INTERVAL_SECONDS, READING_FLAGS, Reading
from simulator import hashing
from simulator.calendar import day_of_year, is_holiday, stores_closed
from simulator.fleet import BUILDING_TYPES, UTILITY_BY_ID, Meter
from simulator.weather import CLIMATES, REGION_INDEX, HeatSpell, temperature_table

SLOTS_PER_DAY: Final = 86_400 // INTERVAL_SECONDS
HOURS_PER_INTERVAL: Final = INTERVAL_SECONDS / 3600
INTERVAL: Final = timedelta(seconds=INTERVAL_SECONDS)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

NOISE_SIGMA: Final = 0.02
DAY_SPREAD: Final = 0.06  # a day's level varies +-3 % around the shape
SPIKE_PROBABILITY: Final = 0.002  # about one equipment spike (a motor start, a chiller) a week
SPIKE_SIZE: Final = (0.02, 0.06)  # of the design peak
VOLTAGE_TOLERANCE: Final = 0.03
LOAD_SAG: Final = 0.01  # the service voltage drops about 1 % from no load to full load
# Of a site's reactive load at its mean active load, the part that does not follow the load
# (transformer magnetising current, idling motors): PF sags at night and rises at the peak.
# A day's PF then falls under 0.90 at about 32 % of 1,000 meters on a Sunday, 20-22 % on
# weekdays (22 % of their nominal power factors are under 0.90).
REACTIVE_FIXED: Final = 0.2
RESTORE_SAG: Final = 0.06  # extra dip over an interval in which power failed or came back
JITTER_SLOTS: Final = 3  # sites open up to 45 minutes earlier or later than the type's norm
COOLING_BALANCE_C: Final = 18.0
HEATING_BALANCE_C: Final = 10.0
# Cooling runs at a setback when a building is empty, heating keeps half its output.
COOLING_UNOCCUPIED: Final = 0.3
HEATING_UNOCCUPIED: Final = 0.5
# Noise, spikes and hot days push the measured annual maximum above the noiseless shape's;
# dividing the design peak by this lands the measured peak near the meter's peak_kw.
PEAK_OVERSHOOT: Final = 1.06
REFERENCE_YEAR: Final = 2025
MIN_BASE, MAX_BASE = 0.02, 0.97
SCHOOL_SUMMER: Final = (165, 228)  # day-of-year range (mid-June to mid-August)
SCHOOL_WINTER: Final = (354, 1)  # from this day of the year, through this one of the next

FLAG_BITS: Final = {
    "power_fail": 1,
    "partial": 2,
    "tamper": 4,
    "reverse_rotation": 8,
    "clock_adjusted": 16,
    "backfill": 32,
}
if set(FLAG_BITS) != READING_FLAGS:  # the contract and the bit map must list the same flags
    raise RuntimeError("FLAG_BITS is out of step with telemetry.READING_FLAGS")
FLAGSETS: Final = tuple(
    frozenset(name for name, bit in FLAG_BITS.items() if mask & bit) for mask in range(64)
)
FLAG_LISTS: Final = tuple(sorted(s) for s in FLAGSETS)

# Hash channels: one per independent random quantity.
_CH_JITTER, _CH_VBIAS, _CH_DAY, _CH_NOISE, _CH_AUX = 1, 2, 3, 4, 5

Knots = tuple[tuple[float, float], ...]

_ZERO: Final[Knots] = ((0, 0), (24, 0))
# Occupancy ramps: lights, plug loads and ventilation come up over one to two hours.
_OFFICE_WD: Final[Knots] = (
    (0, 0), (5.5, 0), (8, 0.85), (12, 0.95), (15, 1.0), (17, 0.9), (19, 0.15), (21, 0), (24, 0),
)  # fmt: skip
_FEDERAL_WD: Final[Knots] = (
    (0, 0), (5, 0), (7, 0.9), (12, 1.0), (15, 0.95), (16.5, 0.5), (18, 0.05), (24, 0),
)  # fmt: skip
_OFFICE_SAT: Final[Knots] = ((0, 0), (7, 0), (9, 0.2), (13, 0.2), (15, 0), (24, 0))
_RETAIL: Final[Knots] = (
    (0, 0), (8, 0), (10, 0.8), (14, 0.95), (18, 1.0), (20, 0.9), (21.5, 0), (24, 0),
)  # fmt: skip
_SUPERMARKET: Final[Knots] = (
    (0, 0), (6, 0), (8, 0.8), (12, 0.9), (17, 1.0), (20, 0.9), (22.5, 0), (24, 0),
)  # fmt: skip
_SCHOOL_WD: Final[Knots] = (
    (0, 0), (6, 0), (7.5, 0.9), (11, 1.0), (14, 1.0), (15.5, 0.5), (17, 0.2), (21, 0.1), (22, 0),
    (24, 0),
)  # fmt: skip
_MFG_1: Final[Knots] = ((0, 0), (5, 0), (6.5, 1.0), (14, 1.0), (15, 0.1), (17, 0), (24, 0))
_MFG_2: Final[Knots] = (
    (0, 0.05), (5, 0.05), (6, 0.95), (14, 1.0), (14.5, 0.9), (22, 0.95), (23, 0.05), (24, 0.05),
)  # fmt: skip
_MFG_3: Final[Knots] = (
    (0, 0.95), (5.75, 0.95), (6.25, 0.8), (6.75, 1.0), (13.75, 1.0), (14.25, 0.85),
    (14.75, 1.0), (21.75, 0.95), (22.25, 0.8), (22.75, 0.95), (24, 0.95),
)  # fmt: skip
# Hospitals and data centres run all night; the daytime bump is clinics and IT batch load.
_HOSPITAL: Final[Knots] = (
    (0, 0.5),
    (6, 0.5),
    (10, 0.9),
    (14, 1.0),
    (18, 0.85),
    (22, 0.55),
    (24, 0.5),
)
_HOSPITAL_WE: Final[Knots] = tuple((h, 0.8 * v) for h, v in _HOSPITAL)
_DATA_CENTER: Final[Knots] = ((0, 0.92), (8, 0.93), (14, 1.0), (20, 0.95), (24, 0.92))


def _scaled(knots: Knots, factor: float) -> Knots:
    return tuple((h, factor * v) for h, v in knots)


@dataclass(frozen=True, slots=True)
class Profile:
    """Occupancy curves of one kind of site: (weekday, Saturday, Sunday) and holiday handling."""

    code: str
    building_type: str
    days: tuple[Knots, Knots, Knots]
    holiday_daytype: int = 2  # which of the three curves a federal holiday follows
    summer_scale: float = 1.0  # occupancy factor in the summer and winter breaks (schools)
    closes_for_holidays: bool = False  # dark on Thanksgiving and Christmas Day (stores)


PROFILES: Final = (
    Profile("small_office", "small_office", (_OFFICE_WD, _OFFICE_SAT, _ZERO)),
    Profile("large_office", "large_office", (_OFFICE_WD, _OFFICE_SAT, _ZERO)),
    Profile("federal_office", "federal_office", (_FEDERAL_WD, _ZERO, _ZERO)),
    Profile("school", "school", (_SCHOOL_WD, _ZERO, _ZERO), summer_scale=0.25),
    Profile(
        "retail",
        "retail",
        (_RETAIL, _RETAIL, ((0, 0), (9, 0), (11, 0.75), (17, 0.8), (18.5, 0), (24, 0))),
        holiday_daytype=1,  # stores open on most holidays (sales)
        closes_for_holidays=True,
    ),
    Profile("supermarket", "supermarket", (_SUPERMARKET, _SUPERMARKET, _scaled(_SUPERMARKET, 0.9))),
    Profile("hospital", "hospital", (_HOSPITAL, _HOSPITAL_WE, _HOSPITAL_WE)),
    Profile("data_center", "data_center", (_DATA_CENTER, _DATA_CENTER, _DATA_CENTER), 0),
    Profile(
        "warehouse",
        "warehouse",
        (
            ((0, 0), (5, 0), (6.5, 0.9), (12, 1.0), (17, 0.9), (18.5, 0), (24, 0)),
            ((0, 0), (7, 0), (8, 0.3), (13, 0.3), (14, 0), (24, 0)),
            _ZERO,
        ),
    ),
    Profile("manufacturing_1", "manufacturing", (_MFG_1, _ZERO, _ZERO)),
    Profile(
        "manufacturing_2",
        "manufacturing",
        (_MFG_2, ((0, 0), (5.5, 0), (6.5, 0.6), (13.5, 0.6), (14.5, 0), (24, 0)), _ZERO),
    ),
    Profile(
        "manufacturing_3", "manufacturing", (_MFG_3, _scaled(_MFG_3, 0.8), _scaled(_MFG_3, 0.6))
    ),
)
PROFILE_INDEX: Final = {p.code: i for i, p in enumerate(PROFILES)}
_HOLIDAY_DAYTYPE: Final = np.array([p.holiday_daytype for p in PROFILES], dtype=np.intp)
_SUMMER_SCALE: Final = np.array([p.summer_scale for p in PROFILES])
_CLOSES: Final = np.array([p.closes_for_holidays for p in PROFILES])
# Monday = 0; 1970-01-01 was a Thursday.
_DAYTYPE_BY_WEEKDAY: Final = np.array([0, 0, 0, 0, 0, 1, 2], dtype=np.intp)


def _curve(knots: Knots) -> NDArray[np.float64]:
    hours = (np.arange(SLOTS_PER_DAY) + 0.5) * HOURS_PER_INTERVAL
    curve: NDArray[np.float64] = np.interp(hours, [h for h, _ in knots], [v for _, v in knots])
    return curve


# SHAPES[profile, daytype, slot]
SHAPES: Final = np.array([[_curve(k) for k in p.days] for p in PROFILES])


def profile_code(meter: Meter) -> str:
    """Return the occupancy profile of a meter (manufacturing by its number of shifts)."""
    if meter.building_type == "manufacturing":
        return f"manufacturing_{meter.shifts or 2}"
    return meter.building_type


def utc_offset_hours(utility_id: str, at: datetime | None = None) -> int:
    """Return the UTC offset (hours) of a utility's clocks: standard time, or at instant `at`."""
    region = REGION_INDEX[UTILITY_BY_ID[utility_id].region]
    standard = CLIMATES[region].utc_offset_hours
    if at is None:
        return standard
    start, end = _dst_span(region, at.astimezone(UTC).year)
    return standard + (1 if start <= interval_index(at) < end else 0)


DST_SLOTS: Final = 3600 // INTERVAL_SECONDS  # the hour clocks move in summer


@functools.lru_cache(maxsize=512)
def _dst_span(region: int, year: int) -> tuple[int, int]:
    """Return the UTC interval indexes [start, end) of a region's daylight time in `year`."""
    zone = ZoneInfo(CLIMATES[region].zone)
    standard = timedelta(hours=CLIMATES[region].utc_offset_hours)
    first = datetime(year, 1, 1, tzinfo=UTC)
    start: datetime | None = None
    # North American clocks change on the hour in UTC too (every offset is whole hours).
    for hour in range(24 * 366):
        at = first + timedelta(hours=hour)
        if at.year != year:
            break
        summer = at.astimezone(zone).utcoffset() != standard
        if summer and start is None:
            start = at
        elif not summer and start is not None:
            return interval_index(start), interval_index(at)
    return (
        (0, 0)
        if start is None
        else (interval_index(start), interval_index(first.replace(year=year + 1)))
    )


def dst_table(first: int, count: int) -> NDArray[np.int64]:
    """Return the slots each region's clocks run ahead of standard time (regions x count)."""
    t = np.arange(first, first + count, dtype=np.int64)
    years = (t * INTERVAL_SECONDS).astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64)
    out = np.zeros((len(CLIMATES), count), dtype=np.int64)
    for year in np.unique(years).tolist():
        in_year = years == year
        for region in range(len(CLIMATES)):
            start, end = _dst_span(region, 1970 + year)
            out[region] += np.where(in_year & (t >= start) & (t < end), DST_SLOTS, 0)
    return out


def interval_index(start: datetime) -> int:
    """Return the number of 15-minute intervals from the Unix epoch to `start`."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    seconds = (start - EPOCH) // timedelta(seconds=1)
    if seconds % INTERVAL_SECONDS or start.microsecond:
        raise ValueError(f"start {start.isoformat()} is not on the 15-minute grid")
    return seconds // INTERVAL_SECONDS


def interval_start(index: int) -> datetime:
    """Return the start of interval `index` (the inverse of interval_index)."""
    return EPOCH + index * INTERVAL


# ---------------------------------------------------------------- calendar and weather tables


def occupancy_table(first_local: int, count: int) -> NDArray[np.float64]:
    """Return occupancy (profiles x count) for local interval indexes first_local .. +count-1."""
    local = np.arange(first_local, first_local + count, dtype=np.int64)
    day = local // SLOTS_PER_DAY
    slot = local % SLOTS_PER_DAY
    daytype = np.broadcast_to(_DAYTYPE_BY_WEEKDAY[(day + 3) % 7], (len(PROFILES), count))
    daytype = np.where(is_holiday(day)[None, :], _HOLIDAY_DAYTYPE[:, None], daytype)
    profiles = np.arange(len(PROFILES))[:, None]
    occ: NDArray[np.float64] = SHAPES[profiles, daytype, slot[None, :]]
    doy = day_of_year(day)
    summer = (doy >= SCHOOL_SUMMER[0]) & (doy < SCHOOL_SUMMER[1])
    # Schools also break from about December 21 to January 2 (0-based days of the year).
    winter = (doy >= SCHOOL_WINTER[0]) | (doy <= SCHOOL_WINTER[1])
    occ = occ * np.where((summer | winter)[None, :], _SUMMER_SCALE[:, None], 1.0)
    occ = np.where(_CLOSES[:, None] & stores_closed(day)[None, :], 0.0, occ)
    return occ


def hvac_tables(
    seed: int, first: int, count: int, spells: Sequence[HeatSpell] = ()
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return (temperature, cooling, heating) per region x interval; cooling/heating are 1 at design."""
    temp = temperature_table(seed, first, count, spells)
    hot = np.array([c.cooling_design_c for c in CLIMATES])[:, None]
    cold = np.array([c.heating_design_c for c in CLIMATES])[:, None]
    cooling = np.maximum(temp - COOLING_BALANCE_C, 0.0) / (hot - COOLING_BALANCE_C)
    heating = np.maximum(HEATING_BALANCE_C - temp, 0.0) / (HEATING_BALANCE_C - cold)
    return temp, cooling, heating


def _shape(
    occ: NDArray[np.float64],
    cooling: NDArray[np.float64],
    heating: NDArray[np.float64],
    w_cool: NDArray[np.float64] | float,
    w_heat: NDArray[np.float64] | float,
) -> NDArray[np.float64]:
    occupied_cooling = COOLING_UNOCCUPIED + (1.0 - COOLING_UNOCCUPIED) * occ
    occupied_heating = HEATING_UNOCCUPIED + (1.0 - HEATING_UNOCCUPIED) * occ
    result: NDArray[np.float64] = (
        (1.0 - w_cool) * occ
        + w_cool * cooling * occupied_cooling
        + w_heat * heating * occupied_heating
    )
    return result


_REFERENCE_FIRST: Final = (datetime(REFERENCE_YEAR, 1, 1, tzinfo=UTC) - EPOCH).days * SLOTS_PER_DAY
_REFERENCE_COUNT: Final = 365 * SLOTS_PER_DAY


@functools.lru_cache(maxsize=8)
def _reference_hvac(seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    _, cooling, heating = hvac_tables(seed, _REFERENCE_FIRST, _REFERENCE_COUNT)
    return cooling, heating


@functools.lru_cache(maxsize=16)
def _reference_occupancy(region: int) -> NDArray[np.float64]:
    # By UTC slot of the reference year: each at the region's clock time, DST included.
    offset = CLIMATES[region].utc_offset_hours * 4
    table = occupancy_table(_REFERENCE_FIRST + offset, _REFERENCE_COUNT + DST_SLOTS)
    shift = dst_table(_REFERENCE_FIRST, _REFERENCE_COUNT)[region]
    result: NDArray[np.float64] = table[:, np.arange(_REFERENCE_COUNT) + shift]
    return result


@functools.lru_cache(maxsize=1024)
def calibration(seed: int, profile: int, region: int) -> tuple[float, float]:
    """Return (max, mean) of the noiseless shape over the reference year for a profile and region."""
    occ = _reference_occupancy(region)[profile]
    cooling, heating = _reference_hvac(seed)
    btype = BUILDING_TYPES[PROFILES[profile].building_type]
    s = _shape(occ, cooling[region], heating[region], btype.cooling, btype.heating)
    return float(s.max()), float(s.mean())


_N_JITTER: Final = 2 * JITTER_SLOTS + 1
# Each region's standard time, in slots from UTC.
REGION_OFFSET_SLOTS: Final = np.array([c.utc_offset_hours * 4 for c in CLIMATES], dtype=np.int64)
_PROFILE_COOLING: Final = np.array([BUILDING_TYPES[p.building_type].cooling for p in PROFILES])
_PROFILE_HEATING: Final = np.array([BUILDING_TYPES[p.building_type].heating for p in PROFILES])


def _u16(h: NDArray[np.uint64]) -> NDArray[np.uint16]:
    """View 64-bit hashes as four 16-bit fields (last axis), without copying."""
    # Little-endian field order; the values are only ever random bits, so order is immaterial
    # for statistics (big-endian hosts would draw different, equally valid, numbers).
    view: NDArray[np.uint16] = np.ascontiguousarray(h).view(np.uint16).reshape(*h.shape, 4)
    return view


# ---------------------------------------------------------------- scripted effects


@dataclass(frozen=True, slots=True)
class Window:
    """A scripted condition on some meters over [start, end) in epoch seconds."""

    rows: NDArray[np.bool_]  # over the FleetArrays rows
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Effects:
    """What scenarios do to the physics: outages, tamper, reverse rotation, heat spells."""

    outages: tuple[Window, ...] = ()
    tamper: tuple[Window, ...] = ()
    reverse: tuple[Window, ...] = ()
    heat: tuple[HeatSpell, ...] = ()


NO_EFFECTS: Final = Effects()


def overlap_seconds(
    windows: Sequence[Window], rows: NDArray[np.intp], t: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Return seconds of each (row, interval) covered by any window (capped at the interval)."""
    covered = np.zeros(np.broadcast_shapes(rows.shape, t.shape), dtype=np.int64)
    t0 = t * INTERVAL_SECONDS
    for w in windows:
        sec = np.clip(np.minimum(w.end, t0 + INTERVAL_SECONDS) - np.maximum(w.start, t0), 0, None)
        covered = np.maximum(covered, np.where(w.rows[rows], sec, 0))
    return covered


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Block:
    """Readings as arrays (any broadcast shape), already rounded as they are published."""

    interval: NDArray[np.int64]
    rows: NDArray[np.intp]
    kwh: NDArray[np.float64]
    kvarh: NDArray[np.float64]
    demand_kw: NDArray[np.float64]
    voltage: NDArray[np.float64]  # shape + (3,)
    flags: NDArray[np.uint8]
    temperature_c: NDArray[np.float64]  # empty unless asked for


@dataclass(frozen=True, slots=True)
class FleetArrays:
    """Per-meter model parameters as arrays, built once per fleet, seed and scenario."""

    seed: int
    index: NDArray[np.uint64]
    profile: NDArray[np.intp]
    region: NDArray[np.intp]
    shift_slots: NDArray[np.int64]
    design_kw: NDArray[np.float64]
    base: NDArray[np.float64]
    w_cool: NDArray[np.float64]
    w_heat: NDArray[np.float64]
    shape_max: NDArray[np.float64]
    mean_kw: NDArray[np.float64]  # the calibrated mean demand, where Q / P = tan_phi
    tan_phi: NDArray[np.float64]
    phase_volts: NDArray[np.float64]
    two_phase: NDArray[np.bool_]  # a 12S network meter: phases A and B only
    volt_bias: NDArray[np.float64]
    day_keys: NDArray[np.uint64]
    noise_keys: NDArray[np.uint64]
    aux_keys: NDArray[np.uint64]
    combo: NDArray[np.intp]  # (profile, region, jitter): meters sharing it share a shape
    effects: Effects = field(default=NO_EFFECTS)

    @classmethod
    def build(
        cls, meters: Sequence[Meter], seed: int, effects: Effects = NO_EFFECTS
    ) -> FleetArrays:
        """Gather the meters' static parameters into arrays and calibrate their shapes."""
        index = np.array([m.index for m in meters], dtype=np.uint64)
        profile = np.array([PROFILE_INDEX[profile_code(m)] for m in meters], dtype=np.intp)
        region = np.array(
            [REGION_INDEX[UTILITY_BY_ID[m.utility_id].region] for m in meters], dtype=np.intp
        )
        offsets = np.array([CLIMATES[r].utc_offset_hours for r in region.tolist()], dtype=np.int64)
        jitter_u = hashing.uniform(hashing.row_keys(seed, _CH_JITTER, index))
        jitter = np.floor(jitter_u * (2 * JITTER_SLOTS + 1)).astype(np.int64) - JITTER_SLOTS
        cal = np.array(
            [
                calibration(seed, p, r)
                for p, r in zip(profile.tolist(), region.tolist(), strict=True)
            ]
        ).reshape(-1, 2)
        shape_max, shape_mean = cal[:, 0], cal[:, 1] / np.maximum(cal[:, 0], 1e-9)
        load_factor = np.array([m.load_factor for m in meters], dtype=np.float64)
        # mean(b + (1 - b) * s) = b + (1 - b) * mean(s) = target load factor (relative to the
        # noiseless peak, which sits PEAK_OVERSHOOT below the measured one).
        target = np.minimum(load_factor * PEAK_OVERSHOOT, 0.99)
        base = np.clip(
            (target - shape_mean) / np.maximum(1.0 - shape_mean, 1e-9), MIN_BASE, MAX_BASE
        )
        pf = np.array([m.power_factor for m in meters], dtype=np.float64)
        btypes = [BUILDING_TYPES[m.building_type] for m in meters]
        design_kw = np.array([m.peak_kw for m in meters], dtype=np.float64) / PEAK_OVERSHOOT
        return cls(
            seed=seed,
            index=index,
            profile=profile,
            region=region,
            shift_slots=offsets * (3600 // INTERVAL_SECONDS) + jitter,
            design_kw=design_kw,
            base=base,
            w_cool=np.array([b.cooling for b in btypes]),
            w_heat=np.array([b.heating for b in btypes]),
            shape_max=shape_max,
            mean_kw=design_kw * (base + (1.0 - base) * shape_mean),
            tan_phi=np.tan(np.arccos(np.clip(pf, 0.01, 1.0))),
            phase_volts=np.array([m.phase_volts for m in meters], dtype=np.float64),
            two_phase=np.array([m.phases == 2 for m in meters], dtype=np.bool_),
            volt_bias=(hashing.uniform(hashing.row_keys(seed, _CH_VBIAS, index)) - 0.5) * 0.02,
            day_keys=hashing.row_keys(seed, _CH_DAY, index),
            noise_keys=hashing.row_keys(seed, _CH_NOISE, index),
            aux_keys=hashing.row_keys(seed, _CH_AUX, index),
            combo=(profile * len(CLIMATES) + region) * _N_JITTER + (jitter + JITTER_SLOTS),
            effects=effects,
        )

    def __len__(self) -> int:
        """Return the number of meters."""
        return len(self.index)

    def compute(
        self, intervals: NDArray[np.int64], rows: NDArray[np.intp], *, temperature: bool = False
    ) -> Block:
        """Return the readings of meter `rows` at `intervals` (broadcast together) as arrays."""
        t = np.asarray(intervals, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.intp)
        t_lo, t_hi = int(t.min()), int(t.max())
        count = t_hi - t_lo + 1
        shift = self.shift_slots[rows]
        # Tables over the window (profiles or regions x time) turn calendar and weather
        # into one gather per value.
        local_lo = t_lo - JITTER_SLOTS + int(self.shift_slots.min(initial=0)) - 4 * 24
        local_hi = t_hi + int(self.shift_slots.max(initial=0)) + 1 + DST_SLOTS
        occ_table = occupancy_table(local_lo, local_hi - local_lo + 1)
        # Buildings keep clock time: an hour ahead of standard time in summer.
        dst = dst_table(t_lo, count)
        temp, cool_table, heat_table = hvac_tables(self.seed, t_lo, count, self.effects.heat)
        region = self.region[rows]
        tcol = t - t_lo
        # The noiseless shape depends only on (profile, region, opening-time jitter): build it
        # once per combination over the window, then one gather per value.
        combos, inverse = np.unique(self.combo[rows], return_inverse=True)
        inverse = inverse.reshape(np.shape(self.combo[rows]))
        c_profile = combos // (len(CLIMATES) * _N_JITTER)
        c_region = (combos // _N_JITTER) % len(CLIMATES)
        c_shift = REGION_OFFSET_SLOTS[c_region] + combos % _N_JITTER - JITTER_SLOTS
        window = np.arange(t_lo, t_hi + 1, dtype=np.int64)
        occ = occ_table[
            c_profile[:, None], window[None, :] + c_shift[:, None] + dst[c_region] - local_lo
        ]
        smax = np.array(
            [
                calibration(self.seed, p, r)[0]
                for p, r in zip(c_profile.tolist(), c_region.tolist(), strict=True)
            ]
        )
        table = (
            _shape(
                occ,
                cool_table[c_region],
                heat_table[c_region],
                _PROFILE_COOLING[c_profile][:, None],
                _PROFILE_HEATING[c_profile][:, None],
            )
            / smax[:, None]
        )
        s = table[inverse, tcol]
        base = self.base[rows]
        frac = base + (1.0 - base) * s
        day = (t + shift + dst[region, tcol]) // SLOTS_PER_DAY
        day_factor = 1.0 + DAY_SPREAD * (
            hashing.uniform(hashing.hash_at(self.day_keys[rows], day)) - 0.5
        )
        h = hashing.hash_at(self.noise_keys[rows], t)
        # Irwin-Hall noise from three 16-bit fields: 1 + sigma * z with z = 2 * (sum - 1.5).
        fields = _u16(h)
        total = fields[..., 0].astype(np.int32) + fields[..., 1] + fields[..., 2]
        noise = total * (2.0 * NOISE_SIGMA / 65536) + (1.0 - 3.0 * NOISE_SIGMA)
        design = self.design_kw[rows]
        demand = design * frac * day_factor * noise
        aux = hashing.hash_at(self.aux_keys[rows], t)
        # Spikes are rare: find them with an integer compare, then touch only those values.
        spike = np.nonzero((aux & np.uint64(0xFFFF)) < np.uint64(round(SPIKE_PROBABILITY * 65536)))
        if len(spike[0]):
            low, high = SPIKE_SIZE
            size = low + (high - low) * hashing.bits_uniform(aux[spike], 16, 16)
            demand[spike] += np.broadcast_to(design, demand.shape)[spike] * size

        flags = np.zeros(demand.shape, dtype=np.uint8)
        volt_scale = np.ones(demand.shape)
        drawing = np.ones(demand.shape)  # the share of the interval the site draws power
        effects = self.effects
        if effects.outages:
            dark = overlap_seconds(effects.outages, rows, t)
            powered = 1.0 - dark / INTERVAL_SECONDS
            demand = demand * powered
            drawing = powered
            flags |= np.where(dark > 0, FLAG_BITS["power_fail"], 0).astype(np.uint8)
            partial = (dark > 0) & (dark < INTERVAL_SECONDS)
            flags |= np.where(partial, FLAG_BITS["partial"], 0).astype(np.uint8)
            # Averaged over the interval the dark part reads 0 V, and the grid sags around it.
            volt_scale = powered * np.where(partial, 1.0 - RESTORE_SAG, 1.0)
        if effects.tamper:
            hit = overlap_seconds(effects.tamper, rows, t) > 0
            flags |= np.where(hit, FLAG_BITS["tamper"], 0).astype(np.uint8)
        if effects.reverse:
            hit = overlap_seconds(effects.reverse, rows, t) > 0
            # Energy running backwards is not delivered energy: the register does not advance.
            demand = np.where(hit, 0.0, demand)
            drawing = np.where(hit, 0.0, drawing)
            flags |= np.where(hit, FLAG_BITS["reverse_rotation"], 0).astype(np.uint8)

        demand_kw = np.round(demand, 3)
        energy = demand * HOURS_PER_INTERVAL
        kwh = np.round(energy, 3)
        # Q = tan_phi * (fixed share of Q at the mean load + the rest in step with P), so at
        # the mean load Q / P = tan_phi and a period's PF stays the meter's power_factor.
        fixed = REACTIVE_FIXED * self.mean_kw[rows] * HOURS_PER_INTERVAL * drawing
        kvarh = np.round(self.tan_phi[rows] * (fixed + (1.0 - REACTIVE_FIXED) * energy), 3)
        # |bias| <= 1 %, load sag <= 1.2 %, noise <= 0.8 V: inside VOLTAGE_TOLERANCE at 120 V.
        vbase = (
            self.phase_volts[rows]
            * (1.0 + self.volt_bias[rows] - LOAD_SAG * np.minimum(frac, 1.2))
            * volt_scale
        )
        # Per-phase noise of -0.8..+0.7 V in whole decivolts from the top 4 bits of three
        # 16-bit fields; dividing whole decivolts by 10 gives the shortest float repr.
        decivolts = np.rint(vbase * 10.0) - 8.0
        volts = ((_u16(aux)[..., 1:] >> np.uint16(12)) + decivolts[..., None]) / 10.0
        if effects.outages:
            # A dark interval reads 0 V, not the noise around zero.
            volts = np.where((volt_scale > 0.0)[..., None], np.maximum(volts, 0.0), 0.0)
        if self.two_phase.any():
            # No phase C on a two-element meter: NaN here, left out of its readings.
            volts[..., 2] = np.where(self.two_phase[rows], np.nan, volts[..., 2])
        return Block(
            interval=np.broadcast_to(t, demand.shape),
            rows=np.broadcast_to(rows, demand.shape),
            kwh=kwh,
            kvarh=kvarh,
            demand_kw=demand_kw,
            voltage=volts,
            flags=flags,
            temperature_c=temp[region, tcol] if temperature else np.empty(0),
        )

    def block(
        self,
        first: int,
        count: int,
        rows: NDArray[np.intp] | None = None,
        *,
        temperature: bool = False,
    ) -> Block:
        """Return `count` consecutive intervals from `first` for `rows` (default all), rows x time."""
        rows = np.arange(len(self), dtype=np.intp) if rows is None else rows
        t = np.arange(first, first + count, dtype=np.int64)
        return self.compute(t[None, :], rows[:, None], temperature=temperature)

    def readings_for(self, intervals: NDArray[np.int64], rows: NDArray[np.intp]) -> list[Reading]:
        """Return one Reading per (interval, row) pair."""
        intervals, rows = np.broadcast_arrays(np.asarray(intervals), np.asarray(rows))
        if intervals.size == 0:
            return []
        return to_readings(self.compute(intervals.ravel(), rows.ravel()))

    def interval(self, start: datetime) -> list[Reading]:
        """Return every meter's reading for the interval beginning at `start`."""
        rows = np.arange(len(self), dtype=np.intp)
        return self.readings_for(np.full(len(self), interval_index(start), dtype=np.int64), rows)


def to_readings(block: Block, extra_flags: int = 0) -> list[Reading]:
    """Convert a flat Block into contract Readings (optionally adding flag bits to each)."""
    starts: dict[int, datetime] = {}
    out: list[Reading] = []
    for i, e, q, d, v, f in zip(
        block.interval.ravel().tolist(),
        block.kwh.ravel().tolist(),
        block.kvarh.ravel().tolist(),
        block.demand_kw.ravel().tolist(),
        block.voltage.reshape(-1, 3).tolist(),
        block.flags.ravel().tolist(),
        strict=True,
    ):
        start = starts.get(i)
        if start is None:
            start = starts[i] = interval_start(i)
        out.append(
            Reading(
                start=start,
                kwh=e,
                kvarh=q,
                demand_kw=d,
                voltage=tuple(v) if v[2] == v[2] else (v[0], v[1]),  # NaN: no phase C
                flags=FLAGSETS[f | extra_flags],
            )
        )
    return out


def interval_readings(meters: Sequence[Meter], start: datetime, seed: int) -> list[Reading]:
    """Return one reading per meter for the 15-minute interval beginning at `start`."""
    return FleetArrays.build(meters, seed).interval(start)


def meter_readings(meter: Meter, start: datetime, count: int, seed: int) -> list[Reading]:
    """Return `count` consecutive readings of one meter from the interval beginning at `start`."""
    first = interval_index(start)
    arrays = FleetArrays.build([meter], seed)
    intervals = np.arange(first, first + count, dtype=np.int64)
    return arrays.readings_for(intervals, np.zeros(count, dtype=np.intp))
