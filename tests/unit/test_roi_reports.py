"""Report builders: the workbook's live formulas agree with the model; CSV and PDF contents."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import formulas
import pytest
from pypdf import PdfReader

from roi.inputs import RoiInputs, default_inputs, parse_inputs
from roi.models import run
from roi.pdf import build_pdf
from roi.report import ReportContext, analyse, cash_flow_csv, executive_summary, money
from roi.workbook import INPUTS_SHEET, SUMMARY_ROWS, SUMMARY_SHEET, build_workbook, input_cells

CONTEXT = ReportContext(
    customer_name="Łódź & Sons Électrique",
    prepared_on=date(2026, 11, 25),
    distributor_name="NorthGrid Supply",
    prepared_by="Sam Sales-Engineer",
)


def make_case(segment: str, **values: float) -> RoiInputs:
    """Default inputs of a segment with some values replaced."""
    return default_inputs(segment).with_values(**values)


class Workbook:
    """An .xlsx evaluated by the `formulas` engine (a Python spreadsheet calculator)."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.model = formulas.ExcelModel().loads(str(path)).finish()

    def _key(self, sheet: str, cell: str) -> str:
        return f"'[{self.name}]{sheet.upper()}'!{cell}"

    def summary(self, changes: dict[str, float] | None = None) -> dict[str, Any]:
        """Recalculate (optionally with Inputs-sheet cells changed) and read the headlines."""
        inputs = {self._key(INPUTS_SHEET, cell): value for cell, value in (changes or {}).items()}
        solution = self.model.calculate(inputs=inputs)
        out: dict[str, Any] = {}
        for key, row in SUMMARY_ROWS.items():
            found = solution.get(self._key(SUMMARY_SHEET, f"B{row + 1}"))
            if found is not None:
                value = found.value[0, 0]
                out[key] = value if isinstance(value, str) else float(value)
        return out


def write_workbook(tmp_path: Path, inputs: RoiInputs, name: str = "model.xlsx") -> Path:
    path = tmp_path / name
    path.write_bytes(build_workbook(inputs, run(inputs), CONTEXT))
    return path


def expected(inputs: RoiInputs) -> dict[str, Any]:
    """The Python model's headline figures in the workbook's terms."""
    result = run(inputs)
    figures: dict[str, Any] = {
        "npv": result.npv,
        "irr": result.irr,
        "mirr": result.mirr,
        "simple_payback_years": result.simple_payback_years,
        "discounted_payback_years": result.discounted_payback_years,
        "benefit_cost_ratio": result.benefit_cost_ratio,
    }
    if result.after_tax is not None:
        figures["after_tax_npv"] = result.after_tax.npv
    for key in ("simple_payback_years", "discounted_payback_years"):
        if figures[key] is None:
            figures[key] = "never"
    for key in ("irr", "mirr", "benefit_cost_ratio"):
        if figures[key] is None:
            figures[key] = "n/a"
    return figures


def assert_same(found: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert found.keys() == wanted.keys()
    for key, value in wanted.items():
        if isinstance(value, str):
            assert found[key] == value, key
        else:
            assert found[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


@pytest.mark.parametrize(
    ("segment", "values"),
    [
        ("iou", {"sunset_share": 0.3, "sunset_year": 6}),
        ("iou", {"depreciation_years": 7, "cost_escalation": 0.05}),
        ("service_bureau", {"subscription_monthly": 30, "onboarding_fee": 20_000}),
        # No costs at all: no benefit/cost ratio, "n/a" rather than #DIV/0!.
        ("service_bureau", {"subscription_monthly": 0, "onboarding_fee": 0}),
        ("security", {"site_visits_per_year": 120, "escort_hourly_rate": 75}),
    ],
)
def test_workbook_formulas_evaluate_to_the_model(
    tmp_path: Path, segment: str, values: dict[str, float]
) -> None:
    inputs = make_case(segment, **values)
    book = Workbook(write_workbook(tmp_path, inputs))
    assert_same(book.summary(), expected(inputs))


def test_changing_an_assumption_in_the_workbook_recalculates_like_the_model(
    tmp_path: Path,
) -> None:
    inputs = make_case("iou", sunset_share=0.2, sunset_year=5)
    book = Workbook(write_workbook(tmp_path, inputs))
    cells = input_cells(inputs)
    # The customer doubts the phone bill, raises the rate and shortens the sunset.
    changes = {"modem_line_monthly": 31.0, "discount_rate": 0.11, "sunset_year": 3.0}
    found = book.summary({cells[name]: value for name, value in changes.items()})
    changed = parse_inputs(
        {
            **inputs.to_dict(),
            "discount_rate": 0.11,
            "inputs": {
                **{k: v.to_dict() for k, v in inputs.inputs.items()},
                "modem_line_monthly": 31.0,
                "sunset_year": 3.0,
            },
        }
    )
    assert_same(found, expected(changed))
    assert found["npv"] != pytest.approx(run(inputs).npv)


def test_workbook_says_never_when_there_is_no_payback(tmp_path: Path) -> None:
    inputs = make_case("iou", endpoint_cost=20_000, modem_line_monthly=30)
    assert run(inputs).simple_payback_years is None
    found = Workbook(write_workbook(tmp_path, inputs)).summary()
    assert found["simple_payback_years"] == "never"
    assert found["npv"] == pytest.approx(run(inputs).npv)


def test_csv_has_one_row_per_year_with_the_model_figures() -> None:
    inputs = make_case("iou", sunset_share=0.5, sunset_year=4)
    result = run(inputs)
    rows = list(csv.DictReader(io.StringIO(cash_flow_csv(result).decode("utf-8"))))
    assert [int(r["year"]) for r in rows] == list(range(inputs.horizon_years + 1))
    for row, model_row in zip(rows, result.cash_flows, strict=True):
        for key in ("net", "cumulative", "discounted", "capex_sunset_replacement", "tax"):
            assert float(row[key]) == model_row[key]
    assert float(rows[4]["capex_sunset_replacement"]) > 0


@pytest.mark.parametrize("segment", ["iou", "service_bureau", "security"])
def test_pdf_carries_brands_figures_assumptions_and_method(segment: str) -> None:
    analysis = analyse(default_inputs(segment), draws=2_000)
    data = build_pdf(analysis, CONTEXT)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    flat = " ".join(text.split())
    assert CONTEXT.customer_name in flat
    assert "NorthGrid Supply" in flat
    assert "Wattline" in flat
    assert money(analysis.result.npv) in flat
    assert "25 November 2026" in flat
    assert "roi-1" in flat
    assert "Executive summary" in flat
    assert "Year by year" in flat
    assert "Methodology" in flat
    assert "(1 + r)^t" in flat
    # Every assumption's source is quoted (the first words of it, as lines wrap).
    for item in analysis.inputs.inputs.values():
        assert " ".join(item.source.split()[:3]) in flat
    # The charts are embedded images: cumulative, savings, tornado, Monte Carlo.
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 4
    if segment == "security":
        assert "Security and risk considerations" in flat
    if segment == "service_bureau":
        assert "Annual budget view" in flat


def test_pdf_uses_given_logos() -> None:
    from roi import charts

    logo = charts.savings_chart(run(default_inputs("security")))  # any PNG will do
    plain = build_pdf(analyse(default_inputs("security"), draws=1_000), CONTEXT)
    branded = build_pdf(
        analyse(default_inputs("security"), draws=1_000),
        ReportContext(
            customer_name=CONTEXT.customer_name,
            prepared_on=CONTEXT.prepared_on,
            distributor_name="NorthGrid Supply",
            vendor_logo=logo,
            distributor_logo=logo,
        ),
    )
    count = lambda data: sum(len(p.images) for p in PdfReader(io.BytesIO(data)).pages)  # noqa: E731
    assert count(branded) > count(plain)


def test_executive_summary_in_plain_words() -> None:
    inputs = make_case("iou", sunset_share=0.25, sunset_year=7)
    result = run(inputs)
    text = " ".join(executive_summary(inputs, result, CONTEXT))
    assert "pays for itself" in text
    assert money(result.npv) in text
    assert "25 %" in text
    assert "year 7" in text
    losing = make_case("iou", endpoint_cost=20_000)
    assert "does not pay for itself" in " ".join(executive_summary(losing, run(losing), CONTEXT))


def test_a_sunset_after_the_horizon_is_not_said_to_replace_anything() -> None:
    """The model counts no replacement after the period, and the summary must agree."""
    inputs = make_case("iou", sunset_share=0.3, sunset_year=12)
    result = run(inputs)
    assert result.horizon_years == 10
    assert all(row["capex"] == 0 for row in result.cash_flows[1:])
    text = " ".join(executive_summary(inputs, result, CONTEXT))
    assert "year 12, after this 10-year period, so no replacement is counted" in text
    assert "replaced then" not in text


@pytest.mark.parametrize(
    ("value", "text"),
    [(1234.4, "$1,234"), (-1234.6, "-$1,235"), (0.4, "$0"), (-0.4, "$0"), (None, "n/a")],
)
def test_money_format(value: float | None, text: str) -> None:
    assert money(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.04, "0.5 months"), (0.5, "6.0 months"), (2.7, "2.7 years"), (None, "not within 10 years")],
)
def test_payback_format(value: float | None, text: str) -> None:
    from roi.report import years

    assert years(value, 10) == text


def test_a_rate_of_return_past_100_percent_is_said_as_such() -> None:
    """The service bureau's only outlay is an onboarding fee: its IRR read "2502.6 %"."""
    from roi.report import rate_of_return

    inputs = default_inputs("service_bureau")
    result = run(inputs)
    assert result.irr is not None
    assert result.irr > 1
    assert rate_of_return(result.irr) == "over 100 %"
    assert "internal rate of return: over 100 %" in " ".join(
        executive_summary(inputs, result, CONTEXT)
    )
    assert rate_of_return(0.153) == "15.3 %"
    assert rate_of_return(None) == "n/a"
