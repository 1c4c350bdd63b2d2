"""ROI timings for `make bench`: the whole model + tornado and the 10,000-draw Monte Carlo.

Each is compared with a baseline measured in the same run over the same cash flows: a
plain ``numpy_financial.npv`` call per flow row in a Python loop, which is what the
vectorised model replaces.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import numpy_financial as npf  # type: ignore[import-untyped]  # ships no type hints

from roi import finance
from roi.inputs import default_inputs
from roi.models import evaluate, run
from roi.pdf import build_pdf
from roi.report import ReportContext, analyse
from roi.uncertainty import DEFAULT_DRAWS, draw, monte_carlo, tornado
from roi.workbook import build_workbook


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm caches and imports outside the timing
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _npv_loop(rate: float, rows: np.ndarray[Any, Any]) -> None:
    for row in rows:
        npf.npv(rate, row)


def measure(runs: int = 30) -> tuple[list[str], list[str]]:
    """Return (markdown rows, console lines) for the ROI section."""
    inputs = default_inputs("iou").with_values(sunset_share=0.2, sunset_year=7)
    rate = inputs.discount_rate
    rng_seed = 1

    model_ms = _median_ms(lambda: (run(inputs), tornado(inputs)), runs)
    # The same flows the tornado evaluates: every ranged input at low and high, plus base.
    ranged = [n for n, i in inputs.inputs.items() if i.low < i.high]
    values: dict[str, Any] = {
        k: np.full(2 * len(ranged) + 1, v) for k, v in inputs.values().items()
    }
    for i, name in enumerate(ranged):
        values[name][2 * i] = inputs.inputs[name].low
        values[name][2 * i + 1] = inputs.inputs[name].high
    tornado_flows = evaluate(inputs.segment, values, inputs.horizon_years).net
    model_base_ms = _median_ms(lambda: _npv_loop(rate, tornado_flows), runs)

    mc_ms = _median_ms(
        lambda: monte_carlo(inputs, np.random.default_rng(rng_seed), DEFAULT_DRAWS), runs
    )
    rng = np.random.default_rng(rng_seed)
    draws = dict(inputs.values())
    for name in ranged:
        item = inputs.inputs[name]
        draws[name] = draw(rng, item.low, item.value, item.high, DEFAULT_DRAWS)
    mc_flows = evaluate(inputs.segment, draws, inputs.horizon_years).net
    mc_base_ms = _median_ms(lambda: _npv_loop(rate, mc_flows), max(runs // 3, 5))
    vector_npv_ms = _median_ms(lambda: finance.npv_many(rate, mc_flows), runs)

    context = ReportContext("Benchmark Utility", date(2026, 1, 1), distributor_name="NorthGrid")
    pdf_ms = _median_ms(lambda: build_pdf(analyse(inputs), context), 3)
    xlsx_ms = _median_ms(lambda: build_workbook(inputs, run(inputs), context), 5)

    rows = [
        f"| plain `npf.npv` loop over the tornado's {len(tornado_flows)} flow rows (baseline) "
        f"| {model_base_ms:.2f} | 1.00 |",
        f"| whole model + tornado ({len(ranged)} inputs, low/high) | {model_ms:.2f} "
        f"| {model_ms / model_base_ms:.2f} |",
        f"| plain `npf.npv` loop over {DEFAULT_DRAWS:,} drawn flow rows (baseline) "
        f"| {mc_base_ms:.1f} | 1.00 |",
        f"| vectorised NPV of the same {DEFAULT_DRAWS:,} rows (`finance.npv_many`) "
        f"| {vector_npv_ms:.2f} | {vector_npv_ms / mc_base_ms:.3f} |",
        f"| Monte Carlo, {DEFAULT_DRAWS:,} PERT draws: sampling, model, NPV, payback "
        f"| {mc_ms:.1f} | {mc_ms / mc_base_ms:.2f} |",
        f"| PDF report (analysis incl. Monte Carlo, 4 matplotlib charts, fpdf2) | {pdf_ms:.0f} | |",
        f"| Excel workbook with live formulas | {xlsx_ms:.0f} | |",
    ]
    console = [
        f"ROI model + tornado {model_ms:.2f} ms ({model_ms / model_base_ms:.2f}x npf.npv loop)",
        f"ROI Monte Carlo {mc_ms:.1f} ms ({mc_ms / mc_base_ms:.2f}x npf.npv loop "
        f"of {mc_base_ms:.1f} ms)",
        f"ROI PDF {pdf_ms:.0f} ms, workbook {xlsx_ms:.0f} ms",
    ]
    return rows, console
