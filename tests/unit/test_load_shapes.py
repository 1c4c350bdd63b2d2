"""Load shapes over a simulated year: survey magnitudes, calendar, weather, spikes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

import numpy as np
import pytest
from numpy.typing import NDArray

from simulator import model
from simulator.calendar import federal_holidays
from simulator.fleet import Meter, build_fleet
from simulator.model import Effects, FleetArrays, interval_index, profile_code
from simulator.weather import REGION_INDEX, HeatSpell, temperature_table

SEED = 42
YEAR_START = interval_index(datetime(2026, 1, 1, tzinfo=UTC))
YEAR = 365 * 96

# Survey ranges the simulated year must land in (DOMAIN.md: small office ~20-30 kW peak,
# large office 1.5-2.5 MW, hospital ~1 MW and ~7.7 GWh/yr, office load factor 40-60 %,
# hospital and continuous industry 70-90 %; the other types from CBECS/MECS-style figures:
# food sales ~49 kWh/ft2 on 30-65k ft2, schools peaky and closed in summer, data centres flat).
# (peak kW low, high), (load factor low, high), (annual MWh low, high)
SURVEY: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "small_office": ((20, 30), (0.40, 0.60), (70, 160)),
    "large_office": ((1500, 2500), (0.40, 0.60), (5_300, 13_000)),
    "federal_office": ((350, 1200), (0.40, 0.60), (1_200, 6_300)),
    "hospital": ((900, 1100), (0.70, 0.90), (7_000, 8_000)),
    "retail": ((50, 250), (0.40, 0.60), (175, 1_300)),
    "supermarket": ((200, 500), (0.60, 0.80), (1_300, 3_500)),
    "school": ((120, 400), (0.25, 0.45), (260, 1_580)),
    "warehouse": ((60, 300), (0.30, 0.55), (160, 1_450)),
    "manufacturing_1": ((400, 3000), (0.30, 0.50), (1_050, 13_000)),
    "manufacturing_2": ((400, 3000), (0.45, 0.70), (1_600, 18_400)),
    "manufacturing_3": ((400, 3000), (0.70, 0.90), (2_450, 23_700)),
    "data_center": ((700, 2000), (0.80, 0.95), (4_900, 16_700)),
}


@pytest.fixture(scope="module")
def year() -> tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]]:
    """Simulate 2026 for 600 meters; return (meters, demand kW, kWh) as meters x intervals."""
    fleet = build_fleet(600, SEED)
    arrays = FleetArrays.build(fleet, SEED)
    demand, kwh = [], []
    for lo in range(0, len(fleet), 100):
        block = arrays.block(YEAR_START, YEAR, np.arange(lo, min(lo + 100, len(fleet))))
        demand.append(block.demand_kw)
        kwh.append(block.kwh)
    return fleet, np.concatenate(demand), np.concatenate(kwh)


def test_every_type_and_shift_pattern_is_simulated(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]],
) -> None:
    fleet, _, _ = year
    counts: dict[str, int] = defaultdict(int)
    for m in fleet:
        counts[profile_code(m)] += 1
    assert set(counts) == set(SURVEY)
    assert min(counts.values()) >= 5


@pytest.mark.parametrize("profile", sorted(SURVEY))
def test_annual_peak_load_factor_and_energy_match_surveys(
    profile: str, year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]]
) -> None:
    fleet, demand, kwh = year
    rows = [i for i, m in enumerate(fleet) if profile_code(m) == profile]
    (p_lo, p_hi), (lf_lo, lf_hi), (e_lo, e_hi) = SURVEY[profile]
    peak = demand[rows].max(axis=1)
    load_factor = demand[rows].mean(axis=1) / peak
    annual_mwh = kwh[rows].sum(axis=1) / 1000
    assert p_lo <= peak.min(), peak.min()
    assert peak.max() <= p_hi, peak.max()
    assert lf_lo <= load_factor.min(), load_factor.min()
    assert load_factor.max() <= lf_hi, load_factor.max()
    assert e_lo <= annual_mwh.min(), annual_mwh.min()
    assert annual_mwh.max() <= e_hi, annual_mwh.max()
    # Energy and demand are one measurement: kWh = average kW x 0.25 h (to rounding).
    assert np.abs(kwh[rows] - demand[rows] * 0.25).max() <= 0.0011


def test_measured_peak_and_load_factor_track_each_meters_design(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]],
) -> None:
    fleet, demand, _ = year
    peak = demand.max(axis=1)
    lf = demand.mean(axis=1) / peak
    design_peak = np.array([m.peak_kw for m in fleet])
    design_lf = np.array([m.load_factor for m in fleet])
    assert np.all(np.abs(peak / design_peak - 1) < 0.15)
    assert np.all(np.abs(lf / design_lf - 1) < 0.15)
    assert np.median(np.abs(lf / design_lf - 1)) < 0.05


def test_federal_holidays_2026_observed_dates() -> None:
    assert federal_holidays(2026) == [
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),  # July 4 is a Saturday: observed Friday
        date(2026, 9, 7),
        date(2026, 10, 12),
        date(2026, 11, 11),
        date(2026, 11, 26),
        date(2026, 12, 25),
    ]
    assert date(2021, 12, 31) in federal_holidays(2022)  # New Year 2022 fell on a Saturday
    assert date(2020, 6, 19) not in federal_holidays(2020)  # Juneteenth from 2021


def _daily_kwh(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]], row: int, day: date
) -> float:
    fleet, _, kwh = year
    midday = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    offset = model.utc_offset_hours(fleet[row].utility_id, midday)  # the day's clock time
    first = interval_index(datetime(day.year, day.month, day.day, tzinfo=UTC)) - offset * 4
    return float(kwh[row, first - YEAR_START : first - YEAR_START + 96].sum())


def _first(year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]], profile: str) -> int:
    return next(i for i, m in enumerate(year[0]) if profile_code(m) == profile)


def test_offices_close_on_federal_holidays_and_stores_only_on_two(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]],
) -> None:
    """Stores ran a normal day on Christmas (2,776 kWh against 2,712 on a Wednesday)."""
    thanksgiving, week_before = date(2026, 11, 26), date(2026, 11, 19)
    office = _first(year, "federal_office")
    retail = _first(year, "retail")
    assert _daily_kwh(year, office, thanksgiving) < 0.75 * _daily_kwh(year, office, week_before)
    # Open for the Labor Day sales, closed on Thanksgiving and Christmas Day.
    labor_day, monday_before = date(2026, 9, 7), date(2026, 8, 31)
    assert _daily_kwh(year, retail, labor_day) > 0.85 * _daily_kwh(year, retail, monday_before)
    for closed, before in ((thanksgiving, week_before), (date(2026, 12, 25), date(2026, 12, 18))):
        assert _daily_kwh(year, retail, closed) < 0.75 * _daily_kwh(year, retail, before)


def test_weekends_and_shifts_shape_the_week(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]],
) -> None:
    tuesday, sunday = date(2026, 4, 14), date(2026, 4, 19)
    for profile in ("small_office", "school", "manufacturing_1"):
        row = _first(year, profile)
        assert _daily_kwh(year, row, sunday) < 0.8 * _daily_kwh(year, row, tuesday), profile
    for profile in ("hospital", "data_center"):
        row = _first(year, profile)
        assert _daily_kwh(year, row, sunday) > 0.85 * _daily_kwh(year, row, tuesday), profile
    fleet, demand, _ = year
    one, three = _first(year, "manufacturing_1"), _first(year, "manufacturing_3")
    for row, low, high in ((one, 0.0, 0.6), (three, 0.8, 1.05)):
        offset = model.utc_offset_hours(
            fleet[row].utility_id, datetime(2026, 4, 14, 12, tzinfo=UTC)
        )
        base = interval_index(datetime(2026, 4, 14, tzinfo=UTC)) - offset * 4 - YEAR_START
        night = demand[row, base + 4 * 2]  # 02:00 local
        day = demand[row, base + 4 * 10]  # 10:00 local
        assert low <= night / day <= high


def test_schools_empty_out_in_summer_and_winter_breaks(
    year: tuple[list[Meter], NDArray[np.float64], NDArray[np.float64]],
) -> None:
    school = _first(year, "school")
    may, july = date(2026, 5, 12), date(2026, 7, 14)
    assert _daily_kwh(year, school, july) < 0.8 * _daily_kwh(year, school, may)
    # And over the winter holidays (a Wednesday in the break against one in term).
    term, winter_break = date(2026, 12, 9), date(2026, 12, 30)
    assert _daily_kwh(year, school, winter_break) < 0.8 * _daily_kwh(year, school, term)
    assert _daily_kwh(year, school, date(2026, 1, 7)) > 0.9 * _daily_kwh(year, school, term)


def test_temperatures_have_seasons_days_and_regional_climates() -> None:
    table = temperature_table(SEED, YEAR_START, YEAR)
    jan, jul = slice(0, 31 * 96), slice(181 * 96, 212 * 96)
    for region, i in REGION_INDEX.items():
        assert table[i, jul].mean() - table[i, jan].mean() > 10, region
        day = table[i].reshape(365, 96)
        # Afternoon (15-16 h local) is warmer than before dawn (4-5 h) on most days.
        assert (day[:, 80:84].mean(axis=1) > day[:, 36:40].mean(axis=1)).mean() > 0.5, region
    pnw, plains = REGION_INDEX["Pacific Northwest"], REGION_INDEX["Great Plains"]
    assert np.ptp(table[plains]) > np.ptp(table[pnw])
    # The same seed gives the same weather; another seed other weather.
    assert np.array_equal(table, temperature_table(SEED, YEAR_START, YEAR))
    assert not np.array_equal(table, temperature_table(SEED + 1, YEAR_START, YEAR))


def test_hot_weather_raises_cooling_load() -> None:
    fleet = [m for m in build_fleet(300, SEED) if m.building_type == "large_office"][:5]
    region = REGION_INDEX["Midwest"]
    start = interval_index(datetime(2026, 7, 14, tzinfo=UTC))
    spell = HeatSpell(region, start + 96, start + 192, 8.0)
    plain = FleetArrays.build(fleet, SEED)
    hot = FleetArrays.build(fleet, SEED, Effects(heat=(spell,)))
    a, b = plain.block(start, 288, temperature=True), hot.block(start, 288, temperature=True)
    midwest = np.array([model.UTILITY_BY_ID[m.utility_id].region == "Midwest" for m in fleet])
    assert midwest.any()
    assert np.array_equal(a.demand_kw[:, :96], b.demand_kw[:, :96])
    assert np.array_equal(a.demand_kw[:, 192:], b.demand_kw[:, 192:])
    assert np.all(b.demand_kw[midwest, 96:192] >= a.demand_kw[midwest, 96:192])
    assert b.demand_kw[midwest, 96:192].sum() > 1.05 * a.demand_kw[midwest, 96:192].sum()
    assert np.array_equal(a.demand_kw[~midwest], b.demand_kw[~midwest])
    # At least 8 C hotter (more where the day was cooler than midsummer's normal).
    assert np.all(b.temperature_c[midwest, 96:192] >= a.temperature_c[midwest, 96:192] + 8.0)


def test_a_heat_wave_in_winter_still_raises_demand() -> None:
    """A presenter's heat wave in December only took 7 C off the heating load: no peak."""
    fleet = [m for m in build_fleet(300, SEED) if m.building_type == "large_office"][:5]
    region = REGION_INDEX["Midwest"]
    start = interval_index(datetime(2026, 12, 2, tzinfo=UTC))
    spell = HeatSpell(region, start, start + 96, 7.0)
    plain = FleetArrays.build(fleet, SEED).block(start, 96, temperature=True)
    hot = FleetArrays.build(fleet, SEED, Effects(heat=(spell,))).block(start, 96, temperature=True)
    midwest = np.array([model.UTILITY_BY_ID[m.utility_id].region == "Midwest" for m in fleet])
    assert midwest.any()
    assert hot.temperature_c[midwest].max() > 30.0 > plain.temperature_c[midwest].max()
    assert hot.demand_kw[midwest].max() > 1.1 * plain.demand_kw[midwest].max()


def test_equipment_spikes_are_rare_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = build_fleet(40, SEED)
    arrays = FleetArrays.build(fleet, SEED)
    spiky = arrays.block(YEAR_START, 96 * 28).demand_kw
    monkeypatch.setattr(model, "SPIKE_PROBABILITY", 0.0)
    calm = arrays.block(YEAR_START, 96 * 28).demand_kw
    extra = (spiky - calm) / (arrays.design_kw[:, None])
    hit = extra > 0.001
    assert 0.0005 < hit.mean() < 0.005
    low, high = model.SPIKE_SIZE
    assert np.all(extra[hit] >= low - 0.001)
    assert np.all(extra[hit] <= high + 0.001)
    assert np.all(extra >= -0.0005)


def test_outage_zeroes_energy_sags_voltage_and_flags_intervals() -> None:
    fleet = build_fleet(6, SEED)
    start = interval_index(datetime(2026, 3, 3, tzinfo=UTC))
    rows = np.zeros(len(fleet), dtype=np.bool_)
    rows[[1, 4]] = True
    # From 5 minutes into the 3rd interval to 10 minutes into the 6th.
    window = model.Window(rows, start * 900 + 2 * 900 + 300, start * 900 + 5 * 900 + 600)
    dark = FleetArrays.build(fleet, SEED, Effects(outages=(window,))).block(start, 8)
    lit = FleetArrays.build(fleet, SEED).block(start, 8)
    assert np.array_equal(dark.kwh[~rows], lit.kwh[~rows])
    for r in (1, 4):
        assert np.array_equal(dark.kwh[r, :2], lit.kwh[r, :2])
        assert dark.kwh[r, 2] == pytest.approx(lit.kwh[r, 2] / 3, abs=0.002)  # lit 5 of 15 min
        assert np.all(dark.kwh[r, 3:5] == 0)
        assert np.all(dark.voltage[r, 3:5] == 0)
        assert dark.kwh[r, 5] == pytest.approx(lit.kwh[r, 5] / 3, abs=0.002)  # back after 10 min
        assert np.all(dark.voltage[r, 5] < 0.4 * lit.voltage[r, 5])
        flags = [model.FLAG_LISTS[f] for f in dark.flags[r].tolist()]
        assert flags == [
            [],
            [],
            ["partial", "power_fail"],
            ["power_fail"],
            ["power_fail"],
            ["partial", "power_fail"],
            [],
            [],
        ]
