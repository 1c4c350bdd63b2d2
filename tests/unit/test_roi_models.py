"""Segment models against hand-worked cases."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from roi import evaluate_document
from roi.inputs import RoiInputs, default_inputs, defaults, parse_inputs
from roi.models import (
    SECURITY_RISKS,
    NetworkCosts,
    Site,
    choose_networks,
    evaluate,
    run,
    site_cost_pv,
)

CENT = 0.005

SMALL_IOU: dict[str, float] = {
    "endpoints": 100,
    "endpoint_cost": 1_000,
    "installation_cost": 500,
    "integration_cost": 10_000,
    "cellular_monthly": 2,
    "hosting_annual": 1_200,
    "endpoint_maintenance_annual": 10,
    "modem_lines": 100,
    "modem_line_monthly": 40,
    "modem_maintenance_annual": 50,
    "manual_reads_per_year": 100,
    "re_reads_per_year": 20,
    "cost_per_read": 10,
    "reader_hours_per_read": 1,
    "reader_hourly_rate": 40,
    "miles_per_read": 10,
    "mileage_rate": 0.70,
    "estimated_bills_per_year": 50,
    "estimated_bill_cost": 20,
    "truck_rolls_per_year": 10,
    "truck_roll_cost": 300,
    "cost_escalation": 0,
    "avoided_escalation": 0,
    "tax_rate": 0.25,
    "depreciation_years": 5,
    "sunset_share": 0,
    "sunset_year": 8,
}


def make_inputs(
    segment: str = "iou",
    values: Mapping[str, float] | None = None,
    *,
    horizon: int = 5,
    rate: float = 0.08,
    **more: float,
) -> RoiInputs:
    """Build a validated input set through the public document parser."""
    base = SMALL_IOU if segment == "iou" else {}
    return parse_inputs(
        {
            "segment": segment,
            "horizon_years": horizon,
            "discount_rate": rate,
            "inputs": {**base, **(values or {}), **more},
        }
    )


def test_small_iou_case_worked_by_hand() -> None:
    """100 endpoints, no escalation, 5 years at 8 %.

    Capex, year 0: 100 x ($1,000 endpoint + $500 installation) + $10,000 integration
        = $160,000.
    Opex, years 1-5: cellular 100 x $2 x 12 = $2,400; hosting $1,200;
        maintenance 100 x $10 = $1,000; total $4,600 a year.
    Avoided, years 1-5:
        modem lines        100 x $40 x 12             = $48,000
        modem maintenance  100 x $50                  =  $5,000
        reads              (100 + 20) x $10           =  $1,200
        reader labour      120 x 1 h x $40            =  $4,800
        mileage            120 x 10 mi x $0.70        =    $840
        estimated bills    50 x $20                   =  $1,000
        truck rolls        10 x $300                  =  $3,000
        total                                         = $63,840
    Net: year 0 -$160,000; years 1-5 $63,840 - $4,600 = $59,240.
    Cumulative: -160,000; -100,760; -41,520; 17,720; 76,960; 136,200.
    Simple payback: 2 + 41,520 / 59,240 = 2.7009 years.
    Discounted at 8 % (year t by 1.08^t, year 0 undiscounted):
        54,851.85; 50,788.75; 47,026.62; 43,543.17; 40,317.75 (sum 236,528.14)
    NPV = 236,528.14 - 160,000 = $76,528.14.
    Cumulative discounted: -105,148.15; -54,359.40; -7,332.77; 36,210.39; 76,528.14
    Discounted payback: 3 + 7,332.77 / 43,543.17 = 3.1684 years.
    Benefit/cost: 63,840 x 3.99271 / (160,000 + 4,600 x 3.99271)
        = 254,894.61 / 178,366.47 = 1.4291.
    After tax (25 %, 5-year straight line): depreciation 160,000 / 5 = 32,000 a year;
        tax = 0.25 x (59,240 - 32,000) = $6,810; after-tax net $52,430 a year;
        after-tax NPV = 52,430 x 3.99271 - 160,000 = $49,337.79.
    """
    result = run(make_inputs())
    rows = result.cash_flows
    assert [r["year"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[0]["capex"] == 160_000
    assert [r["capex"] for r in rows[1:]] == [0] * 5
    assert [r["opex"] for r in rows] == [0] + [pytest.approx(4_600)] * 5
    assert [r["avoided"] for r in rows] == [0] + [pytest.approx(63_840)] * 5
    assert [r["net"] for r in rows] == pytest.approx([-160_000] + [59_240] * 5)
    assert [r["cumulative"] for r in rows] == pytest.approx(
        [-160_000, -100_760, -41_520, 17_720, 76_960, 136_200]
    )
    assert [r["discounted"] for r in rows] == pytest.approx(
        [-160_000, 54_851.85, 50_788.75, 47_026.62, 43_543.17, 40_317.75], abs=CENT
    )
    assert rows[1]["avoided_modem_lines"] == pytest.approx(48_000)
    assert rows[1]["avoided_reader_labour"] == pytest.approx(4_800)
    assert rows[1]["avoided_mileage"] == pytest.approx(840)
    assert result.npv == pytest.approx(76_528.14, abs=CENT)
    assert result.npv_convention == "year0"
    assert result.simple_payback_years == pytest.approx(2 + 41_520 / 59_240)
    assert result.discounted_payback_years == pytest.approx(3.1684, abs=1e-4)
    assert result.benefit_cost_ratio == pytest.approx(1.4291, abs=1e-4)
    assert result.irr == pytest.approx(0.247904, abs=1e-6)  # numpy-financial on the same flows
    assert result.savings_by_category["truck_rolls"] == pytest.approx(15_000)

    assert result.after_tax is not None
    assert [r["depreciation"] for r in rows] == [0] + [pytest.approx(32_000)] * 5
    assert [r["tax"] for r in rows] == [0] + [pytest.approx(6_810)] * 5
    assert [r["net_after_tax"] for r in rows[1:]] == [pytest.approx(52_430)] * 5
    assert result.after_tax.npv == pytest.approx(49_337.79, abs=CENT)


def test_escalation_compounds_from_year_two() -> None:
    result = run(make_inputs(cost_escalation=0.05, avoided_escalation=0.10))
    rows = result.cash_flows
    assert rows[1]["opex"] == pytest.approx(4_600)
    assert rows[3]["opex"] == pytest.approx(4_600 * 1.05**2)
    assert rows[1]["avoided"] == pytest.approx(63_840)
    assert rows[5]["avoided"] == pytest.approx(63_840 * 1.10**4)


def test_sunset_replacement_lands_in_its_year_with_its_amount() -> None:
    # 40 % of 100 endpoints at $1,500 installed, replaced in year 3: $60,000.
    result = run(make_inputs(sunset_share=0.4, sunset_year=3))
    capex = [r["capex"] for r in result.cash_flows]
    assert capex == pytest.approx([160_000, 0, 0, 60_000, 0, 0])
    assert result.cash_flows[3]["capex_sunset_replacement"] == pytest.approx(60_000)
    assert result.cash_flows[3]["net"] == pytest.approx(59_240 - 60_000)
    no_sunset = run(make_inputs())
    assert no_sunset.npv - result.npv == pytest.approx(60_000 / 1.08**3)
    # The replacement depreciates from year 4 over 5 years: 12,000 a year on top.
    deps = [r["depreciation"] for r in result.cash_flows]
    assert deps == pytest.approx([0, 32_000, 32_000, 32_000, 44_000, 44_000])


def test_sunset_after_the_horizon_costs_nothing_within_it() -> None:
    result = run(make_inputs(sunset_share=0.5, sunset_year=8))
    assert result.npv == pytest.approx(run(make_inputs()).npv)
    assert any("after the horizon" in note for note in result.notes)


def test_fractional_depreciation_life_spreads_the_remainder() -> None:
    flows = evaluate("iou", {**SMALL_IOU, "depreciation_years": 2.5}, 5)
    assert flows.depreciation is not None
    assert flows.depreciation[0] == pytest.approx([0, 64_000, 64_000, 32_000, 0, 0])


def test_service_bureau_has_no_capex_and_a_budget_view() -> None:
    inputs = make_inputs(
        "service_bureau",
        horizon=3,
        rate=0.05,
        meters=100,
        subscription_monthly=10,
        onboarding_fee=2_000,
        cost_escalation=0,
        avoided_escalation=0,
    )
    result = run(inputs)
    assert all(r["capex"] == 0 for r in result.cash_flows)
    assert result.after_tax is None
    assert result.cash_flows[0]["opex"] == 2_000
    assert result.cash_flows[1]["opex_subscription"] == pytest.approx(12_000)
    assert result.budget is not None
    assert [b["spend"] for b in result.budget] == pytest.approx([2_000, 12_000, 12_000, 12_000])
    assert result.budget[1]["monthly_spend"] == pytest.approx(1_000)
    v = inputs.values()
    owned = v["owned_software_annual"] + v["owned_staff_fte"] * v["staff_cost_annual"]
    assert result.cash_flows[1]["avoided_owned_software"] + result.cash_flows[1][
        "avoided_owned_staff"
    ] == pytest.approx(owned)
    assert [b["net_budget_effect"] for b in result.budget] == [r["net"] for r in result.cash_flows]


def test_security_savings_formula() -> None:
    values = {
        "site_visits_per_year": 100,
        "reader_hours_per_visit": 2,
        "reader_hourly_rate": 40,
        "escort_hours_per_visit": 1.5,
        "escort_hourly_rate": 60,
        "access_processing_cost": 25,
        "cost_per_read": 10,
        "miles_per_visit": 20,
        "mileage_rate": 0.5,
        "avoided_escalation": 0,
    }
    result = run(make_inputs("security", values))
    # 100 x (2 x 40 + 1.5 x 60 + 25) + 100 x (10 + 20 x 0.5) = 19,500 + 2,000.
    row = result.cash_flows[1]
    assert row["avoided_reader_time"] == pytest.approx(8_000)
    assert row["avoided_escort"] == pytest.approx(9_000)
    assert row["avoided_access_processing"] == pytest.approx(2_500)
    assert row["avoided"] == pytest.approx(21_500)
    assert result.risks == SECURITY_RISKS
    assert len(result.risks) >= 3


@pytest.mark.parametrize("segment", ["iou", "service_bureau", "security"])
def test_defaults_give_a_complete_json_result(segment: str) -> None:
    result = run(default_inputs(segment)).to_dict()
    assert {"npv", "irr", "simple_payback_years", "discounted_payback_years", "discount_rate"} <= (
        result.keys()
    )
    assert len(result["cash_flows"]) == 11
    assert {"year", "capex", "opex", "avoided", "net", "cumulative", "discounted"} <= (
        result["cash_flows"][0].keys()
    )
    assert result["npv"] > 0


def test_vectorised_evaluation_matches_single_runs() -> None:
    base = default_inputs("iou")
    values: dict[str, Any] = base.values()
    values["modem_line_monthly"] = np.array([30.0, 50.0, 100.0])
    flows = evaluate("iou", values, base.horizon_years)
    assert flows.net.shape == (3, 11)
    for i, price in enumerate([30.0, 50.0, 100.0]):
        single = run(base.with_values(modem_line_monthly=price))
        assert flows.net[i] == pytest.approx([r["net"] for r in single.cash_flows])


def test_network_choice_picks_the_cheaper_option_per_site() -> None:
    costs = NetworkCosts(
        cellular_endpoint=1_000,
        cellular_monthly=2,
        rural_cellular_extra=600,
        private_endpoint=1_200,
        private_monthly=3,
        cost_escalation=0,
    )
    sites = [
        Site("town-hall", "urban"),
        Site("farm-a", "rural"),
        Site("farm-b", "rural", cellular_coverage=False),
        Site("depot", "urban", cellular_coverage=False, private_coverage=True),
    ]
    mix = choose_networks(sites, costs, horizon_years=10, discount_rate=0.0)
    # Undiscounted 10 years: urban cellular 1,000 + 240 = 1,240; rural cellular
    # 1,600 + 240 = 1,840; private 1,200 + 360 = 1,560.
    assert {c.site_id: c.network for c in mix.choices} == {
        "town-hall": "cellular",
        "farm-a": "private",
        "farm-b": "private",
        "depot": "private",
    }
    assert [c.cost_pv for c in mix.choices] == pytest.approx([1_240, 1_560, 1_560, 1_560])
    assert mix.choices[1].options == pytest.approx({"cellular": 1_840, "private": 1_560})
    assert mix.counts == {"cellular": 1, "private": 3}
    assert mix.total_cost_pv == pytest.approx(1_240 + 3 * 1_560)
    assert mix.to_dict()["choices"][0]["options"] == {"cellular": pytest.approx(1_240)}


def test_network_choice_refuses_an_unreachable_site() -> None:
    with pytest.raises(ValueError, match=r"sites\[0\]"):
        choose_networks([Site("cave", "urban", cellular_coverage=False)], NetworkCosts(), 10, 0.08)


def test_site_cost_pv_discounts_fees() -> None:
    assert site_cost_pv(100, 10, 2, 0.1, 0.0) == pytest.approx(100 + 120 / 1.1 + 120 / 1.21)


def test_evaluate_document_is_json_able_end_to_end() -> None:
    result = evaluate_document(defaults("iou"))
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["npv"] == pytest.approx(run(default_inputs("iou")).npv)
    assert result["cash_flows"][0]["year"] == 0


@pytest.mark.parametrize(
    ("segment", "fitted"), [("iou", "endpoints"), ("service_bureau", "meters")]
)
def test_a_draw_with_fewer_endpoints_than_lines_saves_only_their_lines(
    segment: str, fitted: str
) -> None:
    """One endpoint displaces one line: a Monte Carlo or tornado draw below the lines saves less."""
    values: dict[str, Any] = dict(default_inputs(segment).values())
    lines = values["modem_lines"]
    values[fitted] = np.array([lines + 50.0, lines - 30.0])
    flows = evaluate(segment, values, 10)
    yearly = values["modem_line_monthly"] * 12
    assert flows.avoided["modem_lines"][:, 1] == pytest.approx(
        [lines * yearly, (lines - 30) * yearly]
    )
