"""Cash-flow arithmetic: NPV, IRR, MIRR, payback, cumulative flows, benefit/cost ratio.

Flows are yearly, index 0 is the investment year. Two NPV conventions exist and a report
must say which it uses:

* ``"year0"`` (numpy-financial, and this project's API): year t is discounted by
  (1 + r)**t, so year 0 is undiscounted.
* ``"spreadsheet"`` (Excel/LibreOffice ``NPV``): the first value is discounted one
  period, i.e. value i is discounted by (1 + r)**(i + 1).

Payback is the time after which the cumulative flow never goes negative again, linearly
interpolated inside the year it crosses zero (the year's flow is taken as spread evenly).
A later negative flow, such as a network-sunset replacement, therefore pushes payback out
instead of being hidden behind an earlier crossing. ``None`` (or NaN in the vectorised
variants) means never paid back within the flows given.
"""

from __future__ import annotations

import math
from typing import Final, Literal

import numpy as np
import numpy_financial as npf  # type: ignore[import-untyped]  # ships no type hints
from numpy.typing import ArrayLike, NDArray

Convention = Literal["year0", "spreadsheet"]
CONVENTIONS: Final[tuple[Convention, ...]] = ("year0", "spreadsheet")

FloatArray = NDArray[np.float64]


def _as_flows(flows: ArrayLike, ndim: int) -> FloatArray:
    """Return flows as a float array of the given rank, refusing empty or non-finite input."""
    arr = np.asarray(flows, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"flows must be {ndim}-D, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise ValueError("flows must contain at least one year")
    if not np.all(np.isfinite(arr)):
        raise ValueError("flows must be finite")
    return arr


def discount_factors(rate: float, years: int, convention: Convention = "year0") -> FloatArray:
    """Return the factor each year's flow is multiplied by to get its present value."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {CONVENTIONS}")
    shift = 1 if convention == "spreadsheet" else 0
    exponents = np.arange(years, dtype=np.float64) + shift
    factors: FloatArray = (1.0 + rate) ** -exponents
    return factors


def npv(rate: float, flows: ArrayLike, convention: Convention = "year0") -> float:
    """Return the net present value of yearly flows under the given convention."""
    arr = _as_flows(flows, 1)
    return float(arr @ discount_factors(rate, arr.size, convention))


def npv_many(rate: float, flows: ArrayLike, convention: Convention = "year0") -> FloatArray:
    """Return the NPV of each row of a (draws x years) array."""
    arr = _as_flows(flows, 2)
    result: FloatArray = arr @ discount_factors(rate, arr.shape[1], convention)
    return result


def discounted(rate: float, flows: ArrayLike) -> FloatArray:
    """Return each year's flow discounted to year 0 (year0 convention); works on 1-D or 2-D."""
    arr = np.asarray(flows, dtype=np.float64)
    result: FloatArray = arr * discount_factors(rate, arr.shape[-1])
    return result


def cumulative(flows: ArrayLike) -> FloatArray:
    """Return the running total of the flows along the year axis."""
    result: FloatArray = np.cumsum(np.asarray(flows, dtype=np.float64), axis=-1)
    return result


def irr(flows: ArrayLike) -> float | None:
    """Return the internal rate of return, or None when the flows have no real IRR."""
    arr = _as_flows(flows, 1)
    if not (np.any(arr > 0) and np.any(arr < 0)):
        return None
    with np.errstate(over="ignore", divide="ignore"):
        value = float(npf.irr(arr))
    # A near-zero outlay against real savings has no meaningful rate: numpy-financial
    # answers infinity, which no report or JSON answer can show.
    return value if math.isfinite(value) else None


def mirr(flows: ArrayLike, finance_rate: float, reinvest_rate: float) -> float | None:
    """Return the modified IRR (costs financed, gains reinvested), or None without both signs."""
    arr = _as_flows(flows, 1)
    if arr.size < 2 or not (np.any(arr > 0) and np.any(arr < 0)):
        return None
    with np.errstate(over="ignore", divide="ignore"):
        value = float(npf.mirr(arr, finance_rate, reinvest_rate))
    return value if math.isfinite(value) else None


def payback_many(flows: ArrayLike) -> FloatArray:
    """Return the interpolated payback year of each row of a (draws x years) array, NaN if never."""
    arr = _as_flows(flows, 2)
    cum = np.cumsum(arr, axis=1)
    years = arr.shape[1]
    # Rounding dust (1080 at 8 % discounts to 999.9999999999999) must not turn an exact
    # break-even into "never": a cumulative within a billionth of the row's largest flow
    # counts as zero.
    tolerance = 1e-9 * np.maximum(np.abs(arr).max(axis=1, initial=0.0), 1.0)
    negative = cum < -tolerance[:, np.newaxis]
    # Index of the last negative cumulative value per row (-1 when there is none).
    last_negative = np.where(
        negative.any(axis=1), years - 1 - np.argmax(negative[:, ::-1], axis=1), -1
    )
    result = np.full(arr.shape[0], np.nan)
    never_negative = last_negative == -1
    result[never_negative] = 0.0
    crosses = (last_negative >= 0) & (last_negative < years - 1)
    rows = np.nonzero(crosses)[0]
    before = last_negative[rows]
    below = cum[rows, before]
    step = cum[rows, before + 1] - below
    result[rows] = before + (-below / step)
    return result


def payback(flows: ArrayLike) -> float | None:
    """Return the simple payback in years, interpolated within the year, or None if never."""
    value = float(payback_many(_as_flows(flows, 1)[np.newaxis, :])[0])
    return None if math.isnan(value) else value


def discounted_payback_many(rate: float, flows: ArrayLike) -> FloatArray:
    """Return the discounted payback year of each row (year0 convention), NaN if never."""
    return payback_many(discounted(rate, _as_flows(flows, 2)))


def discounted_payback(rate: float, flows: ArrayLike) -> float | None:
    """Return the discounted payback in years (year0 convention), or None if never."""
    return payback(discounted(rate, _as_flows(flows, 1)))


def benefit_cost_ratio(rate: float, benefits: ArrayLike, costs: ArrayLike) -> float | None:
    """Return PV(benefits) / PV(costs) with costs as positive amounts; None when costs are 0."""
    pv_costs = npv(rate, costs)
    if pv_costs <= 0:
        return None
    ratio = npv(rate, benefits) / pv_costs
    # Costs too small to divide by (a denormal fee) make it infinite: as good as none.
    return ratio if math.isfinite(ratio) else None
