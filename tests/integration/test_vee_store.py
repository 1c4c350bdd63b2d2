"""VEE over stored readings: the `vee` command flags, estimates, re-estimates and audits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry, vee
from app.ingest import __main__ as ingest_cli
from app.ingest import estimation, store
from app.ingest.__main__ import main
from app.ingest.estimation import run_vee
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import Meter
from tests.factories import (
    T0,
    assert_hourly_rollups_match_readings,
    fleet_sessions,
    make_reading,
    seed_database,
)

STEP = timedelta(minutes=15)
HOUR = 4 * STEP


def test_vee_command_estimates_gaps_and_flags_spikes(database_url: str) -> None:
    fleet = seed_database(database_url, meters=2, intervals=96)
    meter = fleet[0].id
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        # The factory's demand is arbitrary; make it the interval's average kW, as a meter's is.
        session.execute(
            update(models.Reading)
            .where(models.Reading.meter_id == meter)
            .values(demand_kw=models.Reading.kwh * 4)
        )
        # A 1-hour gap (linear), a 3-hour gap (too long: reference day, but no history).
        gone = [T0 + k * STEP for k in (*range(20, 24), *range(40, 52))]
        session.execute(
            delete(models.Reading).where(
                models.Reading.meter_id == meter, models.Reading.start.in_(gone)
            )
        )
        spike = session.get(models.Reading, (meter, T0 + 60 * STEP))
        assert spike is not None
        spike.kwh, spike.demand_kw = 400.0, 1600.0

    runner = CliRunner()
    args = ["--database-url", database_url, "vee", "--meter", meter]
    result = runner.invoke(main, [*args, "--start", "2026-03-02", "--end", "2026-03-03"])
    assert result.exit_code == 0, result.output
    assert "1 questionable, 4 linear, 0 reference-day, 12 left missing" in result.output

    with sessions() as session:
        rows = {
            r.start: r
            for r in session.scalars(select(models.Reading).where(models.Reading.meter_id == meter))
        }
    # Factory values are 10 + i % 7: interval 19 holds 15.0, interval 24 holds 13.0.
    assert [rows[T0 + k * STEP].kwh for k in range(20, 24)] == pytest.approx(
        [14.6, 14.2, 13.8, 13.4]
    )
    assert {rows[T0 + k * STEP].quality for k in range(20, 24)} == {"estimated-linear"}
    assert rows[T0 + 60 * STEP].quality == "questionable"
    assert T0 + 40 * STEP not in rows

    # A rerun with a longer linear limit re-estimates nothing that is already estimated the
    # same way, and fills the long gap; changed estimates would be audited. The audit holds
    # the first run's flag (the spike, valid to questionable, same kWh) as its one change of
    # a stored value, and each of the 16 estimates once, from nothing.
    again = runner.invoke(
        main,
        [*args, "--start", "2026-03-02", "--end", "2026-03-03", "--max-linear-gap", "4"],
    )
    assert again.exit_code == 0, again.output
    assert "16 linear" in again.output
    with sessions() as session:
        audit = session.scalars(select(models.ReadingAudit)).all()
        assert [
            (a.start, a.source, a.old_quality, a.new_quality, a.old_kwh, a.new_kwh)
            for a in audit
            if a.old_quality is not None
        ] == [(T0 + 60 * STEP, "vee", "valid", "questionable", 400.0, 400.0)]
        assert sorted(
            (a.start, a.source, a.new_quality) for a in audit if a.old_quality is None
        ) == [(T0 + k * STEP, "vee", "estimated-linear") for k in (*range(20, 24), *range(40, 52))]
        filled = session.scalar(
            select(func.count())
            .select_from(models.Reading)
            .where(models.Reading.meter_id == meter, models.Reading.quality == "estimated-linear")
        )
    engine.dispose()
    assert filled == 16


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--meter", "nosuch", "--start", "2026-03-02", "--end", "2026-03-03"], "--meter"),
        (["--start", "2026-03-03", "--end", "2026-03-02"], "--end"),
        (["--start", "yesterday", "--end", "2026-03-02"], "--start"),
    ],
)
def test_vee_command_names_the_bad_option(
    database_url: str, extra: list[str], message: str
) -> None:
    seed_database(database_url, meters=1, intervals=4)
    result = CliRunner().invoke(main, ["--database-url", database_url, "vee", *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_edit_command_flags_edited_audits_and_survives_a_vee_rerun(database_url: str) -> None:
    meter = seed_database(database_url, meters=1, intervals=8)[0].id
    runner = CliRunner()
    base = ["--database-url", database_url]
    result = runner.invoke(
        main,
        [*base, "edit", "--meter", meter, "--start", "2026-03-02T00:30:00Z", "--kwh", "7.5"],
    )
    assert result.exit_code == 0, result.output
    assert "1 stored values changed" in result.output
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        row = session.get(models.Reading, (meter, T0 + 2 * STEP))
        assert row is not None
        assert (row.kwh, row.demand_kw, row.quality) == (7.5, 30.0, "edited")
        audit = session.scalars(select(models.ReadingAudit)).one()
        assert (audit.old_kwh, audit.old_quality, audit.new_kwh, audit.source) == (
            12.0,
            "valid",
            7.5,
            "edit:operator",
        )
    rerun = runner.invoke(
        main, [*base, "vee", "--meter", meter, "--start", "2026-03-02", "--end", "2026-03-03"]
    )
    assert rerun.exit_code == 0, rerun.output
    with sessions() as session:
        row = session.get(models.Reading, (meter, T0 + 2 * STEP))
        assert row is not None
        assert (row.kwh, row.quality) == (7.5, "edited")
    engine.dispose()
    unknown = runner.invoke(
        main, [*base, "edit", "--meter", "nosuch", "--start", "2026-03-02", "--kwh", "1"]
    )
    assert unknown.exit_code == 2
    assert "unknown meter" in unknown.output
    # Not an interval's start: it was floored to 00:00 and edited that interval silently.
    off_grid = runner.invoke(
        main, [*base, "edit", "--meter", meter, "--start", "2026-03-02T00:07:00Z", "--kwh", "1"]
    )
    assert off_grid.exit_code == 2
    assert "is not the start of a 15-minute interval" in off_grid.output
    for kwh in ("nan", "inf"):  # a traceback from the edit before
        bad = runner.invoke(
            main, [*base, "edit", "--meter", meter, "--start", "2026-03-02", "--kwh", kwh]
        )
        assert bad.exit_code == 2
        assert "--kwh" in bad.output


def hour_message(
    meter: Meter,
    hour: int,
    kwh: list[float],
    register_kwh: float | None,
    *,
    flags: frozenset[str] = frozenset(),
    received_at: datetime | None = None,
) -> Accepted:
    """Return the `hour`-th hour (from T0) as one message, with the register after it."""
    start = T0 + hour * HOUR
    readings = tuple(
        make_reading(s, kwh=k, demand_kw=4 * k, flags=flags)
        for s, k in zip(telemetry.interval_range(start, len(kwh)), kwh, strict=True)
    )
    end = start + len(kwh) * STEP
    register = None if register_kwh is None else telemetry.Register(end, register_kwh, 50.0)
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
        telemetry.IntervalMessage(meter.id, readings, register=register),
        b"",
        received_at or T0 + timedelta(days=2),
    )


def stored_registers(database_url: str) -> list[tuple[str, datetime, float, float]]:
    """Return every stored register read as (meter, at, kWh, kVArh), in order."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(
            select(
                models.RegisterRead.meter_id,
                models.RegisterRead.at,
                models.RegisterRead.kwh,
                models.RegisterRead.kvarh,
            ).order_by(models.RegisterRead.meter_id, models.RegisterRead.at)
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_register_reads_are_stored_once_and_only_from_accepted_messages(
    database_url: str,
) -> None:
    engine, sessions, (a, b, c) = fleet_sessions(database_url, 3, 7)
    first = hour_message(a, 0, [10.0] * 4, 1040.0)
    flagged = hour_message(b, 0, [10.0] * 4, 2040.0, flags=frozenset({"backfill"}))
    bare = hour_message(c, 0, [10.0] * 4, None)
    # Five intervals: the read at a quarter past the hour is not kept (whole hours only).
    quarter = hour_message(c, 1, [10.0] * 5, 3050.0)
    # Impossible (received a day before its readings): dead-lettered, register and all.
    early = hour_message(c, 4, [10.0] * 4, 3200.0, received_at=T0 - timedelta(days=1))
    unknown = hour_message(a, 1, [10.0] * 4, 1080.0)
    unknown = unknown._replace(topic=replace(unknown.topic, meter_id="nosuch"))
    # A copy with another register value at the same instant, in the batch and in a later
    # one: the first copy stays, as for readings.
    copy = hour_message(a, 0, [10.0] * 4, 7777.0)
    with sessions.begin() as session:
        result = write_batch(
            session, [first, copy, flagged, bare, quarter, early, unknown], MeterDirectory()
        )
    assert result.dead_letters == 2
    again = hour_message(a, 0, [10.0] * 4, 9999.0)
    with sessions.begin() as session:
        write_batch(session, [again, flagged], MeterDirectory())
    engine.dispose()
    assert stored_registers(database_url) == sorted(
        [(a.id, T0 + HOUR, 1040.0, 50.0), (b.id, T0 + HOUR, 2040.0, 50.0)]
    )


def _store_day(database_url: str, meter: Meter, *, jump_after: int | None = None) -> None:
    """Store one day of hourly messages with registers; from `jump_after` on, +5 kWh."""
    engine = make_engine(database_url)
    register = 1000.0
    batch = []
    # Hour -1 (the day before) brings the register read at T0 that opens the first span.
    for hour in range(-1, 24):
        kwh = [10.0 + (hour * 4 + k) % 7 for k in range(4)]
        register += sum(kwh)
        extra = 5.0 if jump_after is not None and hour >= jump_after else 0.0
        batch.append(hour_message(meter, hour, kwh, register + extra))
    with make_sessionmaker(engine).begin() as session:
        write_batch(session, batch, MeterDirectory())
    engine.dispose()


def test_vee_sum_check_runs_on_stored_register_reads_and_audits_its_flags(
    database_url: str,
) -> None:
    engine, sessions, fleet = fleet_sessions(database_url, 2, 7)
    good, bad = fleet[0].id, fleet[1].id
    _store_day(database_url, fleet[0])
    # The register moved 5 kWh more than the intervals in hour 10 (10:00-11:00).
    _store_day(database_url, fleet[1], jump_after=10)
    now = T0 + timedelta(days=2)
    with sessions.begin() as session:
        clean = run_vee(session, good, T0, T0 + timedelta(days=1), now=now)
        found = run_vee(session, bad, T0, T0 + timedelta(days=1), now=now)
    assert dict(clean.findings) == {}
    assert clean.flagged == 0
    assert dict(found.findings) == {"sum_check": 1}
    assert found.flagged == 4
    span = [T0 + 10 * HOUR + k * STEP for k in range(4)]
    with sessions() as session:
        questionable = session.scalars(
            select(models.Reading.start)
            .where(models.Reading.quality == vee.QUESTIONABLE)
            .order_by(models.Reading.meter_id, models.Reading.start)
        ).all()
        audit = session.scalars(
            select(models.ReadingAudit).order_by(models.ReadingAudit.start)
        ).all()
        hour = session.get(models.HourlyRollup, (bad, T0 + 10 * HOUR))
    engine.dispose()
    assert questionable == span
    assert [(a.meter_id, a.start, a.source, a.changed_at) for a in audit] == [
        (bad, s, "vee", now) for s in span
    ]
    assert {(a.old_quality, a.new_quality) for a in audit} == {("valid", "questionable")}
    assert [a.old_kwh for a in audit] == [a.new_kwh for a in audit] == [15.0, 16.0, 10.0, 11.0]
    assert hour is not None
    assert (hour.valid, hour.questionable) == (0, 4)


@pytest.mark.parametrize(
    ("status", "zero_findings"), [("online", 4), ("unknown", 4), ("offline", 0)]
)
def test_an_offline_meter_is_not_active_for_the_zero_consumption_rule(
    database_url: str, status: str, zero_findings: int
) -> None:
    engine, sessions, (meter,) = fleet_sessions(database_url, 1, 7)
    with sessions.begin() as session:
        write_batch(
            session,
            [hour_message(meter, h, [0.0] * 4 if h == 1 else [10.0] * 4, None) for h in range(3)],
            MeterDirectory(),
        )
        session.execute(
            update(models.Meter).where(models.Meter.id == meter.id).values(status=status)
        )
    window = (T0, T0 + 3 * HOUR)
    now = T0 + timedelta(days=2)
    with sessions() as session:
        summary = run_vee(session, meter.id, *window, now=now)
        # The caller's word wins over the status.
        forced = run_vee(session, meter.id, *window, now=now, active=True)
    engine.dispose()
    assert summary.findings["zero_consumption"] == zero_findings
    assert summary.flagged == zero_findings
    assert forced.findings["zero_consumption"] == 4


def test_vee_command_passes_every_threshold_to_vee_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[vee.VeeConfig] = []
    monkeypatch.setattr(ingest_cli, "_run_vee", lambda *args: seen.append(args[-1]))
    (tmp_path / "unused.db").touch()
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    runner = CliRunner()
    args = ["--database-url", url, "vee", "--start", "2026-03-02", "--end", "2026-03-03"]
    assert runner.invoke(main, args).exit_code == 0
    changed = [
        *("--spike-ratio", "6", "--spike-window", "12", "--spike-min-kwh", "2"),
        *("--zero-run-intervals", "8", "--sum-tolerance-ratio", "0.02"),
        *("--demand-tolerance-kw", "0.3", "--demand-tolerance-ratio", "0.1"),
        *("--clock-tolerance", "10", "--reference-days", "2", "--reference-lookback-days", "14"),
    ]
    result = runner.invoke(main, [*args, *changed], env={"VEE_SUM_TOLERANCE_KWH": "1.5"})
    assert result.exit_code == 0, result.output
    assert seen == [
        vee.VeeConfig(),
        vee.VeeConfig(
            spike_ratio=6.0,
            spike_window=12,
            spike_min_kwh=2.0,
            zero_run_intervals=8,
            sum_tolerance_kwh=1.5,
            sum_tolerance_ratio=0.02,
            demand_tolerance_kw=0.3,
            demand_tolerance_ratio=0.1,
            clock_tolerance=timedelta(minutes=10),
            reference_days=2,
            reference_lookback_days=14,
        ),
    ]
    # Each option checks its own range; VeeConfig checks the two that depend on each other.
    for bad, name in (
        (["--spike-ratio", "1"], "--spike-ratio"),
        (["--reference-days", "9", "--reference-lookback-days", "5"], "reference_lookback_days"),
    ):
        refused = runner.invoke(main, [*args, *bad])
        assert refused.exit_code == 2
        assert name in refused.output
    assert len(seen) == 2


@pytest.fixture
def one_meter(database_url: str) -> Iterator[tuple[Any, Meter]]:
    """Sessions on a database holding one meter, and that meter."""
    engine, sessions, fleet = fleet_sessions(database_url, 1, 1)
    yield sessions, fleet[0]
    engine.dispose()


def _day_message(meter: Meter, readings: list[telemetry.Reading]) -> Accepted:
    return Accepted(
        telemetry.Topic(telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"),
        telemetry.IntervalMessage(meter.id, tuple(readings)),
        b"",
        datetime.now(UTC),
    )


def _flat(start: datetime, kwh: float) -> telemetry.Reading:
    return make_reading(start, kwh=kwh, kvarh=0.0, demand_kw=4 * kwh)


def _stored(
    sessions: Any, meter_id: str, starts: list[datetime]
) -> dict[datetime, tuple[float, str]]:
    with sessions() as s:
        return {
            r.start: (round(r.kwh, 6), r.quality)
            for r in s.scalars(
                select(models.Reading).where(
                    models.Reading.meter_id == meter_id, models.Reading.start.in_(starts)
                )
            )
        }


def _day_with_a_gap(sessions: Any, meter: Meter, kwh: Callable[[int], float]) -> list[datetime]:
    """Store one day of `kwh(slot)` with slots 20-23 missing; return the missing starts."""
    readings = [_flat(T0 + k * STEP, kwh(k)) for k in range(96) if not 20 <= k < 24]
    with sessions.begin() as s:
        write_batch(s, [_day_message(meter, readings)], MeterDirectory())
    return [T0 + k * STEP for k in range(20, 24)]


def test_a_spike_this_run_flags_anchors_no_estimate_and_a_rerun_agrees(
    one_meter: tuple[Any, Meter],
) -> None:
    """10 kWh, four missing, then a 400 kWh spike: the spike is flagged, not interpolated to."""
    sessions, meter = one_meter
    gap = _day_with_a_gap(sessions, meter, lambda k: 400.0 if k == 24 else 10.0)
    now = T0 + timedelta(days=2)
    with sessions.begin() as s:
        first = run_vee(s, meter.id, T0, T0 + timedelta(days=1), now=now)
    assert first.findings["spike"] >= 1
    assert first.estimated_linear == 0
    assert _stored(sessions, meter.id, gap) == {}
    assert first.unestimated == 4
    with sessions.begin() as s:
        second = run_vee(s, meter.id, T0, T0 + timedelta(days=1), now=now)
    assert (second.estimated_linear, second.unestimated) == (0, 4)
    assert_hourly_rollups_match_readings(sessions, meter.id)


def test_an_estimate_a_rerun_cannot_make_is_withdrawn_and_audited(
    one_meter: tuple[Any, Meter],
) -> None:
    """A shorter linear limit and no reference history: the old line goes, on the trail."""
    sessions, meter = one_meter
    gap = _day_with_a_gap(sessions, meter, lambda k: 75.0 if k < 20 else 100.0)
    now = T0 + timedelta(days=2)
    with sessions.begin() as s:
        assert run_vee(s, meter.id, T0, T0 + timedelta(days=1), now=now).estimated_linear == 4
    assert _stored(sessions, meter.id, gap) == {
        at: (kwh, vee.ESTIMATED_LINEAR)
        for at, kwh in zip(gap, (80.0, 85.0, 90.0, 95.0), strict=True)
    }
    shorter = vee.VeeConfig(max_linear_gap=timedelta(minutes=30))
    with sessions.begin() as s:
        again = run_vee(s, meter.id, T0, T0 + timedelta(days=1), now=now, config=shorter)
    assert (again.withdrawn_estimates, again.unestimated) == (4, 4)
    assert _stored(sessions, meter.id, gap) == {}
    with sessions() as s:
        trail = s.scalars(
            select(models.ReadingAudit)
            .where(models.ReadingAudit.new_quality.is_(None))
            .order_by(models.ReadingAudit.start)
        ).all()
    assert [(a.start, a.old_kwh, a.old_quality, a.new_kwh) for a in trail] == [
        (at, kwh, vee.ESTIMATED_LINEAR, None)
        for at, kwh in zip(gap, (80.0, 85.0, 90.0, 95.0), strict=True)
    ]
    # The hour that held only the estimates has no rollup left; the others match their data.
    assert_hourly_rollups_match_readings(sessions, meter.id)


def test_vee_never_estimates_intervals_that_have_not_ended(one_meter: tuple[Any, Meter]) -> None:
    """Eight days of data and a run at 01:00 on the ninth: nothing after 01:00 is stored."""
    sessions, meter = one_meter
    with sessions.begin() as s:
        for day in range(8):
            first = T0 + timedelta(days=day)
            day_readings = [_flat(first + k * STEP, 10.0) for k in range(96)]
            write_batch(s, [_day_message(meter, day_readings)], MeterDirectory())
    ninth = T0 + timedelta(days=8)
    now = ninth + timedelta(hours=1)
    with sessions.begin() as s:
        summary = run_vee(s, meter.id, ninth, ninth + timedelta(days=1), now=now)
    assert summary.findings["gap"] == 1
    assert summary.estimated_reference_day == 4  # 00:00-00:45, ended by 01:00
    with sessions() as s:
        after = s.scalar(
            select(func.count())
            .select_from(models.Reading)
            .where(models.Reading.meter_id == meter.id, models.Reading.start >= now)
        )
    assert after == 0


def test_a_gap_across_midnight_is_estimated_alike_from_either_window(
    one_meter: tuple[Any, Meter],
) -> None:
    """23:30-00:30 missing: the scheduled window moving a day keeps the one-hour line."""
    sessions, meter = one_meter
    midnight = T0 + timedelta(days=14)
    gap = [midnight + k * STEP for k in range(-2, 2)]
    starts = [T0 + k * STEP for k in range(96 * 17)]
    rows = [_flat(s, 10.0 + (s.hour * 4 + s.minute // 15) / 10) for s in starts if s not in gap]
    with sessions.begin() as s:
        for at in range(0, len(rows), 96):
            write_batch(s, [_day_message(meter, rows[at : at + 96])], MeterDirectory())
    now = midnight + timedelta(days=5)
    with sessions.begin() as s:
        run_vee(s, meter.id, midnight - timedelta(days=2), midnight + timedelta(days=1), now=now)
    before = _stored(sessions, meter.id, gap)
    assert {quality for _, quality in before.values()} == {vee.ESTIMATED_LINEAR}
    assert len(before) == 4
    with sessions.begin() as s:
        moved = run_vee(s, meter.id, midnight, midnight + timedelta(days=3), now=now)
    assert _stored(sessions, meter.id, gap) == before
    assert moved.replaced_estimates == 0


def _daily_rollups_match_readings(sessions: Any, meter: Meter) -> None:
    """Each daily rollup's kWh and interval count are its readings' (one local day here)."""
    with sessions() as s:
        days = s.execute(
            select(models.DailyRollup.kwh, models.DailyRollup.intervals).where(
                models.DailyRollup.meter_id == meter.id
            )
        ).all()
        readings = s.scalars(
            select(models.Reading.kwh).where(models.Reading.meter_id == meter.id)
        ).all()
    assert sum(d.intervals for d in days) == len(readings)
    assert sum(d.kwh for d in days) == pytest.approx(sum(readings))


def _trail(sessions: Any, meter_id: str) -> list[tuple[str, datetime, float | None, str | None]]:
    """The audit trail as (source, start, new kWh, new quality), oldest first."""
    with sessions() as s:
        return [
            (a.source, a.start, a.new_kwh, a.new_quality)
            for a in s.scalars(
                select(models.ReadingAudit)
                .where(models.ReadingAudit.meter_id == meter_id)
                .order_by(models.ReadingAudit.id)
            )
        ]


def _gap_of_four(sessions: Any, meter: Meter) -> None:
    """Store actuals at 00:00 (75 kWh) and 01:15 (100 kWh): 00:15-01:00 are missing."""
    with sessions.begin() as s:
        write_batch(
            s,
            [_day_message(meter, [_flat(T0, 75.0), _flat(T0 + 5 * STEP, 100.0)])],
            MeterDirectory(),
        )


def _meanwhile(
    monkeypatch: pytest.MonkeyPatch, module: Any, work: Callable[[], None]
) -> Callable[[], None]:
    """Run `work` in a thread the first time `module.stored_estimates` is called.

    The caller then goes on once `work` is done or blocked (two seconds): without a lock
    it commits in the window between the caller's look at what is stored and its write.
    Return a function that waits for `work` and re-raises its error.
    """
    real = module.stored_estimates
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    def racing(session: Any, keys: Any) -> Any:
        found = real(session, keys)
        if not threads:
            threads.append(threading.Thread(target=guarded))
            threads[0].start()
            threads[0].join(timeout=2)
        return found

    monkeypatch.setattr(module, "stored_estimates", racing)

    def finish() -> None:
        assert threads, "the window was never reached"
        threads[0].join(timeout=60)
        assert not threads[0].is_alive()
        if errors:
            raise errors[0]

    return finish


def test_vee_storing_an_estimate_while_a_batch_fills_the_slot_waits_for_it(
    one_meter: tuple[Any, Meter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """VEE stored 80 kWh at 00:15 between a batch's look and its upsert: the actual replaced
    it unaudited and the hour counted five intervals (the estimate's and the actual's)."""
    sessions, meter = one_meter
    _gap_of_four(sessions, meter)

    def vee_pass() -> None:
        with sessions.begin() as s:
            run_vee(s, meter.id, T0, T0 + 6 * STEP, now=T0 + timedelta(days=2))

    finish = _meanwhile(monkeypatch, store, vee_pass)
    # The late actual, with a redelivered 00:00 so PostgreSQL's COPY gives way to the upsert.
    with sessions.begin() as s:
        write_batch(
            s, [_day_message(meter, [_flat(T0, 75.0), _flat(T0 + STEP, 12.5)])], MeterDirectory()
        )
    finish()
    # The batch went first; VEE then estimated what was still missing, from 12.5 to 100.
    stored = _stored(sessions, meter.id, [T0 + k * STEP for k in range(6)])
    assert stored[T0 + STEP] == (12.5, vee.VALID)
    assert [q for _, q in stored.values()].count(vee.ESTIMATED_LINEAR) == 3
    assert [(src, at, q) for src, at, _, q in _trail(sessions, meter.id)] == [
        ("vee", T0 + k * STEP, vee.ESTIMATED_LINEAR) for k in (2, 3, 4)
    ]
    assert_hourly_rollups_match_readings(sessions, meter.id)
    _daily_rollups_match_readings(sessions, meter)


def test_an_actual_arriving_while_vee_runs_replaces_its_estimate_on_the_trail(
    one_meter: tuple[Any, Meter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actual landed between VEE's read and its upsert: VEE audited an estimate at 00:15
    it never stored, and the trail never showed the actual arriving."""
    sessions, meter = one_meter
    _gap_of_four(sessions, meter)

    def late_actual() -> None:
        with sessions.begin() as s:
            write_batch(s, [_day_message(meter, [_flat(T0 + STEP, 12.5)])], MeterDirectory())

    finish = _meanwhile(monkeypatch, estimation, late_actual)
    with sessions.begin() as s:
        summary = run_vee(s, meter.id, T0, T0 + 6 * STEP, now=T0 + timedelta(days=2))
    finish()
    # VEE went first and stored its four estimates; the actual then replaced one of them.
    assert summary.estimated_linear == 4
    assert _trail(sessions, meter.id) == [
        *(
            ("vee", T0 + k * STEP, kwh, vee.ESTIMATED_LINEAR)
            for k, kwh in ((1, 80.0), (2, 85.0), (3, 90.0), (4, 95.0))
        ),
        ("ingest", T0 + STEP, 12.5, vee.VALID),
    ]
    assert _stored(sessions, meter.id, [T0 + STEP]) == {T0 + STEP: (12.5, vee.VALID)}
    assert_hourly_rollups_match_readings(sessions, meter.id)
    _daily_rollups_match_readings(sessions, meter)
