"""VEE rules: validation thresholds, linear and reference-day estimation, editing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain import vee
from app.domain.vee import Interval, RegisterRead, VeeConfig

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=15)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def make_interval(k: int, kwh: float = 10.0, **overrides: object) -> Interval:
    """Build the k-th interval after T0 with consistent demand; overrides change fields."""
    fields: dict[str, object] = {
        "start": T0 + k * STEP,
        "kwh": kwh,
        "kvarh": kwh / 2,
        "demand_kw": kwh * 4,
    }
    fields.update(overrides)
    return Interval(**fields)  # type: ignore[arg-type]


def rules(findings: list[vee.Finding]) -> list[tuple[str, int]]:
    """Return (rule, interval index) pairs for compact assertions."""
    return [(f.rule, int((f.start - T0) / STEP)) for f in findings]


def test_worked_case_75_missing_four_100_is_80_85_90_95() -> None:
    rows = [make_interval(0, 75.0), make_interval(5, 100.0)]
    estimates, missing = vee.estimate(rows, T0, T0 + 6 * STEP)
    assert [e.kwh for e in estimates] == pytest.approx([80.0, 85.0, 90.0, 95.0])
    assert [e.start for e in estimates] == [T0 + k * STEP for k in range(1, 5)]
    assert {e.quality for e in estimates} == {vee.ESTIMATED_LINEAR}
    assert [e.demand_kw for e in estimates] == pytest.approx([320.0, 340.0, 360.0, 380.0])
    assert missing == []


def test_clean_data_passes_every_rule() -> None:
    rows = [make_interval(k, 10.0 + k % 3) for k in range(96)]
    registers = [RegisterRead(T0, 1000.0), RegisterRead(T0 + 96 * STEP, 1000.0 + 1056.0)]
    assert sum(r.kwh for r in rows) == pytest.approx(1056.0)
    assert vee.validate(rows, T0, T0 + 96 * STEP, now=NOW, registers=registers) == []


def test_gap_is_reported_with_its_length() -> None:
    rows = [make_interval(k) for k in (0, 1, 5, 6)]
    found = vee.validate(rows, T0, T0 + 8 * STEP, now=NOW)
    assert [(f.rule, f.start, f.intervals) for f in found] == [
        ("gap", T0 + 2 * STEP, 3),
        ("gap", T0 + 7 * STEP, 1),
    ]


def test_a_gap_between_register_reads_is_a_gap_not_a_sum_mismatch() -> None:
    """Three of four intervals cannot be summed against the registers' delta."""
    rows = [make_interval(k, 10.0) for k in (0, 1, 3)]
    registers = [RegisterRead(T0, 500.0), RegisterRead(T0 + 4 * STEP, 540.0)]
    found = vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=registers)
    assert rules(found) == [("gap", 2)]


def test_high_and_low_demand_limits_are_configurable() -> None:
    rows = [make_interval(0, 10.0), make_interval(1, 30.0), make_interval(2, 1.0)]
    cfg = VeeConfig(high_demand_kw=100.0, low_demand_kw=5.0, spike_ratio=100)
    assert rules(vee.validate(rows, T0, T0 + 3 * STEP, now=NOW, config=cfg)) == [
        ("high_demand", 1),
        ("low_demand", 2),
    ]
    assert vee.validate(rows, T0, T0 + 3 * STEP, now=NOW, config=VeeConfig(spike_ratio=100)) == []


def test_demand_exactly_at_a_limit_is_within_it() -> None:
    """The limits are the highest and lowest demand allowed: only beyond them is flagged."""
    rows = [make_interval(0, 25.0), make_interval(1, 1.25)]  # 100 kW and 5 kW
    cfg = VeeConfig(high_demand_kw=100.0, low_demand_kw=5.0, spike_ratio=100)
    assert vee.validate(rows, T0, T0 + 2 * STEP, now=NOW, config=cfg) == []


def test_spike_against_the_neighbourhood_median() -> None:
    rows = [make_interval(k, 50.0 if k == 6 else 10.0) for k in range(12)]
    assert rules(vee.validate(rows, T0, T0 + 12 * STEP, now=NOW)) == [("spike", 6)]
    assert vee.validate(rows, T0, T0 + 12 * STEP, now=NOW, config=VeeConfig(spike_ratio=6)) == []


def test_zero_consumption_run_on_an_active_meter() -> None:
    rows = [make_interval(k, 0.0 if 2 <= k < 6 else 10.0) for k in range(8)]
    found = vee.validate(rows, T0, T0 + 8 * STEP, now=NOW)
    assert rules(found) == [("zero_consumption", k) for k in range(2, 6)]
    # Three zeros are below the default run; an inactive meter may read zero all day.
    assert rules(vee.validate(rows[:2] + rows[3:], T0, T0 + 8 * STEP, now=NOW)) == [("gap", 2)]
    assert vee.validate(rows, T0, T0 + 8 * STEP, now=NOW, active=False) == []


@pytest.mark.parametrize(
    ("status", "active"), [("online", True), ("unknown", True), (None, True), ("offline", False)]
)
def test_only_an_offline_meter_is_inactive(status: str | None, active: bool) -> None:
    assert vee.is_active(status) is active


def test_sum_check_compares_register_delta_with_the_intervals() -> None:
    rows = [make_interval(k, 10.0) for k in range(4)]
    good = [RegisterRead(T0, 500.0), RegisterRead(T0 + 4 * STEP, 540.0)]
    bad = [RegisterRead(T0, 500.0), RegisterRead(T0 + 4 * STEP, 545.0)]
    assert vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=good) == []
    found = vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=bad)
    assert [(f.rule, f.intervals) for f in found] == [("sum_check", 4)]
    assert "45" in found[0].message
    loose = VeeConfig(sum_tolerance_kwh=6.0)
    assert vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=bad, config=loose) == []
    flagged = vee.mark_questionable(rows, found)
    assert [i.quality for i in flagged] == [vee.QUESTIONABLE] * 4


def test_demand_must_match_the_energy_of_the_interval() -> None:
    rows = [make_interval(0, 10.0), make_interval(1, 10.0, demand_kw=44.0)]
    assert rules(vee.validate(rows, T0, T0 + 2 * STEP, now=NOW)) == [("demand_consistency", 1)]
    loose = VeeConfig(demand_tolerance_ratio=0.2)
    assert vee.validate(rows, T0, T0 + 2 * STEP, now=NOW, config=loose) == []


def test_clock_tolerance_flags_future_and_adjusted_intervals() -> None:
    now = T0 + 2 * STEP + timedelta(minutes=4)
    rows = [
        make_interval(0, flags=frozenset({"clock_adjusted"})),
        make_interval(1),
        make_interval(2),
    ]
    # Interval 2 ends at T0+45 min, 11 minutes after now: beyond the 5-minute tolerance.
    assert rules(vee.validate(rows, T0, T0 + 3 * STEP, now=now)) == [("clock", 0), ("clock", 2)]
    wide = VeeConfig(clock_tolerance=timedelta(minutes=15))
    assert rules(vee.validate(rows, T0, T0 + 3 * STEP, now=now, config=wide)) == [("clock", 0)]


def test_linear_gap_limit_defaults_to_two_hours() -> None:
    eight = [make_interval(0, 10.0), make_interval(9, 19.0)]
    estimates, _ = vee.estimate(eight, T0, T0 + 10 * STEP)
    assert [e.kwh for e in estimates] == pytest.approx([11, 12, 13, 14, 15, 16, 17, 18])
    nine = [make_interval(0, 10.0), make_interval(10, 20.0)]
    estimates, missing = vee.estimate(nine, T0, T0 + 11 * STEP)
    assert estimates == []  # too long for a line, and no history for reference days
    assert len(missing) == 9
    estimates, _ = vee.estimate(
        nine, T0, T0 + 11 * STEP, config=VeeConfig(max_linear_gap=timedelta(hours=3))
    )
    assert len(estimates) == 9
    assert {e.quality for e in estimates} == {vee.ESTIMATED_LINEAR}


def week(days: int = 8) -> list[Interval]:
    """Build `days` days from T0 where interval k of day d holds k + d kWh."""
    return [make_interval(d * 96 + k, float(k + d)) for d in range(days) for k in range(96)]


def test_power_fail_interval_is_never_an_end_point() -> None:
    history = week()  # Mon 2 March .. Mon 9 March
    day = 7 * 96  # Monday 9 March: the same day type as the previous four weekdays
    rows = [r for r in history if not (T0 + (day + 10) * STEP <= r.start < T0 + (day + 12) * STEP)]
    # The interval after the gap had a power failure: its partial energy must not anchor a line.
    rows = [
        replace(r, flags=frozenset({"power_fail"})) if r.start == T0 + (day + 12) * STEP else r
        for r in rows
    ]
    estimates, missing = vee.estimate(rows, T0 + day * STEP, T0 + (day + 96) * STEP)
    assert missing == []
    assert [e.quality for e in estimates] == [vee.ESTIMATED_REFERENCE_DAY] * 2
    # Reference days: Fri 6, Thu 5, Wed 4, Tue 3 March (weekend skipped): slot + 4,3,2,1.
    assert [e.kwh for e in estimates] == pytest.approx([10 + 2.5, 11 + 2.5])


def test_reference_day_averages_same_day_type_and_skips_estimates() -> None:
    history = week(days=6)  # Mon 2 .. Sat 7 March
    sunday = 6 * 96  # Sunday 8 March is missing entirely; Saturday is the only weekend day
    estimates, missing = vee.estimate(history, T0 + sunday * STEP, T0 + (sunday + 96) * STEP)
    assert missing == []
    assert [e.kwh for e in estimates[:3]] == pytest.approx([5.0, 6.0, 7.0])
    # An estimated Saturday is not a reference.
    rows = [
        replace(r, quality=vee.ESTIMATED_LINEAR) if r.start >= T0 + 5 * 96 * STEP else r
        for r in history
    ]
    estimates, missing = vee.estimate(rows, T0 + sunday * STEP, T0 + (sunday + 96) * STEP)
    assert estimates == []
    assert len(missing) == 96


def test_reference_day_keeps_local_wall_time_across_dst() -> None:
    chicago = ZoneInfo("America/Chicago")
    # Monday 9 March 2026 is the day after US DST starts: 06:00 local is 11:00 UTC, not 12:00.
    target = datetime(2026, 3, 9, 6, tzinfo=chicago).astimezone(UTC)
    rows = []
    for back, value in ((3, 30.0), (4, 40.0), (5, 50.0), (6, 60.0)):  # Fri..Tue before
        local = datetime(2026, 3, 9 - back, 6, tzinfo=chicago)
        rows.append(Interval(local.astimezone(UTC), value, 0.0, value * 4))
        # A decoy at the same UTC time, which is 05:00 local before the change.
        rows.append(Interval(target - timedelta(days=back), 999.0, 0.0, 3996.0))
    estimates, _ = vee.estimate(rows, target, target + STEP, tz=chicago)
    assert [e.kwh for e in estimates] == pytest.approx([45.0])


def test_run_flags_questionable_and_estimates_in_one_pass() -> None:
    rows = [make_interval(k, 10.0) for k in range(12) if k not in (4, 5)]
    rows[7] = replace(rows[7], kwh=70.0, demand_kw=280.0)
    result = vee.run(rows, T0, T0 + 12 * STEP, now=NOW)
    assert {f.rule for f in result.findings} == {"gap", "spike"}
    assert [i.start for i in result.questionable] == [rows[7].start]
    assert [e.kwh for e in result.estimates] == pytest.approx([10.0, 10.0])


def test_edit_marks_the_value_edited_and_refuses_nonsense() -> None:
    edited = vee.edit(make_interval(0, 10.0), kwh=12.0)
    assert (edited.kwh, edited.demand_kw, edited.quality) == (12.0, 48.0, vee.EDITED)
    with pytest.raises(ValueError, match="kwh"):
        vee.edit(make_interval(0), kwh=-1.0)


def test_edited_values_anchor_interpolation_but_estimates_do_not() -> None:
    edited = vee.edit(make_interval(0, 10.0), kwh=20.0)
    estimates, _ = vee.estimate([edited, make_interval(2, 40.0)], T0, T0 + 3 * STEP)
    assert [e.kwh for e in estimates] == pytest.approx([30.0])
    guess = replace(make_interval(0, 20.0), quality=vee.ESTIMATED_LINEAR)
    estimates, missing = vee.estimate([guess, make_interval(2, 40.0)], T0, T0 + 3 * STEP)
    assert estimates == []
    assert missing == [T0 + STEP]


@pytest.mark.parametrize(
    ("start", "kwh", "kw", "volts", "reason"),
    [
        (NOW + timedelta(hours=2), 1.0, 4.0, 277.0, "after the receive time"),
        (datetime(1999, 12, 31, tzinfo=UTC), 1.0, 4.0, 277.0, "before 2000"),
        (T0, 1.0, 200_000.0, 277.0, "demand_kw"),
        (T0, 30_000.0, 4.0, 277.0, "kwh"),
        (T0, 1.0, 4.0, 60_000.0, "voltage"),
    ],
)
def test_impossible_values_are_named(
    start: datetime, kwh: float, kw: float, volts: float, reason: str
) -> None:
    found = vee.implausible(start, kwh, kw, [volts], now=NOW, limits=vee.Plausibility())
    assert found is not None
    assert reason in found


def test_a_register_read_may_be_one_interval_past_the_readings_limit() -> None:
    limit = NOW + timedelta(hours=1, minutes=15)
    assert vee.register_implausible(limit, now=NOW, limits=_LIMITS) is None
    assert vee.register_implausible(_LIMITS.earliest, now=NOW, limits=_LIMITS) is None
    for at in (limit + timedelta(seconds=1), datetime(9999, 12, 31, 23, tzinfo=UTC)):
        assert "register.at" in (vee.register_implausible(at, now=NOW, limits=_LIMITS) or "")
    early = _LIMITS.earliest - timedelta(hours=1)
    assert vee.register_implausible(early, now=NOW, limits=_LIMITS) is not None


def test_plausible_values_pass_and_tolerance_is_configurable() -> None:
    limits = vee.Plausibility(future_tolerance=timedelta(days=2))
    assert vee.implausible(NOW + timedelta(days=1), 1, 4, [277], now=NOW, limits=limits) is None
    assert vee.implausible(T0, 1, 4, [277, 276, 278], now=NOW, limits=vee.Plausibility()) is None


def test_arriving_quality_follows_the_meter_flags() -> None:
    assert vee.ingest_quality([]) == vee.VALID
    assert vee.ingest_quality(["backfill"]) == vee.VALID
    assert vee.ingest_quality(["power_fail"]) == vee.QUESTIONABLE


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="spike_ratio"):
        VeeConfig(spike_ratio=0.5)
    with pytest.raises(ValueError, match="reference_lookback_days"):
        VeeConfig(reference_days=10, reference_lookback_days=5)


_LIMITS = vee.Plausibility()
_MAX_KWH = _LIMITS.max_demand_kw / 4
_EDGE = [
    (NOW + timedelta(hours=1), 1.0, 4.0, (277.0,), 0.5),  # exactly at the future tolerance
    (NOW + timedelta(hours=1, seconds=1), 1.0, 4.0, (277.0,), 0.5),
    (_LIMITS.earliest, 1.0, 4.0, (277.0,), 0.5),
    (_LIMITS.earliest - timedelta(seconds=1), 1.0, 4.0, (277.0,), 0.5),
    (T0, 1.0, _LIMITS.max_demand_kw, (277.0,), 0.5),
    (T0, 1.0, _LIMITS.max_demand_kw + 0.001, (277.0,), 0.5),
    (T0, _MAX_KWH, 4.0, (277.0,), 0.5),
    (T0, _MAX_KWH + 0.001, 4.0, (277.0,), 0.5),
    (T0, 1.0, 4.0, (277.0, _LIMITS.max_volts, 0.0), 0.5),
    (T0, 1.0, 4.0, (277.0, 276.0, _LIMITS.max_volts + 0.1), 0.5),
    (T0, 1.0, 4.0, (277.0,), _MAX_KWH),  # reactive energy: the same bound, either sign
    (T0, 1.0, 4.0, (277.0,), _MAX_KWH + 0.001),
    (T0, 1.0, 4.0, (277.0,), -_MAX_KWH),
    (T0, 1.0, 4.0, (277.0,), -_MAX_KWH - 0.001),
]


@pytest.mark.parametrize("bad", range(len(_EDGE)))
def test_column_bounds_agree_with_the_interval_check(bad: int) -> None:
    """all_plausible over a message is True exactly when implausible finds no interval."""
    rows = [(T0 + k * STEP, 1.0, 4.0, (277.0, 277.0, 277.0), 0.5) for k in range(8)]
    rows.insert(3, _EDGE[bad])
    starts, kwh, kw, volts, kvarh = zip(*rows, strict=True)
    # Per-phase columns, None where a reading lacks the phase.
    phases = [tuple(v[p] if len(v) > p else None for v in volts) for p in range(3)]
    some = any(
        vee.implausible(s, e, d, v, now=NOW, limits=_LIMITS, kvarh=q) is not None
        for s, e, d, v, q in rows
    )
    found = vee.all_plausible(starts, kwh, kw, phases, now=NOW, limits=_LIMITS, kvarh=kvarh)
    assert found is not some
    assert some is bool(bad % 2)  # the edge cases alternate: on the limit, then just past it


def test_column_bounds_skip_phases_a_meter_lacks() -> None:
    """A one-phase meter's missing phases (None) are not volts; its own phase still counts."""
    starts = tuple(T0 + k * STEP for k in range(3))
    ok = (277.0, 278.0, 276.0)
    missing = (None, None, None)
    assert vee.all_plausible(
        starts, (1.0,) * 3, (4.0,) * 3, [ok, missing, missing], now=NOW, limits=_LIMITS
    )
    high = (277.0, _LIMITS.max_volts + 1, 276.0)
    assert not vee.all_plausible(
        starts, (1.0,) * 3, (4.0,) * 3, [high, missing, missing], now=NOW, limits=_LIMITS
    )
    assert not vee.all_plausible(
        starts, (1.0,) * 3, (4.0,) * 3, [ok, (None, *high[1:]), missing], now=NOW, limits=_LIMITS
    )


def test_the_sum_check_allows_a_share_of_a_large_delta() -> None:
    """50 kWh off a 10,000 kWh delta is within 1 %; half a kWh absolute alone would flag it."""
    rows = [make_interval(k, 2500.0) for k in range(4)]
    registers = [RegisterRead(T0, 0.0), RegisterRead(T0 + 4 * STEP, 10_050.0)]
    assert vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=registers) == []
    far = [RegisterRead(T0, 0.0), RegisterRead(T0 + 4 * STEP, 10_200.0)]
    assert rules(vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=far)) == [
        ("sum_check", 0)
    ]


def test_a_tiny_load_flickering_is_no_spike() -> None:
    """Eight times a 0.1 kWh median, but under the 1 kWh minimum: not a spike."""
    rows = [make_interval(k, 0.8 if k == 6 else 0.1) for k in range(12)]
    assert vee.validate(rows, T0, T0 + 12 * STEP, now=NOW) == []
    big = [make_interval(k, 8.0 if k == 6 else 1.0) for k in range(12)]
    assert rules(vee.validate(big, T0, T0 + 12 * STEP, now=NOW)) == [("spike", 6)]


def test_only_valid_intervals_turn_questionable() -> None:
    """An estimate inside a flagged span stays an estimate (it is not the meter's reading)."""
    rows = [make_interval(k, 10.0) for k in range(4)]
    rows[1] = replace(rows[1], quality=vee.ESTIMATED_LINEAR)
    bad = [RegisterRead(T0, 500.0), RegisterRead(T0 + 4 * STEP, 545.0)]
    found = vee.validate(rows, T0, T0 + 4 * STEP, now=NOW, registers=bad)
    flagged = vee.mark_questionable(rows, found)
    assert [(i.start, i.quality) for i in flagged] == [
        (rows[k].start, vee.QUESTIONABLE) for k in (0, 2, 3)
    ]


@pytest.mark.parametrize(
    ("flags", "quality"),
    [
        ((), "valid"),
        (("power_fail",), "questionable"),
        (("partial",), "questionable"),
        (("clock_adjusted",), "questionable"),
        (("estimated_by_meter", "partial"), "questionable"),
        (("estimated_by_meter",), "valid"),
    ],
)
def test_an_arriving_actual_is_questionable_when_the_meter_doubts_it(
    flags: tuple[str, ...], quality: str
) -> None:
    assert vee.ingest_quality(flags) == quality


@pytest.mark.parametrize("kwh", [float("nan"), float("inf"), -1.0])
def test_an_edit_must_be_a_finite_non_negative_kwh(kwh: float) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        vee.edit(make_interval(0), kwh=kwh)
