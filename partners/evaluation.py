"""Partner evaluation matrix: distribution strength and synergy criteria, weights, ranking.

Every criterion is turned into a 0..1 score before weighting so that a count of utility
customers and a 1-5 fit rating can be added up: counts are divided by the largest value
among the candidates compared (the best candidate scores 1), ratings are mapped linearly
from 1..5 to 0..1. The total is the weighted mean times 100. Ranking ties break by name
so the order never depends on input order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Group = Literal["distribution", "synergy"]
PARTNER_TYPES: Final = ("meter_manufacturer", "telecom", "software", "distributor")
TIERS: Final = ("gold", "silver", "bronze")


class EvaluationError(ValueError):
    """Reject bad weights or candidates; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Criterion:
    """One column of the matrix: how a candidate attribute becomes a 0..1 score."""

    key: str
    label: str
    group: Group
    kind: Literal["count", "rating"]
    default_weight: float


CRITERIA: Final[tuple[Criterion, ...]] = (
    Criterion("utility_customers", "Utility customers", "distribution", "count", 25),
    Criterion("sales_reps", "Sales reps", "distribution", "count", 15),
    Criterion("avg_rep_tenure_years", "Average rep tenure", "distribution", "count", 10),
    Criterion("compensation_alignment", "Compensation alignment", "distribution", "rating", 10),
    Criterion("network_fit", "Private/public network fit", "synergy", "rating", 15),
    Criterion("mdm_fit", "Meter-data software fit", "synergy", "rating", 15),
    Criterion("vendor_neutrality", "Meter-vendor neutrality", "synergy", "rating", 10),
)
CRITERION_KEYS: Final = tuple(c.key for c in CRITERIA)
DEFAULT_WEIGHTS: Final[dict[str, float]] = {c.key: c.default_weight for c in CRITERIA}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A partner or partner candidate as the matrix sees it (ratings are 1..5)."""

    id: str
    name: str
    partner_type: str
    tier: str
    utility_customers: int
    sales_reps: int
    avg_rep_tenure_years: float
    compensation_alignment: float
    network_fit: float
    mdm_fit: float
    vendor_neutrality: float

    def attribute(self, key: str) -> float:
        """Return the raw value of one criterion."""
        return float(getattr(self, key))


@dataclass(frozen=True, slots=True)
class Scored:
    """A candidate's place in a ranking with its per-criterion scores (0..1)."""

    candidate: Candidate
    rank: int
    total: float
    distribution: float
    synergy: float
    criteria: dict[str, float]


def validate_weights(raw: Mapping[str, object]) -> dict[str, float]:
    """Return complete weights from a partial mapping; unknown, negative or all-zero weights fail."""
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in raw.items():
        field = f"weights.{key}"
        if key not in DEFAULT_WEIGHTS:
            raise EvaluationError(field, "unknown criterion")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EvaluationError(field, f"must be a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise EvaluationError(field, "must be a finite number >= 0")
        if number > 1000:
            raise EvaluationError(field, "must be at most 1000")
        weights[key] = number
    if sum(weights.values()) <= 0:
        raise EvaluationError("weights", "at least one weight must be above zero")
    return weights


def _criterion_scores(candidates: Sequence[Candidate]) -> list[dict[str, float]]:
    maxima = {
        c.key: max((x.attribute(c.key) for x in candidates), default=0.0)
        for c in CRITERIA
        if c.kind == "count"
    }
    out: list[dict[str, float]] = []
    for cand in candidates:
        scores: dict[str, float] = {}
        for c in CRITERIA:
            value = cand.attribute(c.key)
            if c.kind == "count":
                top = maxima[c.key]
                scores[c.key] = value / top if top > 0 else 0.0
            else:
                scores[c.key] = min(max((value - 1.0) / 4.0, 0.0), 1.0)
        out.append(scores)
    return out


def rank(candidates: Sequence[Candidate], weights: Mapping[str, float]) -> list[Scored]:
    """Score and rank candidates (best first) with complete, validated weights."""
    total_weight = sum(weights[k] for k in CRITERION_KEYS)
    if total_weight <= 0:
        raise EvaluationError("weights", "at least one weight must be above zero")
    rows = []
    for cand, scores in zip(candidates, _criterion_scores(candidates), strict=True):
        by_group: dict[Group, float] = {"distribution": 0.0, "synergy": 0.0}
        for c in CRITERIA:
            by_group[c.group] += weights[c.key] * scores[c.key]
        total = 100.0 * (by_group["distribution"] + by_group["synergy"]) / total_weight
        rows.append(
            (
                cand,
                total,
                100.0 * by_group["distribution"] / total_weight,
                100.0 * by_group["synergy"] / total_weight,
                scores,
            )
        )
    # Round before sorting so float dust never decides a rank; ties break by name.
    rows.sort(key=lambda r: (-round(r[1], 9), r[0].name, r[0].id))
    return [
        Scored(cand, i + 1, total, dist, syn, scores)
        for i, (cand, total, dist, syn, scores) in enumerate(rows)
    ]


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """How the ranking moves when one criterion's weight is scaled down and up."""

    criterion: str
    low_weight: float
    high_weight: float
    leader_low: str
    leader_high: str
    moved_low: int
    moved_high: int
    max_shift: int

    @property
    def leader_changes(self) -> bool:
        """Return True if scaling this weight changes who ranks first."""
        return self.leader_low != self.leader_high


def sensitivity(
    candidates: Sequence[Candidate], weights: Mapping[str, float], factor: float = 0.5
) -> list[Sensitivity]:
    """Scale each weight by (1 - factor) and (1 + factor) and report rank changes, most sensitive first."""
    if not 0 < factor <= 1:
        raise EvaluationError("factor", "must be in (0, 1]")
    if not candidates:
        return []
    base = {s.candidate.id: s.rank for s in rank(candidates, weights)}
    out = []
    for key in CRITERION_KEYS:
        results = []
        for scale in (1.0 - factor, 1.0 + factor):
            changed = dict(weights)
            changed[key] = weights[key] * scale
            if sum(changed.values()) <= 0:
                # Scaling the only non-zero weight to zero leaves nothing to rank by.
                ranked = rank(candidates, weights)
            else:
                ranked = rank(candidates, changed)
            results.append(ranked)
        low, high = results
        shifts_low = [abs(s.rank - base[s.candidate.id]) for s in low]
        shifts_high = [abs(s.rank - base[s.candidate.id]) for s in high]
        out.append(
            Sensitivity(
                criterion=key,
                low_weight=weights[key] * (1.0 - factor),
                high_weight=weights[key] * (1.0 + factor),
                leader_low=low[0].candidate.id,
                leader_high=high[0].candidate.id,
                moved_low=sum(1 for s in shifts_low if s),
                moved_high=sum(1 for s in shifts_high if s),
                max_shift=max(shifts_low + shifts_high),
            )
        )
    out.sort(key=lambda s: (-s.max_shift, -(s.moved_low + s.moved_high), s.criterion))
    return out
