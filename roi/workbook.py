"""Excel workbook with live formulas: change an assumption and NPV, IRR and payback follow.

Sheets:

* **Summary** — headline figures, every one a formula over the other sheets.
* **Inputs** — one row per assumption: the value cell (yellow, editable) carries a
  workbook name equal to the input's name (``endpoints``, ``modem_line_monthly`` …), so
  every formula reads like the model; unit, range and source beside it.
* **Cash flows** — one row per year (year 0 the investment year), one column per cost or
  saving category, then totals, cumulative, discount factor, discounted flows and the
  payback helpers.

The horizon fixes the number of rows, so it is the one assumption that needs a new
workbook. The formulas restate ``roi.models`` cell by cell; a unit test evaluates them
with a formula engine and compares with the Python model. Cached values are written too,
so viewers that do not recalculate still show the model's figures.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import xlsxwriter  # type: ignore[import-untyped]  # ships no type hints
from xlsxwriter.utility import xl_rowcol_to_cell  # type: ignore[import-untyped]

from roi.inputs import DISCOUNT_RATE_SOURCE, RoiInputs, Segment
from roi.models import RoiResult
from roi.report import ReportContext, label

Kind = Literal["year0", "yearly_cost", "yearly_saving", "custom"]


@dataclass(frozen=True)
class Column:
    """One category column: its group, how it spreads over the years and its year-1 amount."""

    key: str
    group: Literal["capex", "opex", "avoided"]
    kind: Kind
    amount: str  # Excel expression over input names; "{year}" is the row's year cell


_READS = "(manual_reads_per_year+re_reads_per_year)"
_ENDPOINT_CAPEX: Final = (
    Column("endpoints", "capex", "year0", "endpoints*endpoint_cost"),
    Column("installation", "capex", "year0", "endpoints*installation_cost"),
    Column("integration", "capex", "year0", "integration_cost"),
)
_ENDPOINT_OPEX: Final = (
    Column("cellular", "opex", "yearly_cost", "endpoints*cellular_monthly*12"),
    Column("hosting", "opex", "yearly_cost", "hosting_annual"),
    Column("maintenance", "opex", "yearly_cost", "endpoints*endpoint_maintenance_annual"),
)
_STANDARD_AVOIDED: Final = (
    Column("modem_lines", "avoided", "yearly_saving", "modem_lines*modem_line_monthly*12"),
    Column("modem_maintenance", "avoided", "yearly_saving", "modem_lines*modem_maintenance_annual"),
    Column("manual_reads", "avoided", "yearly_saving", f"{_READS}*cost_per_read"),
    Column(
        "reader_labour",
        "avoided",
        "yearly_saving",
        f"{_READS}*reader_hours_per_read*reader_hourly_rate",
    ),
    Column("mileage", "avoided", "yearly_saving", f"{_READS}*miles_per_read*mileage_rate"),
    Column(
        "estimated_bills",
        "avoided",
        "yearly_saving",
        "estimated_bills_per_year*estimated_bill_cost",
    ),
    Column("truck_rolls", "avoided", "yearly_saving", "truck_rolls_per_year*truck_roll_cost"),
)
# The sunset year is rounded (and at least 1), exactly as the model does.
_SUNSET_YEAR = "MAX(ROUND(sunset_year,0),1)"
COLUMNS: Final[dict[Segment, tuple[Column, ...]]] = {
    "iou": (
        *_ENDPOINT_CAPEX,
        Column(
            "sunset_replacement",
            "capex",
            "custom",
            f"IF({{year}}={_SUNSET_YEAR},"
            "sunset_share*endpoints*(endpoint_cost+installation_cost),0)",
        ),
        *_ENDPOINT_OPEX,
        *_STANDARD_AVOIDED,
    ),
    "service_bureau": (
        Column("subscription", "opex", "yearly_cost", "meters*subscription_monthly*12"),
        Column("onboarding", "opex", "year0", "onboarding_fee"),
        *_STANDARD_AVOIDED,
        Column("owned_software", "avoided", "yearly_saving", "owned_software_annual"),
        Column("owned_staff", "avoided", "yearly_saving", "owned_staff_fte*staff_cost_annual"),
    ),
    "security": (
        *_ENDPOINT_CAPEX,
        *_ENDPOINT_OPEX,
        Column(
            "reader_time",
            "avoided",
            "yearly_saving",
            "site_visits_per_year*reader_hours_per_visit*reader_hourly_rate",
        ),
        Column(
            "escort",
            "avoided",
            "yearly_saving",
            "site_visits_per_year*escort_hours_per_visit*escort_hourly_rate",
        ),
        Column(
            "access_processing",
            "avoided",
            "yearly_saving",
            "site_visits_per_year*access_processing_cost",
        ),
        Column("manual_reads", "avoided", "yearly_saving", "site_visits_per_year*cost_per_read"),
        Column(
            "mileage",
            "avoided",
            "yearly_saving",
            "site_visits_per_year*miles_per_visit*mileage_rate",
        ),
    ),
}

SUMMARY_SHEET: Final = "Summary"
INPUTS_SHEET: Final = "Inputs"
FLOWS_SHEET: Final = "Cash flows"
# Row (0-based) of each headline on the Summary sheet, column B; tests read them here.
SUMMARY_ROWS: Final[dict[str, int]] = {
    "npv": 6,
    "irr": 7,
    "mirr": 8,
    "simple_payback_years": 9,
    "discounted_payback_years": 10,
    "benefit_cost_ratio": 11,
    "after_tax_npv": 12,
}
INPUT_FIRST_ROW: Final = 3  # 0-based row of the first input on the Inputs sheet


def _formula(column: Column, year: str) -> str:
    if column.kind == "year0":
        return f"=IF({year}=0,{column.amount},0)"
    if column.kind == "custom":
        return "=" + column.amount.replace("{year}", year)
    rate = "cost_escalation" if column.kind == "yearly_cost" else "avoided_escalation"
    return f"=IF({year}>=1,({column.amount})*(1+{rate})^({year}-1),0)"


def input_cells(inputs: RoiInputs) -> dict[str, str]:
    """Return the Inputs-sheet cell (e.g. ``C4``) of every input's value, discount rate included."""
    cells = {"discount_rate": xl_rowcol_to_cell(INPUT_FIRST_ROW, 2)}
    for i, name in enumerate(inputs.inputs, start=1):
        cells[name] = xl_rowcol_to_cell(INPUT_FIRST_ROW + i, 2)
    return cells


def build_workbook(inputs: RoiInputs, result: RoiResult, context: ReportContext) -> bytes:
    """Return the .xlsx bytes of the live-formula workbook for one evaluated scenario."""
    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"in_memory": True})
    wb.set_properties(
        {
            "title": f"ROI model for {context.customer_name}",
            "company": context.vendor_name,
            "comments": f"Model {context.model_version}",
        }
    )
    f = _Formats(wb)
    summary = wb.add_worksheet(SUMMARY_SHEET)
    sheet_in = wb.add_worksheet(INPUTS_SHEET)
    flows = wb.add_worksheet(FLOWS_SHEET)
    _inputs_sheet(wb, sheet_in, inputs, f)
    refs = _flows_sheet(flows, inputs, result, f)
    _summary_sheet(summary, inputs, result, context, refs, f)
    summary.activate()
    wb.close()
    return buffer.getvalue()


class _Formats:
    def __init__(self, wb: Any) -> None:
        self.title = wb.add_format({"bold": True, "font_size": 16, "font_color": "#0550AE"})
        self.bold = wb.add_format({"bold": True})
        self.head = wb.add_format(
            {"bold": True, "bg_color": "#0D1117", "font_color": "#FFFFFF", "text_wrap": True}
        )
        self.money = wb.add_format({"num_format": "$#,##0;-$#,##0"})
        self.money_bold = wb.add_format({"num_format": "$#,##0;-$#,##0", "bold": True})
        self.pct = wb.add_format({"num_format": "0.0%"})
        self.ratio = wb.add_format({"num_format": "0.00"})
        self.years = wb.add_format({"num_format": '0.00" yr"'})
        self.factor = wb.add_format({"num_format": "0.0000"})
        self.edit = wb.add_format({"bg_color": "#FFF8C5", "border": 1, "border_color": "#BF8700"})
        self.edit_pct = wb.add_format(
            {"bg_color": "#FFF8C5", "border": 1, "border_color": "#BF8700", "num_format": "0.0%"}
        )
        self.wrap = wb.add_format({"text_wrap": True, "valign": "top", "font_size": 9})
        self.muted = wb.add_format({"font_color": "#59636E", "italic": True})


def _inputs_sheet(wb: Any, ws: Any, inputs: RoiInputs, f: _Formats) -> None:
    ws.write(0, 0, "Assumptions — edit the yellow cells; every other sheet recalculates", f.title)
    ws.write(
        1,
        0,
        f"Horizon: {inputs.horizon_years} years (fixed: the cash-flow table has one row "
        "per year; ask for a new workbook to change it).",
        f.muted,
    )
    headers = ["Input", "Description", "Value", "Unit", "Low", "High", "Source"]
    for col, text in enumerate(headers):
        ws.write(INPUT_FIRST_ROW - 1, col, text, f.head)
    rows: list[tuple[str, str, float, str, float, float, str]] = [
        (
            "discount_rate",
            "Discount rate (year t discounted by (1 + r)^t)",
            inputs.discount_rate,
            "fraction",
            inputs.discount_rate,
            inputs.discount_rate,
            DISCOUNT_RATE_SOURCE,
        )
    ]
    rows += [
        (name, i.description, i.value, i.unit, i.low, i.high, i.source)
        for name, i in inputs.inputs.items()
    ]
    for offset, (name, description, value, unit, low, high, source) in enumerate(rows):
        row = INPUT_FIRST_ROW + offset
        fraction = unit.startswith("fraction")
        ws.write_string(row, 0, name)
        ws.write_string(row, 1, description, f.wrap)
        ws.write_number(row, 2, value, f.edit_pct if fraction else f.edit)
        ws.write_string(row, 3, unit)
        ws.write_number(row, 4, low, f.pct if fraction else None)
        ws.write_number(row, 5, high, f.pct if fraction else None)
        ws.write_string(row, 6, source, f.wrap)
        wb.define_name(name, f"='{INPUTS_SHEET}'!${'C'}${row + 1}")
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, 46)
    ws.set_column(2, 2, 13)
    ws.set_column(3, 3, 16)
    ws.set_column(4, 5, 11)
    ws.set_column(6, 6, 70)
    ws.freeze_panes(INPUT_FIRST_ROW, 1)


@dataclass(frozen=True)
class _Refs:
    net: str
    net_first: str
    net_rest: str
    capex: str
    opex: str
    avoided: str
    cumulative: str
    factors: str
    cum_discounted: str
    payback_helper: str
    discounted_payback_helper: str
    net_after_tax: str | None


def _flows_sheet(ws: Any, inputs: RoiInputs, result: RoiResult, f: _Formats) -> _Refs:
    columns = COLUMNS[inputs.segment]
    horizon = inputs.horizon_years
    first, last = 1, 1 + horizon  # 0-based rows of year 0 and the final year
    rows = result.cash_flows
    ws.freeze_panes(1, 1)

    def rng(col: int, a: int = first, b: int = last) -> str:
        return (
            f"{xl_rowcol_to_cell(a, col, row_abs=True, col_abs=True)}:"
            f"{xl_rowcol_to_cell(b, col, row_abs=True, col_abs=True)}"
        )

    def cell(r: int, c: int) -> str:
        return str(xl_rowcol_to_cell(r, c))

    headers = ["Year"] + [f"{g.capitalize()}: {label(c.key)}" for g, c in _grouped(columns)]
    totals = [
        "Capex",
        "Opex",
        "Avoided",
        "Net",
        "Cumulative",
        "Discount factor",
        "Discounted net",
        "Cumulative discounted",
        "Payback crossing",
        "Discounted payback crossing",
    ]
    after_tax = inputs.segment == "iou"
    if after_tax:
        totals += ["Depreciation", "Tax", "Net after tax"]
    for col, text in enumerate(headers + totals):
        ws.write(0, col, text, f.head)
    ws.set_row(0, 45)
    ws.set_column(0, 0, 6)
    ws.set_column(1, len(headers) + len(totals), 14)

    cat_cols = {c.key: i + 1 for i, (_, c) in enumerate(_grouped(columns))}
    base = len(headers)
    c_capex, c_opex, c_avoided, c_net = base, base + 1, base + 2, base + 3
    c_cum, c_factor, c_disc, c_cum_disc = base + 4, base + 5, base + 6, base + 7
    c_pay, c_dpay = base + 8, base + 9
    c_dep, c_tax, c_after = base + 10, base + 11, base + 12

    for t in range(horizon + 1):
        r = first + t
        data = rows[t]
        year = cell(r, 0)
        ws.write_number(r, 0, t)
        for group, column in _grouped(columns):
            ws.write_formula(
                r,
                cat_cols[column.key],
                _formula(column, year),
                f.money,
                data.get(f"{group}_{column.key}", 0.0),
            )

        def total(group: str, r: int = r) -> str:
            keys = [cat_cols[c.key] for g, c in _grouped(columns) if g == group]
            return "=" + ("+".join(cell(r, k) for k in keys) if keys else "0")

        ws.write_formula(r, c_capex, total("capex"), f.money, data["capex"])
        ws.write_formula(r, c_opex, total("opex"), f.money, data["opex"])
        ws.write_formula(r, c_avoided, total("avoided"), f.money, data["avoided"])
        ws.write_formula(
            r,
            c_net,
            f"={cell(r, c_avoided)}-{cell(r, c_capex)}-{cell(r, c_opex)}",
            f.money_bold,
            data["net"],
        )
        previous_cum = f"{cell(r - 1, c_cum)}+" if t > 0 else ""
        ws.write_formula(r, c_cum, f"={previous_cum}{cell(r, c_net)}", f.money, data["cumulative"])
        ws.write_formula(
            r, c_factor, f"=1/(1+discount_rate)^{year}", f.factor, data["discount_factor"]
        )
        ws.write_formula(
            r, c_disc, f"={cell(r, c_net)}*{cell(r, c_factor)}", f.money, data["discounted"]
        )
        previous_cd = f"{cell(r - 1, c_cum_disc)}+" if t > 0 else ""
        ws.write_formula(
            r,
            c_cum_disc,
            f"={previous_cd}{cell(r, c_disc)}",
            f.money,
            data["cumulative_discounted"],
        )
        for col, cum_col in ((c_pay, c_cum), (c_dpay, c_cum_disc)):
            if t == 0:
                ws.write_string(r, col, "")
                continue
            # The crossing that counts is the last one: the cumulative is negative the
            # year before and never negative again (a later outlay moves payback out).
            before, now = cell(r - 1, cum_col), cell(r, cum_col)
            later = rng(cum_col, r, last)
            ws.write_formula(
                r,
                col,
                f'=IF(AND({before}<0,COUNTIF({later},"<0")=0),'
                f'{cell(r - 1, 0)}+(-{before})/({now}-{before}),"")',
                f.factor,
            )
        if after_tax:
            ws.write_formula(r, c_dep, _depreciation(year), f.money, data.get("depreciation", 0.0))
            ws.write_formula(
                r,
                c_tax,
                f"=tax_rate*({cell(r, c_avoided)}-{cell(r, c_opex)}-{cell(r, c_dep)})",
                f.money,
                data.get("tax", 0.0),
            )
            ws.write_formula(
                r,
                c_after,
                f"={cell(r, c_net)}-{cell(r, c_tax)}",
                f.money_bold,
                data.get("net_after_tax", 0.0),
            )
    return _Refs(
        net=f"'{FLOWS_SHEET}'!{rng(c_net)}",
        net_first=f"'{FLOWS_SHEET}'!{xl_rowcol_to_cell(first, c_net, True, True)}",
        net_rest=f"'{FLOWS_SHEET}'!{rng(c_net, first + 1, last)}" if horizon else "",
        capex=f"'{FLOWS_SHEET}'!{rng(c_capex)}",
        opex=f"'{FLOWS_SHEET}'!{rng(c_opex)}",
        avoided=f"'{FLOWS_SHEET}'!{rng(c_avoided)}",
        cumulative=f"'{FLOWS_SHEET}'!{rng(c_cum)}",
        factors=f"'{FLOWS_SHEET}'!{rng(c_factor)}",
        cum_discounted=f"'{FLOWS_SHEET}'!{rng(c_cum_disc)}",
        payback_helper=f"'{FLOWS_SHEET}'!{rng(c_pay)}",
        discounted_payback_helper=f"'{FLOWS_SHEET}'!{rng(c_dpay)}",
        net_after_tax=f"'{FLOWS_SHEET}'!{rng(c_after)}" if after_tax else None,
    )


def _grouped(columns: Sequence[Column]) -> list[tuple[str, Column]]:
    order = {"capex": 0, "opex": 1, "avoided": 2}
    return [(c.group, c) for c in sorted(columns, key=lambda c: order[c.group])]


def _depreciation(year: str) -> str:
    """Straight-line depreciation of the initial capex and of any sunset replacement."""

    def share(start: str) -> str:
        age = f"({year}-{start})"
        return (
            f"IF({age}>=1,MAX(0,MIN(1,MIN({age},depreciation_years)-({age}-1))),0)"
            "/depreciation_years"
        )

    initial = "endpoints*(endpoint_cost+installation_cost)+integration_cost"
    replaced = "sunset_share*endpoints*(endpoint_cost+installation_cost)"
    return f"=({initial})*{share('0')}+({replaced})*{share(_SUNSET_YEAR)}"


def _payback(helper: str, cumulative: str) -> str:
    return f'=IF(COUNTIF({cumulative},"<0")=0,0,IF(COUNT({helper})=0,"never",SUM({helper})))'


def _summary_sheet(
    ws: Any,
    inputs: RoiInputs,
    result: RoiResult,
    context: ReportContext,
    refs: _Refs,
    f: _Formats,
) -> None:
    ws.set_column(0, 0, 44)
    ws.set_column(1, 1, 18)
    ws.set_column(2, 2, 70)
    ws.write(0, 0, f"ROI model for {context.customer_name}", f.title)
    parties = context.vendor_name + (
        f" with {context.distributor_name}" if context.distributor_name else ""
    )
    ws.write(1, 0, f"Prepared by {parties} on {context.prepared_on.isoformat()}")
    ws.write(
        2,
        0,
        f"Model {context.model_version} · {inputs.segment} · horizon {inputs.horizon_years} "
        "years. Change the yellow cells on the Inputs sheet; these figures recalculate.",
        f.muted,
    )
    ws.write(4, 0, "Figure", f.head)
    ws.write(4, 1, "Value", f.head)
    ws.write(4, 2, "Formula and convention", f.head)
    npv_formula = f"={refs.net_first}" + (
        f"+NPV(discount_rate,{refs.net_rest})" if refs.net_rest else ""
    )
    after = result.after_tax
    lines: list[tuple[str, str, str, Any, float | str | None]] = [
        (
            "npv",
            "Net present value",
            npv_formula,
            f.money_bold,
            result.npv,
        ),
        ("irr", "Internal rate of return", f'=IFERROR(IRR({refs.net}),"n/a")', f.pct, result.irr),
        (
            "mirr",
            "Modified IRR (finance and reinvest at the discount rate)",
            f'=IFERROR(MIRR({refs.net},discount_rate,discount_rate),"n/a")',
            f.pct,
            result.mirr,
        ),
        (
            "simple_payback_years",
            "Simple payback",
            _payback(refs.payback_helper, refs.cumulative),
            f.years,
            result.simple_payback_years,
        ),
        (
            "discounted_payback_years",
            "Discounted payback",
            _payback(refs.discounted_payback_helper, refs.cum_discounted),
            f.years,
            result.discounted_payback_years,
        ),
        (
            "benefit_cost_ratio",
            "Benefit / cost ratio (present values, pre-tax)",
            # "n/a" where the model has none (no costs): as IRR and MIRR, not #DIV/0!.
            f"=IFERROR(SUMPRODUCT({refs.avoided},{refs.factors})/"
            f'SUMPRODUCT({refs.capex}+{refs.opex},{refs.factors}),"n/a")',
            f.ratio,
            result.benefit_cost_ratio,
        ),
    ]
    if refs.net_after_tax is not None and after is not None:
        lines.append(
            (
                "after_tax_npv",
                "Net present value after tax",
                f"=SUMPRODUCT({refs.net_after_tax},{refs.factors})",
                f.money_bold,
                after.npv,
            )
        )
    notes = {
        "npv": "Year 0 undiscounted + NPV(r, years 1..n): year t discounted by (1 + r)^t. "
        "Excel's NPV() alone would discount year 0 one period too.",
        "irr": "Rate at which the NPV of the net flows is zero.",
        "mirr": "Costs financed and gains reinvested at the discount rate.",
        "simple_payback_years": "Years until the cumulative net flow stays at or above zero, "
        "interpolated within the year.",
        "discounted_payback_years": "The same on discounted flows.",
        "benefit_cost_ratio": "PV of savings / PV of capex and running costs.",
        "after_tax_npv": "After income tax with straight-line depreciation (IOU only).",
    }
    for key, text, formula, fmt, cached in lines:
        row = SUMMARY_ROWS[key]
        ws.write_string(row, 0, text, f.bold)
        value = "never" if cached is None and "payback" in key else cached
        if value is None:
            value = "n/a"
        ws.write_formula(row, 1, formula, fmt, value)
        ws.write_string(row, 2, notes[key], f.wrap)
