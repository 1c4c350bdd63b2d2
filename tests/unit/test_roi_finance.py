"""Finance functions pinned to published examples and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from roi import finance


def test_npv_numpy_financial_docstring_example() -> None:
    # numpy-financial npv docstring: rate 8 %, year 0 undiscounted -> 3065.22267.
    flows = [-40_000, 5_000, 8_000, 12_000, 30_000]
    assert round(finance.npv(0.08, flows), 5) == 3065.22267


def test_npv_spreadsheet_convention_matches_excel_documented_example() -> None:
    # Microsoft's NPV help: =NPV(10%, -10000, 3000, 4200, 6800) = $1,188.44.
    assert round(finance.npv(0.10, [-10_000, 3_000, 4_200, 6_800], "spreadsheet"), 2) == 1188.44


def test_npv_excel_second_example_initial_cost_added_outside() -> None:
    # Microsoft's NPV help: =NPV(8%, B3:B7) + B2 = $1,922.06 with B2 = -40000 at time 0.
    later = [8_000, 9_200, 10_000, 12_000, 14_500]
    value = finance.npv(0.08, later, "spreadsheet") - 40_000
    assert round(value, 2) == 1922.06
    # The same figure is the year0 convention applied to the whole series.
    assert finance.npv(0.08, [-40_000, *later]) == pytest.approx(value)


def test_conventions_differ_by_one_period() -> None:
    flows = [-100.0, 60.0, 60.0]
    assert finance.npv(0.1, flows, "spreadsheet") == pytest.approx(finance.npv(0.1, flows) / 1.1)


def test_unknown_convention_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown convention"):
        finance.npv(0.1, [1.0], "excel")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        # numpy-financial irr docstring examples.
        ([-100, 39, 59, 55, 20], 0.28095),
        ([-100, 0, 0, 74], -0.0955),
        ([-100, 100, 0, -7], -0.0833),
        ([-100, 100, 0, 7], 0.06206),
        ([-5, 10.5, 1, -8, 1], 0.0886),
    ],
)
def test_irr_numpy_financial_docstring_examples(flows: list[float], expected: float) -> None:
    value = finance.irr(flows)
    assert value is not None
    assert round(value, 5) == expected


def test_irr_excel_documented_examples() -> None:
    # Microsoft's IRR help: -70000 then 12000, 15000, 18000, 21000 (, 26000).
    four = finance.irr([-70_000, 12_000, 15_000, 18_000, 21_000])
    five = finance.irr([-70_000, 12_000, 15_000, 18_000, 21_000, 26_000])
    assert four is not None
    assert five is not None
    assert round(four, 3) == -0.021
    assert round(five, 3) == 0.087


def test_irr_without_a_sign_change_is_none() -> None:
    assert finance.irr([100.0, 50.0]) is None
    assert finance.irr([-100.0, -50.0]) is None


def test_mirr_numpy_financial_test_case() -> None:
    # numpy-financial's own test: mirr(v, 0.08, 0.055) == 0.0666.
    flows = [-4500, -800, 800, 800, 600, 600, 800, 800, 700, 3000]
    value = finance.mirr(flows, 0.08, 0.055)
    assert value is not None
    assert round(value, 4) == 0.0666


@pytest.mark.parametrize(
    ("flows", "reinvest", "expected"),
    [
        # Microsoft's MIRR help: finance 10 %, reinvest 12 % -> 12.6 %; 3 years -> -4.8 %;
        # reinvest 14 % -> 13.5 %.
        ([-120_000, 39_000, 30_000, 21_000, 37_000, 46_000], 0.12, 0.126),
        ([-120_000, 39_000, 30_000, 21_000], 0.12, -0.048),
        ([-120_000, 39_000, 30_000, 21_000, 37_000, 46_000], 0.14, 0.135),
    ],
)
def test_mirr_excel_documented_examples(
    flows: list[float], reinvest: float, expected: float
) -> None:
    value = finance.mirr(flows, 0.10, reinvest)
    assert value is not None
    assert round(value, 3) == expected


def test_mirr_without_both_signs_is_none() -> None:
    assert finance.mirr([1.0, 2.0], 0.1, 0.1) is None


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        # -1000 then 400/yr: cumulative -600, -200, +200 -> 2 + 200/400 = 2.5 years.
        ([-1000, 400, 400, 400], 2.5),
        # Exactly zero at the end of year 2 counts as paid back: 2.0.
        ([-1000, 500, 500, 500], 2.0),
        # Paid back inside year 1: 1 year ... -300 then 600: 0 + 300/600 = 0.5.
        ([-300, 600], 0.5),
        # Nothing to pay back.
        ([0, 100, 100], 0.0),
        # Paid back in year 2 (-1000+600+600 = 200), then a year-3 replacement of -800
        # takes it to -600, recovered in year 4 (+700 -> +100): 3 + 600/700.
        ([-1000, 600, 600, -800, 700], 3 + 600 / 700),
        # Never.
        ([-1000, 100, 100], None),
    ],
)
def test_simple_payback_hand_cases(flows: list[float], expected: float | None) -> None:
    value = finance.payback(flows)
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected)


def test_discounted_payback_hand_case() -> None:
    # 10 %: -1000, then 1100 discounts to exactly 1000 at year 1 -> payback 1.0.
    assert finance.discounted_payback(0.10, [-1000, 1100, 0]) == pytest.approx(1.0)
    # 8 %: 1080 discounts to 999.9999999999999, rounding dust that must not read "never".
    assert finance.discounted_payback(0.08, [-1000, 1080]) == pytest.approx(1.0)
    # -1000, 605/yr at 10 %: PV 550, 500 -> cumulative -450, +50 -> 1 + 450/500 = 1.9.
    assert finance.discounted_payback(0.10, [-1000, 605, 605]) == pytest.approx(1.9)
    # Simple payback of the same flows is earlier: 1 + 395/605.
    assert finance.payback([-1000, 605, 605]) == pytest.approx(1 + 395 / 605)


def test_vectorised_variants_match_scalar_ones() -> None:
    rng = np.random.default_rng(7)
    flows = rng.normal(200, 150, size=(50, 8))
    flows[:, 0] = -rng.uniform(200, 1500, size=50)
    npvs = finance.npv_many(0.07, flows)
    paybacks = finance.payback_many(flows)
    discounted = finance.discounted_payback_many(0.07, flows)
    for i, row in enumerate(flows):
        assert npvs[i] == pytest.approx(finance.npv(0.07, row))
        for got, want in (
            (paybacks[i], finance.payback(row)),
            (discounted[i], finance.discounted_payback(0.07, row)),
        ):
            if want is None:
                assert np.isnan(got)
            else:
                assert got == pytest.approx(want)
    assert np.isnan(paybacks).any()
    assert (~np.isnan(paybacks)).any()


def test_npv_many_spreadsheet_convention() -> None:
    flows = np.array([[-10_000, 3_000, 4_200, 6_800], [0, 0, 0, 0]])
    assert finance.npv_many(0.10, flows, "spreadsheet").round(2).tolist() == [1188.44, 0.0]


def test_cumulative_and_discounted() -> None:
    assert finance.cumulative([-100, 30, 80]).tolist() == [-100, -70, 10]
    assert finance.discounted(0.1, [100, 110, 121]) == pytest.approx([100, 100, 100])


def test_benefit_cost_ratio() -> None:
    # Costs 1000 now, benefits 1100 in a year at 10 % -> 1.0.
    assert finance.benefit_cost_ratio(0.1, [0, 1100], [1000, 0]) == pytest.approx(1.0)
    assert finance.benefit_cost_ratio(0.1, [0, 1100], [0, 0]) is None


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bad_flows_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="flows"):
        finance.npv(0.1, bad)


@pytest.mark.parametrize("outlay", [-1e-310, -5e-324])
def test_a_rate_of_return_that_is_infinite_is_none(outlay: float) -> None:
    """An outlay too small to measure against real savings has no rate (JSON cannot say inf)."""
    assert finance.irr([outlay, 100.0]) is None
    assert finance.mirr([outlay, 100.0, 100.0], 0.08, 0.08) is None
    assert finance.benefit_cost_ratio(0.08, [0.0, 100.0], [5e-324, 0.0]) is None


def test_rounding_dust_below_zero_is_still_a_break_even() -> None:
    """A cumulative of -1e-13 after year 1 is break-even there, not 'never' (it was None)."""
    assert finance.payback([-1000.0, 999.9999999999999, 0.0]) == pytest.approx(1.0)
    assert finance.payback([-1000.0, 999.0, 0.0]) is None  # a real shortfall stays one
