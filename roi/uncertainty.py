"""Ranges instead of point estimates: low/base/high cases, a tornado and a seeded Monte Carlo.

Every input's (low, value, high) is its range; inputs whose low equals high (the
customer's own counts, unless given a range) stay fixed. All scenarios of a tornado or a
Monte Carlo are evaluated in one vectorised call of the segment model. Inputs are drawn
independently (no correlation between them is modelled). NPV uses the year0 convention
throughout; P10 is the 10th percentile (the pessimistic end), P90 the 90th.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from roi import finance
from roi.finance import FloatArray
from roi.inputs import RoiInputs
from roi.models import RoiResult, evaluate, run

Distribution = Literal["pert", "triangular"]
DEFAULT_DRAWS: Final = 10_000
MIN_DRAWS: Final = 1_000


def _ranged(inputs: RoiInputs) -> list[str]:
    return [name for name, item in inputs.inputs.items() if item.low < item.high]


def _npv_of(inputs: RoiInputs, values: dict[str, Any]) -> FloatArray:
    flows = evaluate(inputs.segment, values, inputs.horizon_years)
    return finance.npv_many(inputs.discount_rate, flows.net)


# --- Tornado and cases ---------------------------------------------------------------------


@dataclass(frozen=True)
class TornadoBar:
    """NPV with one input at its low and at its high end, all others at base."""

    name: str
    unit: str
    base_value: float
    low_value: float
    high_value: float
    npv_at_low: float
    npv_at_high: float

    @property
    def swing(self) -> float:
        """Return the width of the bar: |NPV at high - NPV at low|."""
        return abs(self.npv_at_high - self.npv_at_low)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {
            "name": self.name,
            "unit": self.unit,
            "base_value": self.base_value,
            "low_value": self.low_value,
            "high_value": self.high_value,
            "npv_at_low": self.npv_at_low,
            "npv_at_high": self.npv_at_high,
            "swing": self.swing,
        }


@dataclass(frozen=True)
class Tornado:
    """One-at-a-time sensitivity of NPV, widest bar first."""

    base_npv: float
    bars: tuple[TornadoBar, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {"base_npv": self.base_npv, "bars": [bar.to_dict() for bar in self.bars]}


def tornado(inputs: RoiInputs) -> Tornado:
    """Move each ranged input to its low and high end in turn; sort by NPV swing."""
    names = _ranged(inputs)
    rows = 2 * len(names) + 1
    values: dict[str, Any] = {k: np.full(rows, v) for k, v in inputs.values().items()}
    for i, name in enumerate(names):
        values[name][2 * i] = inputs.inputs[name].low
        values[name][2 * i + 1] = inputs.inputs[name].high
    npvs = _npv_of(inputs, values)
    bars = [
        TornadoBar(
            name=name,
            unit=inputs.inputs[name].unit,
            base_value=inputs.inputs[name].value,
            low_value=inputs.inputs[name].low,
            high_value=inputs.inputs[name].high,
            npv_at_low=float(npvs[2 * i]),
            npv_at_high=float(npvs[2 * i + 1]),
        )
        for i, name in enumerate(names)
    ]
    # Stable sort: equal swings keep the catalogue's order, so the chart does not flicker.
    bars.sort(key=lambda bar: bar.swing, reverse=True)
    return Tornado(base_npv=float(npvs[-1]), bars=tuple(bars))


def cases(inputs: RoiInputs, bars: Tornado | None = None) -> dict[str, RoiResult]:
    """Return the low, base and high cases: every ranged input at its worse or better end.

    Which end is worse is read from the tornado (the end that gives the lower NPV), so a
    cost's high end and a saving's low end both land in the low case.
    """
    bars = tornado(inputs) if bars is None else bars
    worse = {
        b.name: b.low_value if b.npv_at_low <= b.npv_at_high else b.high_value for b in bars.bars
    }
    better = {
        b.name: b.high_value if b.npv_at_low <= b.npv_at_high else b.low_value for b in bars.bars
    }
    return {
        "low": run(inputs.with_values(**worse)),
        "base": run(inputs),
        "high": run(inputs.with_values(**better)),
    }


# --- Monte Carlo ---------------------------------------------------------------------------


def draw(
    rng: np.random.Generator,
    low: float,
    mode: float,
    high: float,
    size: int,
    distribution: Distribution = "pert",
) -> FloatArray:
    """Draw from a triangular or PERT distribution over (low, mode, high); a point stays put."""
    if not low <= mode <= high:
        raise ValueError(f"need low <= mode <= high, got {low}, {mode}, {high}")
    if low == high:
        return np.full(size, float(mode))
    width = high - low
    if distribution == "pert":
        # Beta-PERT with the usual weight 4 on the mode.
        alpha = 1 + 4 * (mode - low) / width
        beta = 1 + 4 * (high - mode) / width
        result: FloatArray = low + width * rng.beta(alpha, beta, size)
        return result
    if distribution == "triangular":
        result = rng.triangular(low, mode, high, size)
        return result
    raise ValueError(f"unknown distribution {distribution!r}; use 'pert' or 'triangular'")


@dataclass(frozen=True, eq=False)
class MonteCarloResult:
    """Distribution of NPV and payback over the draws."""

    draws: int
    distribution: Distribution
    p10: float
    p50: float
    p90: float
    mean: float
    probability_npv_positive: float
    probability_payback: float
    probability_discounted_payback: float
    npv: FloatArray
    payback_years: FloatArray

    def histogram(self, bins: int = 40) -> dict[str, list[float]]:
        """Return NPV histogram bin edges and counts for a chart (finite NPVs only)."""
        npv = self.npv[np.isfinite(self.npv)]
        if npv.size == 0:
            return {"edges": [], "counts": []}
        low, high = float(npv.min()), float(npv.max())
        if high - low <= 1e-9 * max(abs(low), abs(high), 1.0):
            # Every input pinned: the NPVs differ in their last bits at most, too little to
            # split into bins (numpy refuses). One bar, its edges just either side.
            pad = max(abs(high), 1.0) * 1e-6
            counts, edges = np.histogram(npv, bins=1, range=(low - pad, high + pad))
        else:
            counts, edges = np.histogram(npv, bins=bins)
        return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able summary (without the raw draws)."""
        return {
            "draws": self.draws,
            "distribution": self.distribution,
            "p10": self.p10,
            "p50": self.p50,
            "p90": self.p90,
            "mean": self.mean,
            "probability_npv_positive": self.probability_npv_positive,
            "probability_payback": self.probability_payback,
            "probability_discounted_payback": self.probability_discounted_payback,
            "histogram": self.histogram(),
        }


def monte_carlo(
    inputs: RoiInputs,
    rng: np.random.Generator,
    draws: int = DEFAULT_DRAWS,
    distribution: Distribution = "pert",
) -> MonteCarloResult:
    """Sample every ranged input independently and evaluate all draws in one vectorised call."""
    if draws < MIN_DRAWS:
        raise ValueError(f"draws must be at least {MIN_DRAWS}, got {draws}")
    values: dict[str, Any] = inputs.values()
    for name in _ranged(inputs):
        item = inputs.inputs[name]
        values[name] = draw(rng, item.low, item.value, item.high, draws, distribution)
    flows = evaluate(inputs.segment, values, inputs.horizon_years)
    if flows.net.shape[0] != draws:  # no ranged input at all: every draw is the base case
        flows = evaluate(
            inputs.segment,
            {k: np.full(draws, v) for k, v in inputs.values().items()},
            inputs.horizon_years,
        )
    net = flows.net
    npvs = finance.npv_many(inputs.discount_rate, net)
    payback = finance.payback_many(net)
    discounted_payback = finance.discounted_payback_many(inputs.discount_rate, net)
    p10, p50, p90 = np.percentile(npvs, [10, 50, 90])
    return MonteCarloResult(
        draws=draws,
        distribution=distribution,
        p10=float(p10),
        p50=float(p50),
        p90=float(p90),
        mean=float(npvs.mean()),
        probability_npv_positive=float(np.mean(npvs > 0)),
        probability_payback=float(np.mean(~np.isnan(payback))),
        probability_discounted_payback=float(np.mean(~np.isnan(discounted_payback))),
        npv=npvs,
        payback_years=payback,
    )
