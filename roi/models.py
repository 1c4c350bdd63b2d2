"""Segment models: year-by-year capex, opex and avoided costs, and the figures derived from them.

Conventions (a report should quote them):

* Year 0 is the investment year: capex and one-off fees land there; running costs and
  avoided costs start in year 1 and escalate yearly from year 2 on, (1 + e)**(t - 1).
* Costs are positive amounts in ``capex`` and ``opex``; ``net = avoided - capex - opex``.
* ``npv`` uses the year0 convention (year t discounted by (1 + r)**t, year 0 undiscounted);
  MIRR finances and reinvests at the discount rate; benefit/cost is PV(avoided) over
  PV(capex + opex), pre-tax.
* Only the IOU model has an after-tax view: municipal utilities, co-ops and government
  buildings pay no income tax. Capex depreciates straight-line from the year after it is
  spent; a negative taxable amount is a tax saving (the utility has other taxable income);
  no terminal value is counted at the horizon.
* Network sunset (IOU): in year ``sunset_year`` (rounded) the ``sunset_share`` of endpoints
  is replaced at today's installed price (hardware prices tend to fall while labour rises;
  they are taken to cancel); a sunset after the horizon costs nothing within it. The
  stranded endpoints keep depreciating on their original schedule.

Every model evaluates n scenarios at once: each input is an array of n values and every
table is an (n, horizon + 1) array, so the Monte Carlo and tornado run without a Python
loop per draw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike

from roi import finance
from roi.finance import FloatArray
from roi.inputs import MODEL_VERSION, RoiInputError, RoiInputs, Segment

CATEGORY_LABELS: Final[dict[str, str]] = {
    # capex
    "endpoints": "Endpoint hardware",
    "installation": "Installation",
    "integration": "Integration",
    "sunset_replacement": "Network-sunset replacement",
    # opex
    "cellular": "Cellular plans",
    "hosting": "Hosting",
    "maintenance": "Endpoint maintenance",
    "subscription": "Service-bureau subscription",
    "onboarding": "Onboarding fee",
    # avoided
    "modem_lines": "Telephone-modem lines",
    "modem_maintenance": "Modem maintenance",
    "manual_reads": "Manual reads and re-reads",
    "reader_labour": "Meter-reader labour",
    "mileage": "Mileage",
    "estimated_bills": "Estimated-bill handling",
    "truck_rolls": "Truck rolls",
    "owned_software": "Own reading software (today)",
    "owned_staff": "Own reading staff time (today)",
    "reader_time": "Reader time in secured sites",
    "escort": "Escort hours",
    "access_processing": "Badge and access processing",
}

SECURITY_RISKS: Final[tuple[str, ...]] = (
    "Every avoided visit removes a reader, an escort, a badge issuance and an access event "
    "from the building: fewer people inside secured areas is the main benefit, beyond cost.",
    "Radio endpoints inside secured buildings may need a site survey, an external antenna "
    "or the security officer's approval where transmitters are restricted.",
    "Meter data leaves the building over a public cellular network: it is encrypted in "
    "transit and endpoints accept commands only from the head-end.",
    "Tamper, removal and outage events are reported as they happen instead of being found "
    "at the next visit.",
    "A cellular network shutdown would force endpoint replacement, with another escorted "
    "installation visit per site.",
)


# --- Vectorised flows ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Flows:
    """Year-by-year flows by category for n scenarios: every array is (n, horizon + 1)."""

    capex: dict[str, FloatArray]
    opex: dict[str, FloatArray]
    avoided: dict[str, FloatArray]
    depreciation: FloatArray | None = None
    tax: FloatArray | None = None

    def _total(self, parts: Mapping[str, FloatArray]) -> FloatArray:
        # Avoided costs are never empty, so they give the shape when a group has no parts.
        shape = next(iter(self.avoided.values())).shape
        total: FloatArray = np.zeros(shape) + sum(parts.values(), np.zeros(shape))
        return total

    @property
    def capex_total(self) -> FloatArray:
        """Return capex per year."""
        return self._total(self.capex)

    @property
    def opex_total(self) -> FloatArray:
        """Return running costs per year."""
        return self._total(self.opex)

    @property
    def avoided_total(self) -> FloatArray:
        """Return avoided costs per year."""
        return self._total(self.avoided)

    @property
    def net(self) -> FloatArray:
        """Return the pre-tax net cash flow per year."""
        result: FloatArray = self.avoided_total - self.capex_total - self.opex_total
        return result

    @property
    def net_after_tax(self) -> FloatArray | None:
        """Return the after-tax net cash flow per year, or None for tax-exempt segments."""
        if self.tax is None:
            return None
        result: FloatArray = self.net - self.tax
        return result


class _Ctx:
    """Input arrays broadcast to n scenarios plus the year grid and escalation factors."""

    def __init__(self, values: Mapping[str, ArrayLike], horizon: int) -> None:
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in values.items()}
        self.n = max((a.size for a in arrays.values()), default=1)
        self.v = {k: np.broadcast_to(a.reshape(-1), (self.n,)) for k, a in arrays.items()}
        self.horizon = horizon
        self.years = np.arange(horizon + 1, dtype=np.float64)
        self.running = (self.years >= 1).astype(np.float64)

    def __getitem__(self, name: str) -> FloatArray:
        return self.v[name]

    def growth(self, rate_name: str) -> FloatArray:
        """Return (n, H+1) factors: 0 in year 0, (1 + e)**(t - 1) from year 1."""
        rate = self.v[rate_name][:, np.newaxis]
        result: FloatArray = self.running * (1.0 + rate) ** np.maximum(self.years - 1, 0)
        return result

    def year0(self, amount: FloatArray) -> FloatArray:
        """Return an (n, H+1) table with amount in year 0 only."""
        table = np.zeros((self.n, self.horizon + 1))
        table[:, 0] = amount
        return table

    def in_year(self, amount: FloatArray, year: FloatArray) -> FloatArray:
        """Return an (n, H+1) table with amount in the given (rounded) year of each row."""
        mask = self.years[np.newaxis, :] == np.rint(year)[:, np.newaxis]
        result: FloatArray = mask * amount[:, np.newaxis]
        return result

    def yearly(self, amount: FloatArray, rate_name: str) -> FloatArray:
        """Return an (n, H+1) table of a year-1 amount escalated yearly."""
        result: FloatArray = amount[:, np.newaxis] * self.growth(rate_name)
        return result


def _endpoint_capex(c: _Ctx) -> dict[str, FloatArray]:
    return {
        "endpoints": c.year0(c["endpoints"] * c["endpoint_cost"]),
        "installation": c.year0(c["endpoints"] * c["installation_cost"]),
        "integration": c.year0(c["integration_cost"]),
    }


def _endpoint_opex(c: _Ctx) -> dict[str, FloatArray]:
    return {
        "cellular": c.yearly(c["endpoints"] * c["cellular_monthly"] * 12, "cost_escalation"),
        "hosting": c.yearly(c["hosting_annual"], "cost_escalation"),
        "maintenance": c.yearly(
            c["endpoints"] * c["endpoint_maintenance_annual"], "cost_escalation"
        ),
    }


def _standard_avoided(c: _Ctx, fitted: FloatArray) -> dict[str, FloatArray]:
    reads = c["manual_reads_per_year"] + c["re_reads_per_year"]
    # One endpoint displaces one line: a draw with fewer endpoints than lines saves fewer.
    lines = np.minimum(c["modem_lines"], fitted)
    per_year = {
        "modem_lines": lines * c["modem_line_monthly"] * 12,
        "modem_maintenance": lines * c["modem_maintenance_annual"],
        "manual_reads": reads * c["cost_per_read"],
        "reader_labour": reads * c["reader_hours_per_read"] * c["reader_hourly_rate"],
        "mileage": reads * c["miles_per_read"] * c["mileage_rate"],
        "estimated_bills": c["estimated_bills_per_year"] * c["estimated_bill_cost"],
        "truck_rolls": c["truck_rolls_per_year"] * c["truck_roll_cost"],
    }
    return {k: c.yearly(v, "avoided_escalation") for k, v in per_year.items()}


def _straight_line(c: _Ctx, amount: FloatArray, start: FloatArray) -> FloatArray:
    """Depreciate amount spent in year `start` over `depreciation_years` from the next year."""
    life = c["depreciation_years"][:, np.newaxis]
    age = c.years[np.newaxis, :] - np.rint(start)[:, np.newaxis]
    # Fraction of the life falling in this year: 1 for whole years, the remainder for a
    # fractional life (Monte Carlo draws lives as floats), 0 before and after.
    share = np.where(age >= 1, np.clip(np.minimum(age, life) - (age - 1), 0.0, 1.0), 0.0)
    result: FloatArray = amount[:, np.newaxis] / life * share
    return result


def _iou(c: _Ctx) -> Flows:
    capex = _endpoint_capex(c)
    unit = c["endpoint_cost"] + c["installation_cost"]
    replaced = c["sunset_share"] * c["endpoints"] * unit
    sunset = c["sunset_year"]
    # A sunset in year 0 would be a network already gone: treat from year 1 (inputs forbid 0).
    capex["sunset_replacement"] = c.in_year(replaced, np.maximum(sunset, 1))
    opex = _endpoint_opex(c)
    avoided = _standard_avoided(c, c["endpoints"])
    initial = capex["endpoints"][:, 0] + capex["installation"][:, 0] + capex["integration"][:, 0]
    depreciation = _straight_line(c, initial, np.zeros(c.n)) + _straight_line(
        c, replaced, np.maximum(sunset, 1)
    )
    avoided_total = np.sum(list(avoided.values()), axis=0)
    opex_total = np.sum(list(opex.values()), axis=0)
    taxable = avoided_total - opex_total - depreciation
    tax = c["tax_rate"][:, np.newaxis] * taxable
    return Flows(capex, opex, avoided, depreciation, tax)


def _service_bureau(c: _Ctx) -> Flows:
    opex = {
        "subscription": c.yearly(c["meters"] * c["subscription_monthly"] * 12, "cost_escalation"),
        "onboarding": c.year0(c["onboarding_fee"]),
    }
    avoided = _standard_avoided(c, c["meters"])
    avoided["owned_software"] = c.yearly(c["owned_software_annual"], "avoided_escalation")
    avoided["owned_staff"] = c.yearly(
        c["owned_staff_fte"] * c["staff_cost_annual"], "avoided_escalation"
    )
    return Flows({}, opex, avoided)


def _security(c: _Ctx) -> Flows:
    visits = c["site_visits_per_year"]
    per_year = {
        "reader_time": visits * c["reader_hours_per_visit"] * c["reader_hourly_rate"],
        "escort": visits * c["escort_hours_per_visit"] * c["escort_hourly_rate"],
        "access_processing": visits * c["access_processing_cost"],
        "manual_reads": visits * c["cost_per_read"],
        "mileage": visits * c["miles_per_visit"] * c["mileage_rate"],
    }
    avoided = {k: c.yearly(v, "avoided_escalation") for k, v in per_year.items()}
    return Flows(_endpoint_capex(c), _endpoint_opex(c), avoided)


_MODELS: Final[dict[Segment, Callable[[_Ctx], Flows]]] = {
    "iou": _iou,
    "service_bureau": _service_bureau,
    "security": _security,
}


def evaluate(segment: Segment, values: Mapping[str, ArrayLike], horizon_years: int) -> Flows:
    """Evaluate a segment model for n scenarios at once (each value a scalar or (n,) array)."""
    return _MODELS[segment](_Ctx(values, horizon_years))


# --- One scenario: the result the API and reports show ---------------------------------------


def _opt(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class Metrics:
    """Headline figures of one net cash-flow series."""

    npv: float
    irr: float | None
    mirr: float | None
    simple_payback_years: float | None
    discounted_payback_years: float | None

    @classmethod
    def of(cls, rate: float, net: FloatArray) -> Metrics:
        """Compute the figures for a net cash-flow series at the given discount rate."""
        return cls(
            npv=finance.npv(rate, net),
            irr=finance.irr(net),
            mirr=finance.mirr(net, rate, rate),
            simple_payback_years=finance.payback(net),
            discounted_payback_years=finance.discounted_payback(rate, net),
        )

    def to_dict(self) -> dict[str, float | None]:
        """Return the JSON-able form."""
        return {
            "npv": self.npv,
            "irr": self.irr,
            "mirr": self.mirr,
            "simple_payback_years": self.simple_payback_years,
            "discounted_payback_years": self.discounted_payback_years,
        }


@dataclass(frozen=True)
class RoiResult:
    """The evaluated model: headline figures, the year-by-year table and savings by category."""

    segment: Segment
    horizon_years: int
    discount_rate: float
    npv: float
    irr: float | None
    mirr: float | None
    simple_payback_years: float | None
    discounted_payback_years: float | None
    benefit_cost_ratio: float | None
    cash_flows: list[dict[str, float]]
    savings_by_category: dict[str, float]
    after_tax: Metrics | None = None
    budget: list[dict[str, float]] | None = None
    risks: tuple[str, ...] = ()
    npv_convention: Literal["year0"] = "year0"
    model_version: str = MODEL_VERSION
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form (what ``POST /api/v1/roi`` returns)."""
        return {
            "segment": self.segment,
            "horizon_years": self.horizon_years,
            "discount_rate": self.discount_rate,
            "npv": self.npv,
            "npv_convention": self.npv_convention,
            "irr": self.irr,
            "mirr": self.mirr,
            "simple_payback_years": self.simple_payback_years,
            "discounted_payback_years": self.discounted_payback_years,
            "benefit_cost_ratio": self.benefit_cost_ratio,
            "cash_flows": self.cash_flows,
            "savings_by_category": self.savings_by_category,
            "after_tax": None if self.after_tax is None else self.after_tax.to_dict(),
            "budget": self.budget,
            "risks": list(self.risks),
            "model_version": self.model_version,
            "notes": list(self.notes),
        }


def _rows(flows: Flows, rate: float) -> list[dict[str, float]]:
    net = flows.net[0]
    capex, opex, avoided = flows.capex_total[0], flows.opex_total[0], flows.avoided_total[0]
    factors = finance.discount_factors(rate, net.size)
    disc = net * factors
    cum, cum_disc = np.cumsum(net), np.cumsum(disc)
    after = flows.net_after_tax
    rows: list[dict[str, float]] = []
    for t in range(net.size):
        row = {
            "year": t,
            "capex": float(capex[t]),
            "opex": float(opex[t]),
            "avoided": float(avoided[t]),
            "net": float(net[t]),
            "cumulative": float(cum[t]),
            "discount_factor": float(factors[t]),
            "discounted": float(disc[t]),
            "cumulative_discounted": float(cum_disc[t]),
        }
        for prefix, parts in (("capex", flows.capex), ("opex", flows.opex)):
            row.update({f"{prefix}_{k}": float(v[0, t]) for k, v in parts.items()})
        row.update({f"avoided_{k}": float(v[0, t]) for k, v in flows.avoided.items()})
        if after is not None and flows.tax is not None and flows.depreciation is not None:
            row["depreciation"] = float(flows.depreciation[0, t])
            row["tax"] = float(flows.tax[0, t])
            row["net_after_tax"] = float(after[0, t])
            row["cumulative_after_tax"] = float(np.sum(after[0, : t + 1]))
        rows.append(row)
    return rows


def _budget(flows: Flows) -> list[dict[str, float]]:
    sub, onboarding = flows.opex["subscription"][0], flows.opex["onboarding"][0]
    avoided, net = flows.avoided_total[0], flows.net[0]
    return [
        {
            "year": t,
            "subscription": float(sub[t]),
            "one_time": float(onboarding[t]),
            "spend": float(sub[t] + onboarding[t]),
            "monthly_spend": float(sub[t] / 12),
            "avoided": float(avoided[t]),
            "net_budget_effect": float(net[t]),
        }
        for t in range(sub.size)
    ]


def run(inputs: RoiInputs) -> RoiResult:
    """Evaluate the model for one validated input set."""
    rate = inputs.discount_rate
    flows = evaluate(inputs.segment, inputs.values(), inputs.horizon_years)
    net = flows.net[0]
    headline = Metrics.of(rate, net)
    after = flows.net_after_tax
    notes = [
        "NPV discounts year t by (1 + r)^t with year 0 (the investment year) undiscounted; "
        "a spreadsheet's NPV() would discount year 0 one period.",
    ]
    if (
        inputs.segment == "iou"
        and inputs.value("sunset_share") > 0
        and inputs.value("sunset_year") > inputs.horizon_years
    ):
        notes.append("The network sunset falls after the horizon, so no replacement is counted.")
    return RoiResult(
        segment=inputs.segment,
        horizon_years=inputs.horizon_years,
        discount_rate=rate,
        npv=headline.npv,
        irr=headline.irr,
        mirr=headline.mirr,
        simple_payback_years=headline.simple_payback_years,
        discounted_payback_years=headline.discounted_payback_years,
        benefit_cost_ratio=finance.benefit_cost_ratio(
            rate, flows.avoided_total[0], flows.capex_total[0] + flows.opex_total[0]
        ),
        cash_flows=_rows(flows, rate),
        savings_by_category={k: float(v[0].sum()) for k, v in flows.avoided.items()},
        after_tax=None if after is None else Metrics.of(rate, after[0]),
        budget=_budget(flows) if inputs.segment == "service_bureau" else None,
        risks=SECURITY_RISKS if inputs.segment == "security" else (),
        notes=tuple(notes),
    )


# --- Whole-solution network choice ---------------------------------------------------------

Network = Literal["cellular", "private"]


@dataclass(frozen=True)
class Site:
    """A metered site; coverage flags say which networks can reach it.

    Public cellular is assumed to reach every site unless ``cellular_coverage`` is False
    (some rural sites). The distributor's private narrowband network is built for rural
    areas, so by default it reaches rural sites only; ``private_coverage`` overrides that.
    """

    site_id: str
    area: Literal["urban", "rural"]
    cellular_coverage: bool = True
    private_coverage: bool | None = None

    @property
    def networks(self) -> tuple[Network, ...]:
        """Return the networks that reach this site."""
        private = self.area == "rural" if self.private_coverage is None else self.private_coverage
        options: list[Network] = []
        if self.cellular_coverage:
            options.append("cellular")
        if private:
            options.append("private")
        return tuple(options)


@dataclass(frozen=True)
class NetworkCosts:
    """Per-site costs of each network: installed endpoint price and monthly charge."""

    cellular_endpoint: float = 1_800.0
    cellular_monthly: float = 2.0
    # Rural cellular sites often need a high-gain external antenna and a longer install.
    rural_cellular_extra: float = 300.0
    private_endpoint: float = 1_500.0
    private_monthly: float = 4.0
    cost_escalation: float = 0.03


@dataclass(frozen=True)
class SiteChoice:
    """The network chosen for one site and the present cost of each option it had."""

    site_id: str
    area: str
    network: Network
    cost_pv: float
    options: dict[str, float]


@dataclass(frozen=True)
class NetworkMix:
    """The cheapest network per site and the resulting mix."""

    choices: tuple[SiteChoice, ...]
    counts: dict[str, int]
    total_cost_pv: float
    horizon_years: int
    discount_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {
            "choices": [
                {
                    "site_id": c.site_id,
                    "area": c.area,
                    "network": c.network,
                    "cost_pv": c.cost_pv,
                    "options": c.options,
                }
                for c in self.choices
            ],
            "counts": self.counts,
            "total_cost_pv": self.total_cost_pv,
            "horizon_years": self.horizon_years,
            "discount_rate": self.discount_rate,
        }


def site_cost_pv(
    installed: float, monthly: float, horizon_years: int, discount_rate: float, escalation: float
) -> float:
    """Return the present cost of one endpoint: installed price now plus escalated plan fees."""
    years = np.arange(1, horizon_years + 1, dtype=np.float64)
    fees = monthly * 12 * (1 + escalation) ** (years - 1) / (1 + discount_rate) ** years
    return installed + float(fees.sum())


def choose_networks(
    sites: Sequence[Site],
    costs: NetworkCosts,
    horizon_years: int,
    discount_rate: float,
) -> NetworkMix:
    """Choose public cellular or the private network per site to minimise present cost."""
    pv: dict[str, dict[Network, float]] = {"urban": {}, "rural": {}}
    for area in ("urban", "rural"):
        extra = costs.rural_cellular_extra if area == "rural" else 0.0
        pv[area]["cellular"] = site_cost_pv(
            costs.cellular_endpoint + extra,
            costs.cellular_monthly,
            horizon_years,
            discount_rate,
            costs.cost_escalation,
        )
        pv[area]["private"] = site_cost_pv(
            costs.private_endpoint,
            costs.private_monthly,
            horizon_years,
            discount_rate,
            costs.cost_escalation,
        )
    choices = []
    for i, site in enumerate(sites):
        if site.area not in pv:
            raise RoiInputError(f"sites[{i}].area", f"must be urban or rural, got {site.area!r}")
        options = {net: pv[site.area][net] for net in site.networks}
        if not options:
            raise RoiInputError(f"sites[{i}]", f"no network reaches site {site.site_id!r}")
        # Ties go to cellular (listed first): it needs no capacity on the private network.
        best = min(options, key=lambda net: options[net])
        choices.append(
            SiteChoice(site.site_id, site.area, best, options[best], dict(options.items()))
        )
    counts = {"cellular": 0, "private": 0}
    for choice in choices:
        counts[choice.network] += 1
    return NetworkMix(
        tuple(choices),
        counts,
        float(sum(c.cost_pv for c in choices)),
        horizon_years,
        discount_rate,
    )
