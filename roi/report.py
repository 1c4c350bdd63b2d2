"""What every ROI report shares: who it is for and from, number formatting, the CSV export.

The builders (``roi.pdf``, ``roi.workbook`` and ``cash_flow_csv`` here) are pure: they take
a validated input set, the evaluated result and a ``ReportContext`` and return bytes, so
the portal, a CLI or a test can produce the same file.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np

from roi.inputs import MODEL_VERSION, RoiInputs
from roi.models import CATEGORY_LABELS, RoiResult, run
from roi.uncertainty import DEFAULT_DRAWS, MonteCarloResult, Tornado, cases, monte_carlo, tornado

# The Monte Carlo seed every report uses, so the same inputs always give the same figures.
REPORT_SEED: Final = 20_260_101

SEGMENT_TITLES: Final[dict[str, str]] = {
    "iou": "Investor-owned utility: endpoint purchase",
    "service_bureau": "Municipal / co-op: hosted service bureau",
    "security": "Secured buildings: site visits avoided",
}
METHODOLOGY: Final[tuple[str, ...]] = (
    "Expense avoidance: every figure compares running the meters with wireless endpoints "
    "against today's way of reading them. Savings are costs the customer stops paying; "
    "costs are what the wireless solution adds.",
    "Year 0 is the investment year: equipment, installation, integration and one-off fees "
    "land there. Running costs and savings start in year 1 and escalate yearly from year 2 "
    "on at the escalation rates in the assumptions.",
    "Discounting: NPV discounts year t by (1 + r)^t, so year 0 is not discounted "
    "(numpy-financial's convention). A spreadsheet's NPV() discounts its first value one "
    "period, which is why the workbook computes NPV as year 0 + NPV(r, years 1..n).",
    "Simple payback is the time after which the cumulative cash flow stays at or above "
    "zero, interpolated within the year it crosses; discounted payback does the same on "
    "discounted flows. A later outlay (such as a network-sunset replacement) pushes "
    "payback out instead of being hidden behind an earlier crossing.",
    "IRR is the rate at which NPV is zero; MIRR finances costs and reinvests gains at the "
    "discount rate. Benefit/cost is the present value of savings over the present value "
    "of costs.",
    "Ranges: the tornado moves each input to the ends of its range one at a time; the "
    "Monte Carlo draws every ranged input independently from a PERT distribution over "
    "(low, value, high) with a fixed seed, so the same inputs give the same figures.",
)


@dataclass(frozen=True)
class ReportContext:
    """Who a report is for and from, and when it was made (time is a parameter, not read)."""

    customer_name: str
    prepared_on: date
    vendor_name: str = "Wattline"
    distributor_name: str | None = None
    vendor_logo: bytes | None = None
    distributor_logo: bytes | None = None
    prepared_by: str | None = None
    model_version: str = MODEL_VERSION
    scenario_label: str | None = None
    extra_notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, eq=False)
class Analysis:
    """One scenario fully evaluated: the result, its tornado, its cases and its Monte Carlo."""

    inputs: RoiInputs
    result: RoiResult
    tornado: Tornado
    cases: dict[str, RoiResult]
    monte_carlo: MonteCarloResult


def analyse(inputs: RoiInputs, seed: int = REPORT_SEED, draws: int = DEFAULT_DRAWS) -> Analysis:
    """Evaluate a scenario with its tornado, low/base/high cases and a seeded Monte Carlo."""
    bars = tornado(inputs)
    return Analysis(
        inputs=inputs,
        result=run(inputs),
        tornado=bars,
        cases=cases(inputs, bars),
        monte_carlo=monte_carlo(inputs, np.random.default_rng(seed), draws),
    )


def money(value: float | None) -> str:
    """Format dollars without cents, minus sign first: -$1,234 (the page formats the same)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    rounded = round(value)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.0f}"


def percent(value: float | None, digits: int = 1) -> str:
    """Format a fraction as a percentage, or n/a."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:.{digits}f} %"


# Past this a rate of return says only that the outlay is tiny next to the savings (a
# service bureau's onboarding fee gave "2502.6 %"): reports say so instead of the figure.
RATE_SHOWN_UP_TO: Final = 1.0


def rate_of_return(value: float | None) -> str:
    """Format an IRR or MIRR as a percentage, "over 100 %" past that, or n/a."""
    if value is not None and math.isfinite(value) and value > RATE_SHOWN_UP_TO:
        return f"over {RATE_SHOWN_UP_TO * 100:.0f} %"
    return percent(value)


def years(value: float | None, horizon: int) -> str:
    """Format a payback in years, or say it is not reached within the horizon."""
    if value is None or not math.isfinite(value):
        return f"not within {horizon} years"
    if value < 1:
        # A fraction of a year reads better in months (0.04 years is "0.5 months").
        return f"{value * 12:.1f} months"
    return f"{value:.1f} years"


def label(category: str) -> str:
    """Return a category's display label."""
    return CATEGORY_LABELS.get(category, category.replace("_", " ").capitalize())


_INPUT_LABELS: Final[dict[str, str]] = {
    "cost_per_read": "Back-office cost per read",
    "modem_line_monthly": "Modem line, per month",
    "modem_maintenance_annual": "Modem maintenance, per line-year",
    "endpoint_maintenance_annual": "Endpoint maintenance, per year",
    "owned_staff_fte": "In-house staff (FTE)",
    "re_reads_per_year": "Re-reads per year",
}


def input_label(name: str) -> str:
    """Return a short display label for an input name."""
    return _INPUT_LABELS.get(name, name.replace("_", " ").capitalize())


def executive_summary(inputs: RoiInputs, result: RoiResult, context: ReportContext) -> list[str]:
    """Say in plain words what the model found, one paragraph per sentence group."""
    horizon = result.horizon_years
    first = result.cash_flows[0]
    upfront = first["capex"] + first["opex"]
    yearly_savings = result.cash_flows[1]["avoided"] if horizon >= 1 else 0.0
    yearly_costs = result.cash_flows[1]["opex"] if horizon >= 1 else 0.0
    top = sorted(result.savings_by_category.items(), key=lambda kv: kv[1], reverse=True)[:3]
    verdict = (
        "pays for itself" if result.npv >= 0 else "does not pay for itself on these assumptions"
    )
    paragraphs = [
        f"Over {horizon} years, moving {context.customer_name}'s meters to wireless "
        f"telemetry {verdict}: the net present value is {money(result.npv)} at a "
        f"{percent(result.discount_rate)} discount rate.",
        f"It needs {money(upfront)} up front and then saves about {money(yearly_savings)} "
        f"a year against {money(yearly_costs)} of running costs in the first year. "
        f"Simple payback: {years(result.simple_payback_years, horizon)}; discounted "
        f"payback: {years(result.discounted_payback_years, horizon)}; internal rate of "
        f"return: {rate_of_return(result.irr)}.",
    ]
    if top:
        parts = ", ".join(f"{label(k).lower()} ({money(v)})" for k, v in top)
        paragraphs.append(f"The largest savings over the period are {parts}.")
    if result.after_tax is not None:
        paragraphs.append(
            f"After income tax with straight-line depreciation the NPV is "
            f"{money(result.after_tax.npv)}."
        )
    if inputs.segment == "iou" and inputs.value("sunset_share") > 0:
        share = percent(inputs.value("sunset_share"), 0)
        # The model rounds the year and counts a replacement only inside the horizon.
        year = max(round(inputs.value("sunset_year")), 1)
        paragraphs.append(
            f"The model assumes {share} of endpoints sit on a network that shuts down in "
            + (
                f"year {year} and are replaced then."
                if year <= horizon
                else f"year {year}, after this {horizon}-year period, so no replacement is counted."
            )
        )
    return paragraphs


CSV_COLUMNS: Final[tuple[str, ...]] = (
    "year",
    "capex",
    "opex",
    "avoided",
    "net",
    "cumulative",
    "discount_factor",
    "discounted",
    "cumulative_discounted",
)


def cash_flow_csv(result: RoiResult) -> bytes:
    """Return the year-by-year cash flows as UTF-8 CSV: totals first, then each category."""
    rows = result.cash_flows
    extra = [k for k in rows[0] if k not in CSV_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *extra])
    for row in rows:
        writer.writerow(
            [int(row["year"]), *(repr(float(row[k])) for k in (*CSV_COLUMNS[1:], *extra))]
        )
    return buffer.getvalue().encode("utf-8")
