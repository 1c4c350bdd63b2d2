"""Static report charts drawn with matplotlib's Agg canvas: no browser, no display, PNG bytes.

``Figure`` objects are built directly (never ``pyplot``), so no global state is shared
between requests and the charts can be drawn from any thread.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from roi.models import RoiResult
from roi.report import label
from roi.report import years as payback_text
from roi.uncertainty import MonteCarloResult, Tornado

BRAND: Final = "#0550ae"
GOOD: Final = "#1a7f37"
BAD: Final = "#cf222e"
MUTED: Final = "#59636e"
DPI: Final = 150


def _dollars(value: float, _pos: object = None) -> str:
    magnitude = abs(value)
    sign = "-" if value < 0 else ""
    if magnitude >= 1e6:
        return f"{sign}${magnitude / 1e6:.1f}M"
    if magnitude >= 1e3:
        return f"{sign}${magnitude / 1e3:.0f}k"
    return f"{sign}${magnitude:.0f}"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 3.2) -> Figure:
    fig = Figure(figsize=(width, height))
    fig.patch.set_facecolor("white")
    return fig


def cumulative_chart(result: RoiResult) -> bytes:
    """Draw yearly net flows, the cumulative and discounted cumulative lines and the payback."""
    fig = _figure()
    ax = fig.add_subplot()
    years = [int(r["year"]) for r in result.cash_flows]
    net = [r["net"] for r in result.cash_flows]
    ax.bar(years, net, color=[GOOD if v >= 0 else BAD for v in net], alpha=0.35, label="Net")
    ax.plot(
        years, [r["cumulative"] for r in result.cash_flows], color=BRAND, lw=2, label="Cumulative"
    )
    ax.plot(
        years,
        [r["cumulative_discounted"] for r in result.cash_flows],
        color=BRAND,
        lw=1.5,
        ls="--",
        label="Cumulative, discounted",
    )
    ax.axhline(0, color=MUTED, lw=0.8)
    if result.simple_payback_years is not None:
        ax.axvline(result.simple_payback_years, color=GOOD, lw=1, ls=":")
        ax.plot([result.simple_payback_years], [0], "o", color=GOOD)
        ax.annotate(
            f"payback {payback_text(result.simple_payback_years, result.horizon_years)}",
            (result.simple_payback_years, 0),
            textcoords="offset points",
            xytext=(6, 8),
            color=GOOD,
            fontsize=8,
        )
    ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_xlabel("Year (0 = investment year)")
    ax.set_xticks(years)
    ax.set_title("Cumulative cash flow", loc="left", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def savings_chart(result: RoiResult) -> bytes:
    """Draw total savings over the horizon by category, largest first."""
    items = sorted(result.savings_by_category.items(), key=lambda kv: kv[1])
    fig = _figure(height=0.35 * len(items) + 0.9)
    ax = fig.add_subplot()
    ax.barh([label(k) for k, _ in items], [v for _, v in items], color=GOOD)
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_title(f"Savings by category over {result.horizon_years} years", loc="left", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def tornado_chart(tornado: Tornado, names: dict[str, str], top: int = 10) -> bytes:
    """Draw the widest `top` tornado bars around the base NPV."""
    bars = list(tornado.bars[:top])[::-1]
    fig = _figure(height=0.35 * max(len(bars), 1) + 0.9)
    ax = fig.add_subplot()
    base = tornado.base_npv
    for i, bar in enumerate(bars):
        for value, color in ((bar.npv_at_low, "#8c959f"), (bar.npv_at_high, BRAND)):
            ax.barh(i, value - base, left=base, color=color, height=0.6)
    ax.set_yticks(range(len(bars)), [names.get(b.name, b.name) for b in bars], fontsize=8)
    ax.axvline(base, color="black", lw=0.8)
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_title(
        "NPV sensitivity: grey = input at low end, blue = high end", loc="left", fontsize=10
    )
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def monte_carlo_chart(mc: MonteCarloResult) -> bytes:
    """Draw the NPV histogram of the Monte Carlo with P10, P50 and P90 marked."""
    fig = _figure()
    ax = fig.add_subplot()
    edges = mc.histogram()["edges"]
    if edges:
        ax.hist(mc.npv[np.isfinite(mc.npv)], bins=edges, color=BRAND, alpha=0.75)
    for name, value in (("P10", mc.p10), ("P50", mc.p50), ("P90", mc.p90)):
        ax.axvline(value, color=BAD if name == "P10" else MUTED, lw=1, ls="--")
        ax.annotate(
            f"{name} {_dollars(value)}",
            (value, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
        )
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_yticks([])
    ax.set_title(
        f"NPV over {mc.draws:,} draws · payback within the horizon in "
        f"{mc.probability_payback:.0%} of them",
        loc="left",
        fontsize=10,
    )
    ax.spines[["top", "right", "left"]].set_visible(False)
    return _png(fig)
