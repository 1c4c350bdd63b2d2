"""The load model: vectorized 15-minute demand, energy, reactive energy and voltage per meter.

Pure (numpy + the telemetry contract). Every value is a counter-based hash of
(seed, meter.index, interval index, channel), so a reading does not depend on call order,
on which other meters are in the batch, or on how big the fleet is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from app.domain.telemetry import INTERVAL_SECONDS, Reading
from simulator.fleet import BUILDING_TYPES, UTILITY_BY_ID, Meter

SLOTS_PER_DAY: Final = 86_400 // INTERVAL_SECONDS
HOURS_PER_INTERVAL: Final = INTERVAL_SECONDS / 3600
INTERVAL: Final = timedelta(seconds=INTERVAL_SECONDS)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# Fixed standard-time offsets for now (no DST): enough to put office hours in daylight.
REGION_UTC_OFFSET_HOURS: Final = {
    "Midwest": -5,  # Great Lakes / Detroit is Eastern time
    "Northeast": -5,
    "New England": -5,
    "Mid-Atlantic": -5,
    "Great Plains": -6,
    "Mountain West": -7,
    "Pacific Northwest": -8,
}

# Noise sizes: small enough that the weekly maximum stays near the meter's peak_kw.
NOISE_SIGMA: Final = 0.02
DAY_FACTOR_RANGE: Final = (0.92, 1.0)
VOLTAGE_TOLERANCE: Final = 0.02
# A profile's swing is capped so even the peakiest site keeps some base load.
MIN_DEPTH, MAX_DEPTH = 0.05, 0.92
# Day-to-day variation lowers the average and noise lifts the maximum; aiming the noiseless
# shape a little higher makes the *measured* average/peak land near the meter's load factor.
LOAD_FACTOR_BIAS: Final = 1.06
JITTER_SLOTS: Final = 3  # sites open up to 45 minutes earlier or later than the type's norm

_M64: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15

# Hash channels: one per independent random quantity.
_CH_JITTER, _CH_VBIAS, _CH_DAY, _CH_NOISE_U1, _CH_NOISE_U2, _CH_VOLT = range(1, 7)

Knots = tuple[tuple[float, float], ...]

_ZERO: Final[Knots] = ((0, 0), (24, 0))
_OFFICE_WD: Final[Knots] = (
    (0, 0), (5.5, 0), (8, 0.85), (12, 0.95), (15, 1.0), (17, 0.9), (19, 0.15), (21, 0), (24, 0),
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
# Two shifts on weekdays (a half shift on Saturday) over a small night load.
_MANUFACTURING_WD: Final[Knots] = (
    (0, 0.05), (5, 0.05), (6, 0.95), (14, 1.0), (14.5, 0.9), (22, 0.95), (23, 0.05), (24, 0.05),
)  # fmt: skip
# Hospitals and data centres run all night; the daytime bump is cooling and clinics.
_HOSPITAL: Final[Knots] = ((0, 0), (6, 0), (10, 0.8), (14, 1.0), (18, 0.8), (22, 0), (24, 0))
_DATA_CENTER: Final[Knots] = ((0, 0), (8, 0), (14, 1.0), (20, 0), (24, 0))

# Per building type: (weekday, saturday, sunday) occupancy curves, 0 = base load, 1 = peak,
# as (local hour, level) knots joined by straight lines.
PROFILES: Final[dict[str, tuple[Knots, Knots, Knots]]] = {
    "small_office": (_OFFICE_WD, _OFFICE_SAT, _ZERO),
    "large_office": (_OFFICE_WD, _OFFICE_SAT, _ZERO),
    "federal_office": (_OFFICE_WD, _ZERO, _ZERO),
    "school": (_SCHOOL_WD, _ZERO, _ZERO),
    "retail": (
        _RETAIL,
        _RETAIL,
        ((0, 0), (9, 0), (11, 0.75), (17, 0.8), (18.5, 0), (24, 0)),
    ),
    "supermarket": (_SUPERMARKET, _SUPERMARKET, tuple((h, 0.9 * v) for h, v in _SUPERMARKET)),
    "hospital": (
        _HOSPITAL,
        tuple((h, 0.6 * v) for h, v in _HOSPITAL),
        tuple((h, 0.6 * v) for h, v in _HOSPITAL),
    ),
    "data_center": (_DATA_CENTER, _DATA_CENTER, _DATA_CENTER),
    "manufacturing": (
        _MANUFACTURING_WD,
        ((0, 0), (5.5, 0), (6.5, 0.6), (13.5, 0.6), (14.5, 0), (24, 0)),
        _ZERO,
    ),
    "warehouse": (
        ((0, 0), (5, 0), (6.5, 0.9), (12, 1.0), (17, 0.9), (18.5, 0), (24, 0)),
        ((0, 0), (7, 0), (8, 0.3), (13, 0.3), (14, 0), (24, 0)),
        _ZERO,
    ),
}
_TYPE_CODES: Final = tuple(BUILDING_TYPES)


def _curve(knots: Knots) -> NDArray[np.float64]:
    hours = (np.arange(SLOTS_PER_DAY) + 0.5) * HOURS_PER_INTERVAL
    curve: NDArray[np.float64] = np.interp(hours, [h for h, _ in knots], [v for _, v in knots])
    return curve


def _build_shapes() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # shapes[type, daytype, slot] with daytype 0 = Mon-Fri, 1 = Sat, 2 = Sun.
    shapes = np.zeros((len(_TYPE_CODES), 3, SLOTS_PER_DAY))
    for t, code in enumerate(_TYPE_CODES):
        for d, knots in enumerate(PROFILES[code]):
            shapes[t, d] = _curve(knots)
    weekly_mean = (
        5 * shapes[:, 0].mean(axis=1) + shapes[:, 1].mean(axis=1) + shapes[:, 2].mean(axis=1)
    ) / 7
    return shapes, weekly_mean


SHAPES, WEEKLY_MEAN = _build_shapes()
# Monday = 0; 1970-01-01 was a Thursday.
_DAYTYPE_BY_WEEKDAY: Final = np.array([0, 0, 0, 0, 0, 1, 2])


def utc_offset_hours(utility_id: str) -> int:
    """Return the fixed UTC offset (hours) used as local time for a utility's meters."""
    utility = UTILITY_BY_ID[utility_id]
    return REGION_UTC_OFFSET_HOURS.get(utility.region, round(utility.lon / 15))


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


# ---------------------------------------------------------------- hashing


def _mix_int(x: int) -> int:
    # splitmix64 finalizer on Python ints: exact and free of numpy scalar-overflow warnings.
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # Same finalizer on arrays; array arithmetic wraps modulo 2**64 silently, as wanted.
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(
    seed: int, channel: int, index: NDArray[np.uint64], time: NDArray[np.int64] | int = 0
) -> NDArray[np.float64]:
    """Return uniforms in [0, 1) keyed by (seed, channel, meter index, time)."""
    key = _mix_int(_mix_int(seed & _M64) ^ channel)
    # 1-d arrays throughout: numpy *scalar* arithmetic would warn on the intended wrap-around.
    t = np.atleast_1d(np.asarray(time, dtype=np.int64)).astype(np.uint64)
    keys = np.array([key], dtype=np.uint64)
    h = _mix(_mix(keys ^ (t * np.uint64(_GOLDEN))) ^ np.atleast_1d(index))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class FleetArrays:
    """Per-meter model parameters as arrays, built once per fleet and seed."""

    seed: int
    index: NDArray[np.uint64]
    type_idx: NDArray[np.intp]
    shift_slots: NDArray[np.int64]
    peak_kw: NDArray[np.float64]
    depth: NDArray[np.float64]
    tan_phi: NDArray[np.float64]
    phase_volts: NDArray[np.float64]
    volt_bias: NDArray[np.float64]

    @classmethod
    def build(cls, meters: Sequence[Meter], seed: int) -> FleetArrays:
        """Gather the meters' static parameters into arrays."""
        index = np.array([m.index for m in meters], dtype=np.uint64)
        type_idx = np.array([_TYPE_CODES.index(m.building_type) for m in meters], dtype=np.intp)
        offsets = np.array([utc_offset_hours(m.utility_id) for m in meters], dtype=np.int64)
        jitter = np.floor(_uniform(seed, _CH_JITTER, index) * (2 * JITTER_SLOTS + 1)).astype(
            np.int64
        )
        load_factor = np.array([m.load_factor for m in meters], dtype=np.float64)
        load_factor = np.minimum(load_factor * LOAD_FACTOR_BIAS, 0.99)
        # demand/peak = 1 - depth * (1 - shape) has weekly mean 1 - depth * (1 - mean(shape)),
        # so this depth makes the average/peak ratio the meter's load factor.
        depth = np.clip((1 - load_factor) / (1 - WEEKLY_MEAN[type_idx]), MIN_DEPTH, MAX_DEPTH)
        pf = np.array([m.power_factor for m in meters], dtype=np.float64)
        return cls(
            seed=seed,
            index=index,
            type_idx=type_idx,
            shift_slots=offsets * (3600 // INTERVAL_SECONDS) + jitter - JITTER_SLOTS,
            peak_kw=np.array([m.peak_kw for m in meters], dtype=np.float64),
            depth=depth,
            tan_phi=np.tan(np.arccos(np.clip(pf, 0.01, 1.0))),
            phase_volts=np.array([m.phase_volts for m in meters], dtype=np.float64),
            volt_bias=(_uniform(seed, _CH_VBIAS, index) - 0.5) * 0.02,
        )

    def __len__(self) -> int:
        """Return the number of meters."""
        return len(self.index)

    def demand_kw(
        self, intervals: NDArray[np.int64], rows: NDArray[np.intp]
    ) -> NDArray[np.float64]:
        """Return the average kW of meter `rows[k]` over interval `intervals[k]` (broadcast)."""
        index = self.index[rows]
        local = intervals + self.shift_slots[rows]
        day = local // SLOTS_PER_DAY
        daytype = _DAYTYPE_BY_WEEKDAY[(day + 3) % 7]
        shape = SHAPES[self.type_idx[rows], daytype, local % SLOTS_PER_DAY]
        frac = 1.0 - self.depth[rows] * (1.0 - shape)
        low, high = DAY_FACTOR_RANGE
        day_factor = low + (high - low) * _uniform(self.seed, _CH_DAY, index, day)
        u1 = 1.0 - _uniform(self.seed, _CH_NOISE_U1, index, intervals)  # (0, 1]: log is finite
        u2 = _uniform(self.seed, _CH_NOISE_U2, index, intervals)
        z = np.clip(np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2), -3.0, 3.0)
        result: NDArray[np.float64] = (
            self.peak_kw[rows] * frac * day_factor * (1.0 + NOISE_SIGMA * z)
        )
        return result

    def voltage(
        self, intervals: NDArray[np.int64], rows: NDArray[np.intp], frac: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Return per-phase volts, shape (n, 3): a site bias, a load-dependent sag and noise."""
        index = self.index[rows]
        phases = [_uniform(self.seed, _CH_VOLT + 8 * p, index, intervals) - 0.5 for p in range(3)]
        noise = np.stack(phases, axis=-1) * 0.01
        rel = self.volt_bias[rows, None] - 0.008 * frac[..., None] + noise
        rel = np.clip(rel, -VOLTAGE_TOLERANCE, VOLTAGE_TOLERANCE)
        result: NDArray[np.float64] = self.phase_volts[rows, None] * (1.0 + rel)
        return result

    def readings_for(self, intervals: NDArray[np.int64], rows: NDArray[np.intp]) -> list[Reading]:
        """Return one Reading per (interval, row) pair."""
        intervals, rows = np.broadcast_arrays(intervals, rows)
        demand = self.demand_kw(intervals, rows)
        kwh = demand * HOURS_PER_INTERVAL
        kvarh = kwh * self.tan_phi[rows]
        volts = self.voltage(intervals, rows, demand / self.peak_kw[rows])
        starts: dict[int, datetime] = {}
        out: list[Reading] = []
        for i, d, e, q, v in zip(
            intervals.tolist(),
            demand.tolist(),
            kwh.tolist(),
            kvarh.tolist(),
            volts.tolist(),
            strict=True,
        ):
            start = starts.get(i)
            if start is None:
                start = starts[i] = interval_start(i)
            out.append(Reading(start=start, kwh=e, kvarh=q, demand_kw=d, voltage=tuple(v)))
        return out

    def interval(self, start: datetime) -> list[Reading]:
        """Return every meter's reading for the interval beginning at `start`."""
        rows = np.arange(len(self), dtype=np.intp)
        return self.readings_for(np.full(len(self), interval_index(start), dtype=np.int64), rows)


def interval_readings(meters: Sequence[Meter], start: datetime, seed: int) -> list[Reading]:
    """Return one reading per meter for the 15-minute interval beginning at `start`."""
    return FleetArrays.build(meters, seed).interval(start)


def meter_readings(meter: Meter, start: datetime, count: int, seed: int) -> list[Reading]:
    """Return `count` consecutive readings of one meter from the interval beginning at `start`."""
    first = interval_index(start)
    arrays = FleetArrays.build([meter], seed)
    intervals = np.arange(first, first + count, dtype=np.int64)
    return arrays.readings_for(intervals, np.zeros(count, dtype=np.intp))
