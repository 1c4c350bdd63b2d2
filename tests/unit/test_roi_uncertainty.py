"""Low/base/high cases, tornado and seeded Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from roi.charts import monte_carlo_chart
from roi.inputs import SEGMENTS, default_inputs, parse_inputs
from roi.models import run
from roi.uncertainty import cases, draw, monte_carlo, tornado


@pytest.mark.parametrize("segment", SEGMENTS)
def test_tornado_is_sorted_by_swing_and_matches_single_runs(segment: str) -> None:
    inputs = default_inputs(segment)
    result = tornado(inputs)
    swings = [bar.swing for bar in result.bars]
    assert swings == sorted(swings, reverse=True)
    assert swings[0] > 0
    assert result.base_npv == pytest.approx(run(inputs).npv)
    # Fixed counts (low == high) are not bars.
    assert all(inputs.inputs[bar.name].low < inputs.inputs[bar.name].high for bar in result.bars)
    top = result.bars[0]
    assert top.npv_at_low == pytest.approx(run(inputs.with_values(**{top.name: top.low_value})).npv)
    assert top.npv_at_high == pytest.approx(
        run(inputs.with_values(**{top.name: top.high_value})).npv
    )
    assert result.to_dict()["bars"][0]["swing"] == pytest.approx(top.swing)


def test_tornado_directions_are_economic() -> None:
    bars = {bar.name: bar for bar in tornado(default_inputs("iou")).bars}
    # A dearer phone line saves more; a dearer endpoint costs more.
    assert bars["modem_line_monthly"].npv_at_high > bars["modem_line_monthly"].npv_at_low
    assert bars["endpoint_cost"].npv_at_high < bars["endpoint_cost"].npv_at_low


@pytest.mark.parametrize("segment", SEGMENTS)
def test_cases_bracket_the_base(segment: str) -> None:
    result = cases(default_inputs(segment))
    assert result["low"].npv < result["base"].npv < result["high"].npv


def test_monte_carlo_is_reproducible_and_ordered() -> None:
    inputs = default_inputs("iou")
    first = monte_carlo(inputs, np.random.default_rng(42))
    second = monte_carlo(inputs, np.random.default_rng(42))
    other = monte_carlo(inputs, np.random.default_rng(43))
    assert first.draws == 10_000
    assert first.npv.shape == (10_000,)
    assert np.array_equal(first.npv, second.npv)
    assert (first.p10, first.p50, first.p90) == (second.p10, second.p50, second.p90)
    assert not np.array_equal(first.npv, other.npv)
    assert first.p10 <= first.p50 <= first.p90
    assert first.p10 < first.p90
    assert 0.0 <= first.probability_payback <= 1.0
    assert first.probability_discounted_payback <= first.probability_payback
    summary = first.to_dict()
    assert sum(summary["histogram"]["counts"]) == 10_000


def test_monte_carlo_draws_match_the_model_row_by_row() -> None:
    inputs = default_inputs("security")
    result = monte_carlo(inputs, np.random.default_rng(5), draws=1_000, distribution="triangular")
    # Replay the same draws (ranged inputs in catalogue order) and run a few rows one by one.
    rng = np.random.default_rng(5)
    samples = {
        name: draw(rng, item.low, item.value, item.high, 1_000, "triangular")
        for name, item in inputs.inputs.items()
        if item.low < item.high
    }
    for row in range(5):
        single = run(inputs.with_values(**{k: float(v[row]) for k, v in samples.items()}))
        assert result.npv[row] == pytest.approx(single.npv)
    assert result.npv.min() < run(inputs).npv < result.npv.max()


def test_monte_carlo_payback_probability_reflects_a_poor_case() -> None:
    # Few lines to displace and a short horizon: most draws never pay back.
    inputs = parse_inputs({"segment": "iou", "horizon_years": 3, "inputs": {"modem_lines": 50}})
    result = monte_carlo(inputs, np.random.default_rng(1), draws=2_000)
    assert result.probability_payback < 0.5
    assert result.p50 < 0


def test_monte_carlo_without_ranges_repeats_the_base_case() -> None:
    inputs = default_inputs("service_bureau")
    fixed = inputs.inputs
    point = {
        name: {"value": item.value, "low": item.value, "high": item.value}
        for name, item in fixed.items()
    }
    flat = parse_inputs({"segment": "service_bureau", "inputs": point})
    result = monte_carlo(flat, np.random.default_rng(0), draws=1_000)
    assert result.p10 == pytest.approx(run(flat).npv)
    assert result.p90 == pytest.approx(run(flat).npv)


def test_a_pinned_large_case_has_a_one_bar_histogram_and_chart() -> None:
    # Every input pinned and a hundred billion endpoints: the draws' NPVs differ only in
    # their last bits, which numpy cannot split into 40 bins ("too many bins").
    fixed = default_inputs("security").inputs
    point = {n: {"value": i.value, "low": i.value, "high": i.value} for n, i in fixed.items()}
    point["endpoints"] = {"value": 1e11, "low": 1e11, "high": 1e11}
    flat = parse_inputs({"segment": "security", "inputs": point})
    result = monte_carlo(flat, np.random.default_rng(0), draws=1_000)
    histogram = result.to_dict()["histogram"]
    assert histogram["counts"] == [1_000.0]
    low, high = histogram["edges"]
    assert low < result.p50 < high
    assert monte_carlo_chart(result).startswith(b"\x89PNG")


def test_monte_carlo_refuses_too_few_draws() -> None:
    with pytest.raises(ValueError, match="draws"):
        monte_carlo(default_inputs("iou"), np.random.default_rng(0), draws=10)


@pytest.mark.parametrize("distribution", ["pert", "triangular"])
def test_draw_stays_in_range_and_centres_on_the_mode(distribution: str) -> None:
    rng = np.random.default_rng(3)
    values = draw(rng, 10.0, 12.0, 20.0, 20_000, distribution)  # type: ignore[arg-type]
    assert values.min() >= 10.0
    assert values.max() <= 20.0
    # Means: PERT (10 + 4 x 12 + 20) / 6 = 13.0; triangular (10 + 12 + 20) / 3 = 14.0.
    expected = 13.0 if distribution == "pert" else 14.0
    assert values.mean() == pytest.approx(expected, abs=0.05)


def test_draw_edge_cases() -> None:
    rng = np.random.default_rng(0)
    assert draw(rng, 5.0, 5.0, 5.0, 3).tolist() == [5.0, 5.0, 5.0]
    assert draw(rng, 0.0, 0.0, 1.0, 100).min() >= 0.0  # mode at the low end
    with pytest.raises(ValueError, match="low <= mode <= high"):
        draw(rng, 2.0, 1.0, 3.0, 3)
    with pytest.raises(ValueError, match="unknown distribution"):
        draw(rng, 0.0, 1.0, 2.0, 3, "uniform")  # type: ignore[arg-type]
