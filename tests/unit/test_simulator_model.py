"""Unit tests for the simulator's pure core: load model and clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.domain.telemetry import (
    IntervalMessage,
    decode_interval,
    encode_interval,
)
from simulator.clock import SimClock
from simulator.fleet import Meter, build_fleet, make_meter
from simulator.incidents import Incident, effects_of
from simulator.model import (
    FleetArrays,
    interval_index,
    interval_readings,
    meter_readings,
    utc_offset_hours,
)

SEED = 42
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
WEEK = 96 * 7
STEP = timedelta(minutes=15)


def first_of_type(building_type: str, seed: int = SEED) -> Meter:
    """Return the lowest-index meter of a building type."""
    return next(m for m in build_fleet(400, seed) if m.building_type == building_type)


def local(meter: Meter, day: datetime, hour: int) -> datetime:
    """Return the UTC instant of `hour` on the meter's clocks on `day` (DST included)."""
    standard = day + timedelta(hours=hour - utc_offset_hours(meter.utility_id))
    return day + timedelta(hours=hour - utc_offset_hours(meter.utility_id, standard))


def demand_at(meter: Meter, start: datetime) -> float:
    """Return the meter's demand for one interval."""
    return interval_readings([meter], start, SEED)[0].demand_kw


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_same_readings() -> None:
    fleet = build_fleet(30, SEED)
    start = MONDAY + timedelta(hours=15)
    assert interval_readings(fleet, start, SEED) == interval_readings(fleet, start, SEED)


def test_different_seed_gives_different_readings() -> None:
    fleet = build_fleet(30, SEED)
    start = MONDAY + timedelta(hours=15)
    a = interval_readings(fleet, start, SEED)
    b = interval_readings(fleet, start, SEED + 1)
    assert sum(x.demand_kw != y.demand_kw for x, y in zip(a, b, strict=True)) >= 28


def test_meter_unchanged_when_fleet_grows_or_order_changes() -> None:
    start = MONDAY + timedelta(days=2, hours=9, minutes=45)
    small = interval_readings(build_fleet(5, SEED), start, SEED)
    big = build_fleet(500, SEED)
    grown = interval_readings(big, start, SEED)
    reversed_ = interval_readings(big[::-1], start, SEED)[::-1]
    alone = interval_readings([big[3]], start, SEED)
    assert grown[:5] == small
    assert reversed_ == grown
    assert alone[0] == small[3]


def test_series_and_fleet_views_agree() -> None:
    meter = make_meter(7, SEED)
    series = meter_readings(meter, MONDAY, 8, SEED)
    for k, reading in enumerate(series):
        assert interval_readings([meter], MONDAY + k * timedelta(minutes=15), SEED)[0] == reading


def test_start_must_be_on_grid_and_aware() -> None:
    with pytest.raises(ValueError, match="grid"):
        interval_readings(build_fleet(1, SEED), MONDAY + timedelta(minutes=7), SEED)
    with pytest.raises(ValueError, match="aware"):
        interval_index(datetime(2026, 3, 2))  # noqa: DTZ001 - the point of the test


# ---------------------------------------------------------------- shape and contract


def test_office_weekday_afternoon_exceeds_sunday_night() -> None:
    office = first_of_type("small_office")
    sunday = MONDAY + timedelta(days=6)
    assert demand_at(office, local(office, MONDAY + timedelta(days=1), 14)) > 1.4 * demand_at(
        office, local(office, sunday, 3)
    )


def test_hospital_runs_all_night() -> None:
    hospital = first_of_type("hospital")
    tuesday = MONDAY + timedelta(days=1)
    night = demand_at(hospital, local(hospital, tuesday, 3))
    day = demand_at(hospital, local(hospital, tuesday, 14))
    assert night / day > 0.5


def test_readings_satisfy_the_contract() -> None:
    fleet = build_fleet(40, SEED)
    start = MONDAY + timedelta(hours=20)
    for meter, reading in zip(fleet, interval_readings(fleet, start, SEED), strict=True):
        message = IntervalMessage(meter.id, (reading,), sent_at=start + timedelta(minutes=15))
        decoded = decode_interval(encode_interval(message), meter.id)
        assert decoded.readings[0].start == start
        assert reading.flags == frozenset()
        assert reading.kwh == pytest.approx(reading.demand_kw * 0.25, abs=0.0011)
        # A 12S is a two-element network meter: phases A and B only.
        assert len(reading.voltage) == meter.phases == (2 if meter.form_factor == "12S" else 3)
        assert decoded.readings[0].voltage == reading.voltage
        for volts in reading.voltage:
            assert volts == pytest.approx(meter.phase_volts, rel=0.031)


def test_a_years_power_factor_is_the_meters() -> None:
    """Over a year each meter's PF (energy-weighted, as a bill reads it) is its power_factor.

    A week's is within about 0.02 of it: a cold or a quiet week runs below the mean load.
    """
    fleet = build_fleet(60, SEED)
    arrays = FleetArrays.build(fleet, SEED)
    first = interval_index(datetime(2026, 1, 1, tzinfo=UTC))
    kwh, kvarh = np.zeros(len(fleet)), np.zeros(len(fleet))
    worst_week = 0.0
    for week in range(52):
        block = arrays.block(first + week * 7 * 96, 7 * 96)
        p, q = block.kwh.sum(axis=1), block.kvarh.sum(axis=1)
        kwh, kvarh = kwh + p, kvarh + q
        nominal = np.array([m.power_factor for m in fleet])
        worst_week = max(worst_week, float(np.abs(p / np.hypot(p, q) - nominal).max()))
    for meter, p, q in zip(fleet, kwh.tolist(), kvarh.tolist(), strict=True):
        assert p / math.hypot(p, q) == pytest.approx(meter.power_factor, abs=1e-3), meter.id
    assert 0.002 < worst_week < 0.025


def test_power_factor_sags_at_light_load_and_rises_at_the_peak() -> None:
    """Part of the reactive load (magnetising current, idling motors) does not follow the load."""
    fleet = build_fleet(40, SEED)
    day = FleetArrays.build(fleet, SEED).block(interval_index(MONDAY + timedelta(days=1)), 96)
    for k, meter in enumerate(fleet):
        light, peak = int(day.kwh[k].argmin()), int(day.kwh[k].argmax())
        if day.kwh[k, peak] < 1.5 * day.kwh[k, light]:
            continue  # a flat load (a data centre) has no light hours
        pf = day.kwh[k] / np.hypot(day.kwh[k], day.kvarh[k])
        assert pf[light] < meter.power_factor < pf[peak], meter.id


def test_a_dark_interval_reads_no_reactive_energy_either() -> None:
    """While the power is off the site draws neither kWh nor kVArh."""
    meter = first_of_type("small_office")
    start = MONDAY + timedelta(hours=10)
    backwards = MONDAY + timedelta(hours=12)
    effects = effects_of(
        [
            Incident("outage", "storm", start, start + timedelta(minutes=30), np.ones(1, bool)),
            Incident("reverse_rotation", "wired backwards", backwards, None, np.ones(1, bool)),
        ]
    )
    arrays = FleetArrays.build([meter], SEED, effects)
    for first in (start, backwards):
        dark = arrays.block(interval_index(first), 2)
        assert dark.kwh.tolist() == [[0.0, 0.0]]
        assert dark.kvarh.tolist() == [[0.0, 0.0]]
    lit = arrays.block(interval_index(start) + 2, 1)
    assert lit.kvarh[0, 0] > 0


def test_fleet_arrays_handle_ten_thousand_meters() -> None:
    arrays = FleetArrays.build(build_fleet(10_000, SEED), SEED)
    readings = arrays.interval(MONDAY)
    assert len(readings) == 10_000
    assert all(r.demand_kw > 0 for r in readings)


# ---------------------------------------------------------------- clock


def test_clock_maps_wall_time_to_sim_time() -> None:
    clock = SimClock(MONDAY, speed=900.0, wall_start=1000.0)
    assert clock.now(1000.0) == MONDAY
    assert clock.now(1001.0) == MONDAY + timedelta(minutes=15)
    assert clock.now(1096.0) == MONDAY + timedelta(days=1)
    assert clock.wall_at(MONDAY + timedelta(hours=1)) == pytest.approx(1004.0)


@pytest.mark.parametrize(
    ("start", "speed"),
    [(datetime(2026, 3, 2), 1.0), (MONDAY, 0.0), (MONDAY, -5.0)],  # noqa: DTZ001
)
def test_clock_rejects_bad_parameters(start: datetime, speed: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - either message is fine
        SimClock(start, speed, 0.0)


def test_buildings_keep_clock_time_across_the_change_to_daylight_time() -> None:
    """An office's evening looks the same on the Friday before and the Tuesday after.

    Occupancy used standard time all year: from the second Sunday of March the whole
    profile moved an hour late on the portal's clock (08:00 looked like 07:00, 19:00 like
    18:00 while people were still in), for eight months of the year.
    """
    meter = first_of_type("large_office")
    ratios = []
    for day in (datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)):
        evening = [demand_at(meter, local(meter, day, 19) + k * STEP) for k in range(4)]
        noon = [demand_at(meter, local(meter, day, 12) + k * STEP) for k in range(4)]
        ratios.append(sum(evening) / sum(noon))
    assert utc_offset_hours(meter.utility_id, datetime(2026, 3, 10, 16, tzinfo=UTC)) == (
        utc_offset_hours(meter.utility_id) + 1
    )
    assert ratios[1] == pytest.approx(ratios[0], abs=0.1), ratios
