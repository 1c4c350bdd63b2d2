"""VEE (validation, estimation, editing) of 15-minute interval data: pure rules, no I/O.

Validation flags suspicious values (`questionable`) and reports gaps; estimation fills
gaps by linear interpolation when they are short and both end points are trustworthy
actuals, and by reference-day averaging otherwise; editing is a person's correction.
Every value carries one quality flag from `QUALITIES`. Time is always a parameter.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, Literal

INTERVAL_SECONDS: Final = 900
STEP: Final = timedelta(seconds=INTERVAL_SECONDS)
HOURS_PER_INTERVAL: Final = INTERVAL_SECONDS / 3600

Quality = Literal["valid", "estimated-linear", "estimated-reference-day", "questionable", "edited"]
VALID: Final[Quality] = "valid"
ESTIMATED_LINEAR: Final[Quality] = "estimated-linear"
ESTIMATED_REFERENCE_DAY: Final[Quality] = "estimated-reference-day"
QUESTIONABLE: Final[Quality] = "questionable"
EDITED: Final[Quality] = "edited"
QUALITIES: Final[tuple[Quality, ...]] = (
    VALID,
    ESTIMATED_LINEAR,
    ESTIMATED_REFERENCE_DAY,
    QUESTIONABLE,
    EDITED,
)
ESTIMATED: Final = frozenset({ESTIMATED_LINEAR, ESTIMATED_REFERENCE_DAY})
# A meter flag that makes an interval unfit as an interpolation end point: the meter lost
# power during it, so its energy is partial.
POWER_FAIL: Final = "power_fail"
# Flags meaning the meter itself distrusts the interval.
DOUBTFUL_FLAGS: Final = frozenset({"power_fail", "partial", "clock_adjusted"})

# Meter states (`meters.status`: a status message's "online" / "offline", or "unknown" before
# the first) that say the meter is not active, so a run of zeros from it is expected rather
# than suspicious. "unknown" counts as active: a zero run is better checked than missed.
INACTIVE_STATES: Final = frozenset({"offline"})

Rule = Literal[
    "gap",
    "high_demand",
    "low_demand",
    "spike",
    "zero_consumption",
    "sum_check",
    "demand_consistency",
    "clock",
]


@dataclass(frozen=True, slots=True)
class VeeConfig:
    """Thresholds of every rule; the defaults are common utility practice, all configurable."""

    max_linear_gap: timedelta = timedelta(hours=2)
    # High/low demand limits in kW; None disables the limit (per-meter limits are usual).
    high_demand_kw: float | None = None
    low_demand_kw: float | None = None
    # A spike is more than `spike_ratio` times the median of the surrounding window ...
    spike_ratio: float = 4.0
    spike_window: int = 8
    # ... and at least this many kWh, so tiny loads flickering are not spikes.
    spike_min_kwh: float = 1.0
    # This many consecutive zero intervals on an active meter are questionable (1 h).
    zero_run_intervals: int = 4
    # Register delta vs sum of intervals: allowed difference, absolute and relative.
    sum_tolerance_kwh: float = 0.5
    sum_tolerance_ratio: float = 0.01
    # Demand kW vs the interval's average kW (kWh / 0.25 h).
    demand_tolerance_ratio: float = 0.05
    demand_tolerance_kw: float = 0.1
    # How far an interval may end in the future of `now` (meter clock drift).
    clock_tolerance: timedelta = timedelta(minutes=5)
    # Reference-day estimation: average this many earlier days of the same day type ...
    reference_days: int = 4
    # ... found within this many days back.
    reference_lookback_days: int = 28

    def __post_init__(self) -> None:
        """Refuse thresholds that make no sense."""
        if self.max_linear_gap < timedelta(0):
            raise ValueError("max_linear_gap must not be negative")
        if self.spike_ratio <= 1 or self.spike_window < 2:
            raise ValueError("spike_ratio must exceed 1 and spike_window be at least 2")
        if self.zero_run_intervals < 1 or self.reference_days < 1:
            raise ValueError("zero_run_intervals and reference_days must be at least 1")
        if self.reference_lookback_days < self.reference_days:
            raise ValueError("reference_lookback_days must be at least reference_days")
        for name in ("sum_tolerance_kwh", "sum_tolerance_ratio", "demand_tolerance_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class Interval:
    """One 15-minute value with its meter flags and quality."""

    start: datetime
    kwh: float
    kvarh: float = 0.0
    demand_kw: float = 0.0
    flags: frozenset[str] = frozenset()
    quality: Quality = VALID

    @property
    def actual(self) -> bool:
        """Return True for a value the meter measured (not estimated or edited)."""
        return self.quality in (VALID, QUESTIONABLE)


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """A cumulative kWh register read at an instant (for the sum check)."""

    at: datetime
    kwh: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation failure: the rule, the interval (or gap) start and why."""

    rule: Rule
    start: datetime
    message: str
    intervals: int = 1


@dataclass(frozen=True, slots=True)
class VeeResult:
    """What a VEE pass found and produced."""

    findings: tuple[Finding, ...]
    questionable: tuple[Interval, ...]
    estimates: tuple[Interval, ...]
    unestimated: tuple[datetime, ...] = field(default=())


def on_grid(value: datetime) -> bool:
    """Return True if an aware datetime is a 15-minute interval start."""
    return value.tzinfo is not None and value.timestamp() % INTERVAL_SECONDS == 0


def grid(start: datetime, end: datetime) -> list[datetime]:
    """Return the interval starts in [start, end)."""
    if not (on_grid(start) and on_grid(end)):
        raise ValueError("start and end must be aware and on the 15-minute grid")
    count = int((end - start).total_seconds()) // INTERVAL_SECONDS
    first = start.astimezone(UTC)
    return [first + i * STEP for i in range(max(count, 0))]


def ended_by(now: datetime) -> datetime:
    """Return the end of the last interval that has ended by `now` (now floored to the grid)."""
    ts = math.floor(now.timestamp())
    return datetime.fromtimestamp(ts - ts % INTERVAL_SECONDS, tz=UTC)


# ---------------------------------------------------------------- validation


def is_active(status: str | None) -> bool:
    """Return True if a meter in this state counts as active for the zero-consumption rule."""
    return status not in INACTIVE_STATES


def find_gaps(
    intervals: Iterable[Interval], start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """Return (first missing start, length) for every run of missing intervals in [start, end)."""
    have = {i.start for i in intervals}
    gaps: list[tuple[datetime, int]] = []
    for slot in grid(start, end):
        if slot in have:
            continue
        if gaps and gaps[-1][0] + gaps[-1][1] * STEP == slot:
            gaps[-1] = (gaps[-1][0], gaps[-1][1] + 1)
        else:
            gaps.append((slot, 1))
    return gaps


def _avg_kw(interval: Interval) -> float:
    return interval.kwh / HOURS_PER_INTERVAL


def validate(
    intervals: Sequence[Interval],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    config: VeeConfig | None = None,
    registers: Sequence[RegisterRead] = (),
    active: bool = True,
) -> list[Finding]:
    """Check intervals with start in [start, end) against every rule; return the failures."""
    cfg = config or VeeConfig()
    rows = sorted((i for i in intervals if start <= i.start < end), key=lambda i: i.start)
    # An interval that has not ended yet is not missing.
    findings: list[Finding] = [
        Finding("gap", s, f"{n} missing interval(s) from {s.isoformat()}", n)
        for s, n in find_gaps(rows, start, max(start, min(end, ended_by(now))))
    ]
    for row in rows:
        if cfg.high_demand_kw is not None and row.demand_kw > cfg.high_demand_kw:
            findings.append(
                Finding(
                    "high_demand",
                    row.start,
                    f"demand {row.demand_kw:g} kW above the {cfg.high_demand_kw:g} kW limit",
                )
            )
        if cfg.low_demand_kw is not None and row.demand_kw < cfg.low_demand_kw:
            findings.append(
                Finding(
                    "low_demand",
                    row.start,
                    f"demand {row.demand_kw:g} kW below the {cfg.low_demand_kw:g} kW limit",
                )
            )
        expected = _avg_kw(row)
        allowed = max(cfg.demand_tolerance_kw, cfg.demand_tolerance_ratio * expected)
        if abs(row.demand_kw - expected) > allowed:
            findings.append(
                Finding(
                    "demand_consistency",
                    row.start,
                    f"demand {row.demand_kw:g} kW but {row.kwh:g} kWh means {expected:g} kW",
                )
            )
        if row.start + STEP > now + cfg.clock_tolerance:
            findings.append(
                Finding("clock", row.start, f"interval ends after now + {cfg.clock_tolerance}")
            )
        elif "clock_adjusted" in row.flags:
            findings.append(
                Finding("clock", row.start, "meter adjusted its clock in this interval")
            )
    findings.extend(_spikes(rows, cfg))
    if active:
        findings.extend(_zero_runs(rows, cfg))
    findings.extend(_sum_checks(rows, registers, cfg))
    findings.sort(key=lambda f: (f.start, f.rule))
    return findings


def _spikes(rows: Sequence[Interval], cfg: VeeConfig) -> list[Finding]:
    found: list[Finding] = []
    half = cfg.spike_window // 2
    for k, row in enumerate(rows):
        neighbours = [
            r.kwh
            for r in rows[max(0, k - half) : k + half + 1]
            if r is not row
            and abs((r.start - row.start).total_seconds()) <= half * INTERVAL_SECONDS
        ]
        if len(neighbours) < 2:
            continue
        median = statistics.median(neighbours)
        # A zero median (after an outage) has no ratio; zero runs are their own rule.
        if median > 0 and row.kwh >= cfg.spike_min_kwh and row.kwh > cfg.spike_ratio * median:
            found.append(
                Finding(
                    "spike",
                    row.start,
                    f"{row.kwh:g} kWh is over {cfg.spike_ratio:g}x the nearby median {median:g}",
                )
            )
    return found


def _zero_runs(rows: Sequence[Interval], cfg: VeeConfig) -> list[Finding]:
    found: list[Finding] = []
    run: list[Interval] = []
    for row in [*rows, None]:
        consecutive = row is not None and (not run or row.start - run[-1].start == STEP)
        if row is not None and row.kwh == 0 and consecutive:
            run.append(row)
            continue
        if len(run) >= cfg.zero_run_intervals:
            found.extend(
                Finding("zero_consumption", r.start, f"{len(run)} zero intervals in a row")
                for r in run
            )
        run = [row] if row is not None and row.kwh == 0 else []
    return found


def _sum_checks(
    rows: Sequence[Interval], registers: Sequence[RegisterRead], cfg: VeeConfig
) -> list[Finding]:
    found: list[Finding] = []
    reads = sorted(registers, key=lambda r: r.at)
    for a, b in itertools.pairwise(reads):
        inside = [r for r in rows if a.at <= r.start and r.start + STEP <= b.at]
        expected = int((b.at - a.at).total_seconds()) // INTERVAL_SECONDS
        if len(inside) < expected:
            continue  # a gap is reported as a gap; the sum of a partial set proves nothing
        total = math.fsum(r.kwh for r in inside)
        delta = b.kwh - a.kwh
        allowed = max(cfg.sum_tolerance_kwh, cfg.sum_tolerance_ratio * abs(delta))
        if abs(total - delta) > allowed:
            found.append(
                Finding(
                    "sum_check",
                    inside[0].start if inside else a.at,
                    f"register delta {delta:g} kWh but intervals sum to {total:g} kWh",
                    len(inside),
                )
            )
    return found


def mark_questionable(intervals: Sequence[Interval], findings: Iterable[Finding]) -> list[Interval]:
    """Return the valid intervals that a finding points at, re-flagged `questionable`."""
    suspect: set[datetime] = set()
    for f in findings:
        if f.rule == "gap":
            continue
        if f.rule == "sum_check":
            suspect.update(f.start + k * STEP for k in range(f.intervals))
        else:
            suspect.add(f.start)
    return [
        replace(i, quality=QUESTIONABLE)
        for i in intervals
        if i.start in suspect and i.quality == VALID
    ]


# ---------------------------------------------------------------- estimation


def _anchor_ok(interval: Interval | None) -> bool:
    # Only trustworthy actuals anchor a line: no estimate, no power-fail interval.
    return (
        interval is not None
        and interval.quality in (VALID, EDITED)
        and POWER_FAIL not in interval.flags
    )


def interpolate(before: Interval, after: Interval, missing: int) -> list[Interval]:
    """Fill `missing` slots between two anchors on a straight line (kWh, kVArh, kW)."""
    steps = missing + 1
    out: list[Interval] = []
    for k in range(1, missing + 1):
        frac = k / steps
        kwh = before.kwh + (after.kwh - before.kwh) * frac
        out.append(
            Interval(
                start=before.start + k * STEP,
                kwh=kwh,
                kvarh=before.kvarh + (after.kvarh - before.kvarh) * frac,
                demand_kw=kwh / HOURS_PER_INTERVAL,
                quality=ESTIMATED_LINEAR,
            )
        )
    return out


def _same_day_type(a: datetime, b: datetime) -> bool:
    return (a.weekday() >= 5) == (b.weekday() >= 5)


def reference_day(
    slot: datetime, by_start: Mapping[datetime, Interval], cfg: VeeConfig, tz: tzinfo
) -> Interval | None:
    """Average the same local time on earlier days of the same day type (weekday/weekend)."""
    local = slot.astimezone(tz)
    picked: list[Interval] = []
    for back in range(1, cfg.reference_lookback_days + 1):
        # Wall-clock arithmetic: "the same local time" across a DST change.
        day = (local - timedelta(days=back)).astimezone(UTC)
        if not _same_day_type(local, day.astimezone(tz)):
            continue
        found = by_start.get(day)
        if found is not None and found.quality in (VALID, EDITED):
            picked.append(found)
            if len(picked) == cfg.reference_days:
                break
    if not picked:
        return None
    kwh = statistics.fmean(p.kwh for p in picked)
    return Interval(
        start=slot,
        kwh=kwh,
        kvarh=statistics.fmean(p.kvarh for p in picked),
        demand_kw=kwh / HOURS_PER_INTERVAL,
        quality=ESTIMATED_REFERENCE_DAY,
    )


def estimate(
    intervals: Sequence[Interval],
    start: datetime,
    end: datetime,
    *,
    config: VeeConfig | None = None,
    tz: tzinfo = UTC,
    now: datetime | None = None,
) -> tuple[list[Interval], list[datetime]]:
    """Estimate every missing interval in [start, end); return (estimates, still missing).

    `intervals` should include history before `start` (for reference days) and up to the
    linear limit on either side of the range: a gap is judged whole, so one that crosses
    `start` or `end` is interpolated (or not) as it would be from a window holding all of
    it, and a scheduled window that moves a day at a time never splits it. With `now`,
    intervals that have not ended by then are neither estimated nor missing.
    """
    cfg = config or VeeConfig()
    if now is not None:
        end = min(end, ended_by(now))
    if end <= start:
        return [], []
    by_start = {i.start: i for i in intervals}
    max_linear = int(cfg.max_linear_gap.total_seconds()) // INTERVAL_SECONDS
    # Past this reach a gap is longer than the linear limit whatever lies beyond it.
    lo, hi = start - max_linear * STEP, end + max_linear * STEP
    estimates: list[Interval] = []
    missing: list[datetime] = []
    for gap_start, count in find_gaps([i for i in intervals if lo <= i.start < hi], lo, hi):
        gap_end = gap_start + count * STEP
        if gap_end <= start or gap_start >= end:
            continue
        before = by_start.get(gap_start - STEP)
        after = by_start.get(gap_end)
        if count <= max_linear and before and after and _anchor_ok(before) and _anchor_ok(after):
            estimates.extend(e for e in interpolate(before, after, count) if start <= e.start < end)
            continue
        for slot in grid(max(gap_start, start), min(gap_end, end)):
            found = reference_day(slot, by_start, cfg, tz)
            if found is None:
                missing.append(slot)
            else:
                estimates.append(found)
    return estimates, missing


# ---------------------------------------------------------------- editing


def edit(interval: Interval, *, kwh: float, demand_kw: float | None = None) -> Interval:
    """Return a person's correction of an interval, flagged `edited`."""
    if not math.isfinite(kwh) or kwh < 0:
        raise ValueError("kwh must be a finite, non-negative number")
    kw = kwh / HOURS_PER_INTERVAL if demand_kw is None else demand_kw
    return replace(interval, kwh=kwh, demand_kw=kw, quality=EDITED)


def run(
    intervals: Sequence[Interval],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    config: VeeConfig | None = None,
    registers: Sequence[RegisterRead] = (),
    active: bool = True,
    tz: tzinfo = UTC,
) -> VeeResult:
    """Validate [start, end), flag what fails, estimate what is missing."""
    cfg = config or VeeConfig()
    findings = validate(
        intervals, start, end, now=now, config=cfg, registers=registers, active=active
    )
    inside = [i for i in intervals if start <= i.start < end]
    flagged = mark_questionable(inside, findings)
    # Estimate from what this pass leaves trusted: a spike it flags is no end point for a
    # line, nor part of a reference day (the next pass would see it flagged and disagree).
    now_flagged = {i.start: i for i in flagged}
    trusted = [now_flagged.get(i.start, i) for i in intervals]
    estimates, missing = estimate(trusted, start, end, config=cfg, tz=tz, now=now)
    return VeeResult(tuple(findings), tuple(flagged), tuple(estimates), tuple(missing))


# ---------------------------------------------------------------- ingest plausibility


@dataclass(frozen=True, slots=True)
class Plausibility:
    """Limits past which a value is impossible, not merely suspicious: the ingest dead-letters it."""

    future_tolerance: timedelta = timedelta(hours=1)
    # Nothing before this was ever recorded by a Wattline endpoint.
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    # 100 MW is beyond any single C&I service; a meter reporting more is broken.
    max_demand_kw: float = 100_000.0
    max_volts: float = 50_000.0


def implausible(
    start: datetime,
    kwh: float,
    demand_kw: float,
    voltage: Sequence[float],
    *,
    now: datetime,
    limits: Plausibility,
    kvarh: float = 0.0,
) -> str | None:
    """Return why an interval cannot be real, or None."""
    if start > now + limits.future_tolerance:
        return (
            f"start {start.isoformat()} is more than {limits.future_tolerance} "
            f"after the receive time {now.isoformat()}"
        )
    if start < limits.earliest:
        return f"start {start.isoformat()} is before {limits.earliest.date()}"
    if demand_kw > limits.max_demand_kw:
        return f"demand_kw {demand_kw:g} exceeds {limits.max_demand_kw:g}"
    max_kwh = limits.max_demand_kw * HOURS_PER_INTERVAL
    if kwh > max_kwh:
        return f"kwh {kwh:g} exceeds {max_kwh:g} in 15 minutes"
    # Reactive energy is bounded by the same apparent power (either sign: leading or lagging).
    if abs(kvarh) > max_kwh:
        return f"kvarh {kvarh:g} exceeds {max_kwh:g} in 15 minutes"
    if any(v > limits.max_volts for v in voltage):
        return f"voltage above {limits.max_volts:g} V"
    return None


def all_plausible(
    starts: Sequence[datetime],
    kwh: Sequence[float],
    demand_kw: Sequence[float],
    phases: Sequence[Sequence[float | None]],
    *,
    now: datetime,
    limits: Plausibility,
    kvarh: Sequence[float] = (),
) -> bool:
    """Return True if `implausible` finds nothing in any of these intervals (given as columns).

    `phases` are the per-phase volts columns (None where a meter lacks the phase). The same
    limits taken as bounds over whole columns by C builtins: the ingest checks every
    message this way and asks `implausible` for a reason only when a bound is broken.
    """
    return (
        max(starts) <= now + limits.future_tolerance
        and min(starts) >= limits.earliest
        and max(demand_kw) <= limits.max_demand_kw
        and max(kwh) <= limits.max_demand_kw * HOURS_PER_INTERVAL
        and -limits.max_demand_kw * HOURS_PER_INTERVAL
        <= min(kvarh, default=0.0)
        <= max(kvarh, default=0.0)
        <= limits.max_demand_kw * HOURS_PER_INTERVAL
        and all(_peak(volts) <= limits.max_volts for volts in phases)
    )


def register_implausible(at: datetime, *, now: datetime, limits: Plausibility) -> str | None:
    """Return why a register read's time cannot be real, or None.

    It is read at the end of the newest interval, so up to one interval past the readings'
    own limit.
    """
    latest = now + limits.future_tolerance + STEP
    if not limits.earliest <= at <= latest:
        return f"register.at {at.isoformat()} is outside {limits.earliest.date()} to {latest.isoformat()}"
    return None


def _peak(volts: Sequence[float | None]) -> float:
    # max() over the column as it is; only when a None is in it (a phase a meter lacks:
    # max raises, or returns a lone None) are the present values picked out.
    try:
        peak = max(volts, default=0.0)  # type: ignore[type-var]
    except TypeError:
        peak = None
    if peak is None:
        return max((v for v in volts if v is not None), default=0.0)
    return peak


def ingest_quality(flags: Iterable[str]) -> Quality:
    """Return the quality an arriving actual gets: questionable if the meter doubts it."""
    return QUESTIONABLE if flags and not DOUBTFUL_FLAGS.isdisjoint(flags) else VALID
