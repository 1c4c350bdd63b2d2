"""Co-branded PDF report (fpdf2): summary, charts, cash flows, assumptions, methodology.

Text is set in DejaVu Sans, which matplotlib ships, so any customer name prints (the PDF
core fonts are Latin-1 only) and nothing is downloaded. Charts are PNGs drawn by
``roi.charts`` with matplotlib's Agg canvas: no browser is involved.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Final

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from roi import charts
from roi.inputs import DISCOUNT_RATE_SOURCE
from roi.report import (
    METHODOLOGY,
    SEGMENT_TITLES,
    Analysis,
    ReportContext,
    executive_summary,
    input_label,
    money,
    percent,
    rate_of_return,
    years,
)

FONT_DIR: Final = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT: Final = "DejaVu"
BRAND: Final = (5, 80, 174)
INK: Final = (31, 35, 40)
MUTED: Final = (89, 99, 110)
HEAD_FILL: Final = (13, 17, 23)
ZEBRA: Final = (246, 248, 250)


class _Report(FPDF):
    def __init__(self, context: ReportContext) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.context = context
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.add_font(FONT, "I", str(FONT_DIR / "DejaVuSans-Oblique.ttf"))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(16, 16, 16)
        self.set_title(f"ROI report for {context.customer_name}")
        self.set_author(context.vendor_name)
        self.set_creator(f"Wattline ROI {context.model_version}")
        # Dated by the report, not the clock: the same scenario gives the same bytes.
        self.set_creation_date(datetime.combine(context.prepared_on, time(), tzinfo=UTC))

    def header(self) -> None:
        top = 8.0
        self._logo(self.context.vendor_logo, self.context.vendor_name, self.l_margin, top)
        if self.context.distributor_name:
            self._logo(
                self.context.distributor_logo,
                self.context.distributor_name,
                self.w - self.r_margin - 34,
                top,
            )
        self.set_xy(self.l_margin + 38, top + 1)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        parties = self.context.vendor_name
        if self.context.distributor_name:
            parties += f" with {self.context.distributor_name}"
        self.cell(self.epw - 76, 5, parties, align="C")
        self.set_xy(self.l_margin + 38, top + 6)
        self.cell(self.epw - 76, 5, f"Prepared for {self.context.customer_name}", align="C")
        self.set_draw_color(*BRAND)
        self.set_line_width(0.4)
        self.line(self.l_margin, top + 14, self.w - self.r_margin, top + 14)
        self.set_y(top + 18)
        self.set_text_color(*INK)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 7)
        self.set_text_color(*MUTED)
        self.cell(
            0,
            5,
            f"{self.context.vendor_name} ROI model {self.context.model_version} · "
            f"{self.context.prepared_on.isoformat()} · page {self.page_no()}/{{nb}}",
            align="C",
        )

    def _logo(self, png: bytes | None, name: str, x: float, y: float) -> None:
        if png is not None:
            self.image(io.BytesIO(png), x=x, y=y, h=12, w=34, keep_aspect_ratio=True)
            return
        # No logo file: a monogram badge in vector drawing stands in for one.
        initials = "".join(word[0] for word in name.split()[:2]).upper() or "?"
        self.set_fill_color(*BRAND)
        self.rect(x, y, 12, 12, style="F", round_corners=True, corner_radius=2)
        self.set_text_color(255, 255, 255)
        self.set_font(FONT, "B", 10)
        self.set_xy(x, y + 3)
        self.cell(12, 6, initials, align="C")
        self.set_text_color(*INK)
        self.set_font(FONT, "B", 8)
        self.set_xy(x + 13, y + 3)
        self.cell(21, 6, name[:18])

    def h1(self, text: str) -> None:
        self.set_font(FONT, "B", 18)
        self.set_text_color(*BRAND)
        self.multi_cell(0, 9, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*INK)

    def h2(self, text: str, need: float = 30) -> None:
        # Keep a heading with what follows it: `need` mm must fit below it on this page.
        if self.get_y() + need > self.h - self.b_margin:
            self.add_page()
        self.ln(3)
        self.set_font(FONT, "B", 12)
        self.set_text_color(*BRAND)
        self.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*INK)
        self.ln(1)

    def para(self, text: str, size: float = 9.5) -> None:
        self.set_font(FONT, "", size)
        self.multi_cell(0, 5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def chart(self, png: bytes, width: float | None = None) -> None:
        width = width or self.epw
        self.image(io.BytesIO(png), x=self.l_margin, w=width)
        self.ln(2)


def _figures(pdf: _Report, analysis: Analysis) -> None:
    result = analysis.result
    horizon = result.horizon_years
    tiles = [
        ("Net present value", money(result.npv)),
        ("Internal rate of return", rate_of_return(result.irr)),
        ("Simple payback", years(result.simple_payback_years, horizon)),
        ("Discounted payback", years(result.discounted_payback_years, horizon)),
        (
            "Benefit / cost",
            "n/a" if result.benefit_cost_ratio is None else f"{result.benefit_cost_ratio:.2f}",
        ),
    ]
    width = pdf.epw / len(tiles)
    y = pdf.get_y()
    for i, (name, value) in enumerate(tiles):
        x = pdf.l_margin + i * width
        pdf.set_fill_color(*ZEBRA)
        pdf.set_draw_color(209, 217, 224)
        pdf.rect(x + 0.5, y, width - 1, 18, style="DF")
        pdf.set_xy(x + 0.5, y + 2)
        pdf.set_font(FONT, "", 7)
        pdf.set_text_color(*MUTED)
        pdf.cell(width - 1, 4, name, align="C")
        pdf.set_xy(x + 0.5, y + 7)
        pdf.set_font(FONT, "B", 11)
        pdf.set_text_color(*INK)
        pdf.cell(width - 1, 8, value, align="C")
    pdf.set_y(y + 21)


def _table(
    pdf: _Report,
    headings: list[str],
    rows: list[list[str]],
    widths: tuple[float, ...],
    *,
    size: float = 7.5,
    numeric_from: int = 1,
) -> None:
    pdf.set_font(FONT, "", size)
    head = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=HEAD_FILL)
    align = tuple("L" if i < numeric_from else "R" for i in range(len(headings)))
    with pdf.table(
        col_widths=widths,
        headings_style=head,
        line_height=size * 0.55,
        text_align=align,
        cell_fill_color=ZEBRA,
        cell_fill_mode="ROWS",
        borders_layout="HORIZONTAL_LINES",
        repeat_headings=1,
    ) as table:
        table.row(headings)
        for values in rows:
            table.row(values)
    pdf.ln(2)


def build_pdf(analysis: Analysis, context: ReportContext) -> bytes:
    """Return the PDF bytes of the co-branded customer report for one analysed scenario."""
    inputs, result = analysis.inputs, analysis.result
    input_names = {name: input_label(name) for name in inputs.inputs}
    pdf = _Report(context)
    pdf.add_page()
    pdf.h1(f"Wireless metering ROI for {context.customer_name}")
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(*MUTED)
    subtitle = (
        f"{SEGMENT_TITLES[inputs.segment]} · {inputs.horizon_years}-year horizon · "
        f"prepared {context.prepared_on.strftime('%d %B %Y')}"
    )
    if context.prepared_by:
        subtitle += f" by {context.prepared_by}"
    subtitle += f" · model {context.model_version}"
    if context.scenario_label:
        subtitle += f" · {context.scenario_label}"
    pdf.multi_cell(0, 5, subtitle, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.ln(3)
    _figures(pdf, analysis)

    pdf.h2("Executive summary")
    for paragraph in executive_summary(inputs, result, context):
        pdf.para(paragraph)
    mc = analysis.monte_carlo
    pdf.para(
        f"Allowing every assumption to vary over its range ({mc.draws:,} Monte Carlo draws), "
        f"the NPV is {money(mc.p10)} or better nine times in ten (P10), {money(mc.p50)} in "
        f"the middle (P50) and {money(mc.p90)} at the optimistic end (P90); the investment "
        f"pays back within the horizon in {mc.probability_payback:.0%} of the draws."
    )
    for note in context.extra_notes:
        pdf.para(note)

    pdf.h2("Cash flow", need=80)
    pdf.chart(charts.cumulative_chart(result), width=pdf.epw * 0.9)
    pdf.chart(charts.savings_chart(result), width=pdf.epw * 0.9)

    pdf.h2("Year by year", need=60)
    rows = [
        [
            str(int(r["year"])),
            money(r["capex"]),
            money(r["opex"]),
            money(r["avoided"]),
            money(r["net"]),
            money(r["cumulative"]),
            f"{r['discount_factor']:.4f}",
            money(r["discounted"]),
            money(r["cumulative_discounted"]),
        ]
        for r in result.cash_flows
    ]
    _table(
        pdf,
        [
            "Year",
            "Capex",
            "Running costs",
            "Savings",
            "Net",
            "Cumulative",
            "Discount factor",
            "Discounted",
            "Cum. discounted",
        ],
        rows,
        (10, 21, 21, 21, 21, 22, 18, 21, 23),
    )
    if result.after_tax is not None:
        pdf.para(
            f"After tax: NPV {money(result.after_tax.npv)}, IRR {rate_of_return(result.after_tax.irr)}, "
            f"payback {years(result.after_tax.simple_payback_years, result.horizon_years)} "
            "(income tax on savings less running costs and straight-line depreciation).",
            size=8.5,
        )
    if result.budget is not None:
        pdf.h2("Annual budget view")
        _table(
            pdf,
            [
                "Year",
                "Subscription",
                "One-time",
                "Total spend",
                "Per month",
                "Costs avoided",
                "Budget effect",
            ],
            [
                [
                    str(int(b["year"])),
                    money(b["subscription"]),
                    money(b["one_time"]),
                    money(b["spend"]),
                    money(b["monthly_spend"]),
                    money(b["avoided"]),
                    money(b["net_budget_effect"]),
                ]
                for b in result.budget
            ],
            (14, 26, 24, 26, 24, 30, 34),
        )

    pdf.h2("What moves the result", need=100)
    pdf.chart(charts.tornado_chart(analysis.tornado, input_names), width=pdf.epw * 0.9)
    pdf.chart(charts.monte_carlo_chart(mc), width=pdf.epw * 0.8)
    _table(
        pdf,
        ["Case", "NPV", "IRR", "Simple payback", "Discounted payback"],
        [
            [
                name.capitalize(),
                money(case.npv),
                rate_of_return(case.irr),
                years(case.simple_payback_years, case.horizon_years),
                years(case.discounted_payback_years, case.horizon_years),
            ]
            for name, case in analysis.cases.items()
        ],
        (30, 38, 30, 42, 42),
    )
    pdf.para(
        "Low case: every ranged assumption at the end of its range that lowers the NPV; "
        "high case: every one at the end that raises it.",
        size=8,
    )

    if result.risks:
        pdf.h2("Security and risk considerations")
        for risk in result.risks:
            pdf.para(f"• {risk}", size=9)

    pdf.h2("Assumptions")
    assumption_rows = [
        [
            "Discount rate",
            percent(inputs.discount_rate),
            "fixed",
            DISCOUNT_RATE_SOURCE,
        ]
    ]
    for name, item in inputs.inputs.items():
        fraction = item.unit.startswith("fraction")

        def fmt(v: float, fraction: bool = fraction) -> str:
            return percent(v) if fraction else f"{v:,.10g}"

        value = fmt(item.value) + ("" if fraction else f" {item.unit}")
        span = "fixed" if item.low == item.high else f"{fmt(item.low)} to {fmt(item.high)}"
        assumption_rows.append([input_names.get(name, name), value, span, item.source])
    pdf.set_font(FONT, "", 7)
    head = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=HEAD_FILL)
    with pdf.table(
        col_widths=(40, 28, 26, 84),
        headings_style=head,
        line_height=3.6,
        text_align=("L", "R", "R", "L"),
        cell_fill_color=ZEBRA,
        cell_fill_mode="ROWS",
        borders_layout="HORIZONTAL_LINES",
        repeat_headings=1,
    ) as table:
        table.row(["Assumption", "Value", "Range", "Source"])
        for values in assumption_rows:
            table.row(values)

    pdf.h2("Methodology")
    for paragraph in METHODOLOGY:
        pdf.para(paragraph, size=8.5)
    for note in result.notes[1:]:
        pdf.para(note, size=8.5)
    return bytes(pdf.output())
