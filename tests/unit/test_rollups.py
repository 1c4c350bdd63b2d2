"""Rollup arithmetic: energy sums, peak demand and when, power factor, quality counts, local days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain import rollups, vee

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
STEP = timedelta(minutes=15)
CHICAGO = ZoneInfo("America/Chicago")


def test_aggregate_sums_finds_the_peak_and_counts_quality() -> None:
    rows = [
        vee.Interval(T0, 10.0, 5.0, 40.0),
        vee.Interval(T0 + STEP, 12.0, 5.0, 48.0, quality=vee.ESTIMATED_LINEAR),
        vee.Interval(T0 + 2 * STEP, 12.0, 5.0, 48.0, quality=vee.QUESTIONABLE),
        vee.Interval(T0 + 3 * STEP, 6.0, 5.0, 24.0, quality=vee.EDITED),
    ]
    r = rollups.aggregate(rows, T0)
    assert r is not None
    assert (r.kwh, r.kvarh, r.intervals) == (40.0, 20.0, 4)
    assert (r.peak_kw, r.peak_at) == (48.0, T0 + STEP)  # the first of two equal peaks
    assert (r.valid, r.estimated, r.questionable, r.edited) == (1, 1, 1, 1)
    assert r.power_factor == pytest.approx(40 / (40**2 + 20**2) ** 0.5, abs=1e-4)
    assert rollups.aggregate([], T0) is None


def test_power_factor_without_energy_is_unknown() -> None:
    r = rollups.aggregate([vee.Interval(T0, 0.0, 0.0, 0.0)], T0)
    assert r is not None
    assert r.power_factor is None


def test_buckets_are_utc_hours_and_local_days() -> None:
    assert rollups.hour_start(T0 + 3 * STEP) == T0
    # 02:00 UTC on 2 March is 20:00 on 1 March in Chicago (CST, UTC-6).
    late = datetime(2026, 3, 2, 2, tzinfo=UTC)
    assert rollups.day_start(late, CHICAGO) == datetime(2026, 3, 1, 6, tzinfo=UTC)
    spring = rollups.day_start(datetime(2026, 3, 8, 12, tzinfo=UTC), CHICAGO)
    start, end = rollups.day_span(spring, CHICAGO)
    assert end - start == timedelta(hours=23)
    fall = rollups.day_start(datetime(2026, 11, 1, 12, tzinfo=UTC), CHICAGO)
    start, end = rollups.day_span(fall, CHICAGO)
    assert end - start == timedelta(hours=25)


def test_by_hour_and_combine_agree_with_the_accumulator() -> None:
    t0 = datetime(2026, 3, 8, 5, tzinfo=UTC)
    qualities = [vee.VALID, vee.ESTIMATED_LINEAR, "mystery", vee.EDITED, vee.QUESTIONABLE]
    rows = [
        (
            meter,
            t0 + timedelta(minutes=15 * k),
            float(k % 7),
            float(k % 3) - 1,
            float((k * 5) % 11 // 2),  # peaks tie in the second and third hours
            qualities[k % len(qualities)],
        )
        for meter in ("m-1", "m-2")
        for k in reversed(range(24))  # arrival order must not matter
    ]
    hourly = {(m, r.start): r for m, r in rollups.by_hour(rows)}
    for (meter, hour), got in hourly.items():
        acc = rollups.Accumulator()
        for m, start, kwh, kvarh, kw, quality in rows:
            if m == meter and rollups.hour_start(start) == hour:
                acc.add(start, kwh, kvarh, kw, quality)
        assert got == acc.result(hour)
    assert len(hourly) == 2 * 6
    # A day combined from its hours equals the day aggregated from its intervals.
    day = rollups.combine([r for (m, _), r in hourly.items() if m == "m-1"], t0)
    whole = rollups.Accumulator()
    for m, start, kwh, kvarh, kw, quality in rows:
        if m == "m-1":
            whole.add(start, kwh, kvarh, kw, quality)
    expected = whole.result(t0)
    assert day is not None
    assert expected is not None
    assert (day.peak_kw, day.peak_at, day.intervals, day.estimated, day.questionable) == (
        expected.peak_kw,
        expected.peak_at,
        expected.intervals,
        expected.estimated,
        expected.questionable,
    )
    assert day.kwh == pytest.approx(expected.kwh)


def test_by_hour_does_not_depend_on_how_meters_interleave() -> None:
    """Rows of two meters alternating give the same buckets as the same rows meter by meter."""
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    rows = [
        (meter, t0 + timedelta(minutes=15 * k), 1.0 + k, 0.5, float(k % 5), vee.VALID)
        for k in range(12)
        for meter in ("m-1", "m-2")
    ]
    by_meter = sorted(rows, key=lambda r: (r[0], r[1]))
    assert sorted(rollups.by_hour(rows)) == sorted(rollups.by_hour(by_meter))
    assert len(rollups.by_hour(rows)) == 2 * 3


@pytest.mark.parametrize("first_minute", [0, 15, 30, 45])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 96])
def test_valid_hours_equals_by_hour_for_a_gap_free_message(first_minute: int, n: int) -> None:
    """Sliced whole hours give by_hour's rollups bit for bit, from any quarter, any length."""
    t0 = datetime(2026, 3, 2, 5, first_minute, tzinfo=UTC)
    starts = tuple(t0 + k * STEP for k in range(n))
    kwh = tuple(0.1 * ((k * 7) % 13) + 1e-9 * k for k in range(n))
    kvarh = tuple(0.3 - 0.05 * (k % 5) for k in range(n))
    kw = tuple(float((k * 5) % 11 // 2) for k in range(n))  # ties for the peak in some hours
    rows = [
        ("m-1", s, e, r, d, vee.VALID) for s, e, r, d in zip(starts, kwh, kvarh, kw, strict=True)
    ]
    assert rollups.valid_hours("m-1", starts, kwh, kvarh, kw) == rollups.by_hour(rows)


def test_valid_hours_leaves_starts_in_another_zone_to_by_hour() -> None:
    """The decoder gives UTC; starts in a local zone (wall-clock arithmetic) are refused."""
    kolkata = ZoneInfo("Asia/Kolkata")
    t0 = datetime(2026, 3, 2, 10, 45, tzinfo=kolkata)
    starts = tuple(t0 + k * STEP for k in range(6))
    values = tuple(float(k) for k in range(6))
    assert rollups.valid_hours("m", starts, values, values, values) is None
    utc = tuple(s.astimezone(UTC) for s in starts)
    rows = [("m", s, v, v, v, vee.VALID) for s, v in zip(utc, values, strict=True)]
    got = rollups.valid_hours("m", utc, values, values, values)
    assert got == rollups.by_hour(rows)
    assert got is not None
    assert [r.start for _, r in got] == [datetime(2026, 3, 2, h, tzinfo=UTC) for h in (5, 6)]


def test_valid_hours_sums_left_to_right_from_zero_as_by_hour_does() -> None:
    """Not sum()'s compensated adding (Python 3.12+): 1e16 + 1 + 1 - 1e16 is 0.0 this way."""
    starts = [T0 + k * STEP for k in range(4)]
    kwh = [1e16, 1.0, 1.0, -1e16]
    rows = [("m", s, e, 0.0, 1.0, vee.VALID) for s, e in zip(starts, kwh, strict=True)]
    got = rollups.valid_hours("m", starts, kwh, [0.0] * 4, [1.0] * 4)
    assert got is not None
    assert got[0][1].kwh == 0.0
    assert got == rollups.by_hour(rows)


@pytest.mark.parametrize(
    "order",
    [
        [0, 2, 1, 3],  # out of order
        [0, 1, 1, 2],  # a start twice
        [0, 1, 3, 4],  # a gap
    ],
)
def test_valid_hours_refuses_what_is_not_gap_free_and_in_order(order: list[int]) -> None:
    starts = [T0 + k * STEP for k in order]
    ones = [1.0] * len(order)
    assert rollups.valid_hours("m", starts, ones, ones, ones) is None
    assert rollups.valid_hours("m", [], [], [], []) == []


def test_an_hours_peak_tie_goes_to_its_earliest_interval_in_any_order() -> None:
    """Two intervals at the same kW: the peak time is the earlier, however they arrive."""
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    late, early = at + timedelta(minutes=30), at
    rows = [("m", late, 1.0, 0.0, 50.0, "valid"), ("m", early, 1.0, 0.0, 50.0, "valid")]
    ((_, hour),) = rollups.by_hour(rows)
    assert (hour.peak_kw, hour.peak_at) == (50.0, early)
    ((_, again),) = rollups.by_hour(list(reversed(rows)))
    assert again.peak_at == early
