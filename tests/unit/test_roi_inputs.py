"""ROI input documents: defaults with sources and ranges, validation naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from roi.inputs import SEGMENTS, RoiInputError, default_inputs, defaults, parse_inputs


@pytest.mark.parametrize("segment", SEGMENTS)
def test_defaults_are_complete_and_json_able(segment: str) -> None:
    doc = defaults(segment)
    assert doc["segment"] == segment
    assert json.loads(json.dumps(doc)) == doc
    assert doc["inputs"]
    for name, item in doc["inputs"].items():
        assert {"value", "unit", "source", "low", "high", "description"} <= item.keys(), name
        assert item["source"], name
        assert item["low"] <= item["value"] <= item["high"], name


@pytest.mark.parametrize("segment", SEGMENTS)
def test_defaults_document_round_trips(segment: str) -> None:
    assert parse_inputs(defaults(segment)) == default_inputs(segment)


def test_unpublished_figures_say_so() -> None:
    items = defaults("iou")["inputs"]
    assert "No published figure" in items["cost_per_read"]["source"]
    assert "No published figure" in items["modem_line_monthly"]["source"]
    assert (items["truck_roll_cost"]["low"], items["truck_roll_cost"]["high"]) == (250, 500)
    assert (items["cellular_monthly"]["low"], items["cellular_monthly"]["high"]) == (1.0, 3.0)


def test_bare_number_and_object_forms() -> None:
    parsed = parse_inputs(
        {
            "segment": "iou",
            "horizon_years": 15,
            "discount_rate": 0.06,
            "inputs": {
                "modem_line_monthly": 120,  # above the default high: range widens
                "truck_roll_cost": {"value": 400, "low": 300, "high": 450, "source": "WOs"},
                "modem_lines": 300,  # a count stays a point, no range
            },
        }
    )
    assert parsed.horizon_years == 15
    assert parsed.discount_rate == 0.06
    line = parsed.inputs["modem_line_monthly"]
    assert (line.value, line.low, line.high) == (120, 30, 120)
    roll = parsed.inputs["truck_roll_cost"]
    assert (roll.value, roll.low, roll.high, roll.source) == (400, 300, 450, "WOs")
    lines = parsed.inputs["modem_lines"]
    assert (lines.value, lines.low, lines.high) == (300, 300, 300)


def test_a_whole_number_input_given_only_a_range_or_a_source_keeps_its_default() -> None:
    # The catalogue's default of a count is an int: checking it must not need Python 3.12.
    ranged = parse_inputs({"segment": "iou", "inputs": {"endpoints": {"low": 400, "high": 600}}})
    assert (ranged.inputs["endpoints"].low, ranged.inputs["endpoints"].high) == (400, 600)
    sourced = parse_inputs(
        {"segment": "service_bureau", "inputs": {"meters": {"source": "asset list"}}}
    )
    assert sourced.inputs["meters"].source == "asset list"
    assert sourced.inputs["meters"].value == default_inputs("service_bureau").inputs["meters"].value


def test_missing_optional_fields_take_defaults() -> None:
    parsed = parse_inputs({"segment": "security"})
    assert parsed == default_inputs("security")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "segment"),
        ({"segment": "telco"}, "segment"),
        ({"segment": "iou", "colour": "red"}, "colour"),
        ({"segment": "iou", "horizon_years": 0}, "horizon_years"),
        ({"segment": "iou", "horizon_years": 31}, "horizon_years"),
        ({"segment": "iou", "horizon_years": 2.5}, "horizon_years"),
        ({"segment": "iou", "horizon_years": "10"}, "horizon_years"),
        ({"segment": "iou", "discount_rate": 5.0}, "discount_rate"),
        ({"segment": "iou", "discount_rate": -0.01}, "discount_rate"),
        ({"segment": "iou", "discount_rate": math.nan}, "discount_rate"),
        ({"segment": "iou", "horizon_years": 10**400}, "horizon_years"),  # float() overflows
        ({"segment": "iou", "inputs": {"endpoints": 10**400}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": []}, "inputs"),
        ({"segment": "iou", "inputs": {"endpoints": -1}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": {"endpoints": 10.5}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": {"endpoints": True}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": {"endpoints": "500"}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": {"endpoints": None}}, "inputs.endpoints"),
        ({"segment": "iou", "inputs": {"truck_roll_cost": math.inf}}, "inputs.truck_roll_cost"),
        ({"segment": "iou", "inputs": {"modem_lines": math.nan}}, "inputs.modem_lines"),
        ({"segment": "iou", "inputs": {"meters": 10}}, "inputs.meters"),
        ({"segment": "iou", "inputs": {"hosting_annual": 1e300}}, "inputs.hosting_annual"),
        ({"segment": "iou", "inputs": {"tax_rate": 1.5}}, "inputs.tax_rate"),
        ({"segment": "iou", "inputs": {"depreciation_years": 0}}, "inputs.depreciation_years"),
        ({"segment": "iou", "inputs": {"sunset_share": 1.2}}, "inputs.sunset_share"),
        (
            {"segment": "iou", "inputs": {"modem_lines": {"value": -3}}},
            "inputs.modem_lines.value",
        ),
        (
            {"segment": "iou", "inputs": {"cost_per_read": {"value": 10, "low": 12}}},
            "inputs.cost_per_read.low",
        ),
        (
            {"segment": "iou", "inputs": {"cost_per_read": {"value": 10, "high": 8}}},
            "inputs.cost_per_read.high",
        ),
        (
            {"segment": "iou", "inputs": {"cost_per_read": {"value": 10, "colour": 1}}},
            "inputs.cost_per_read.colour",
        ),
        (
            {"segment": "iou", "inputs": {"modem_line_monthly": {"value": 600, "unit": "$/yr"}}},
            "inputs.modem_line_monthly.unit",
        ),
        (
            {"segment": "service_bureau", "inputs": {"subscription_monthly": {"value": "x"}}},
            "inputs.subscription_monthly.value",
        ),
    ],
)
def test_invalid_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(RoiInputError) as caught:
        parse_inputs(document)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_not_an_object() -> None:
    with pytest.raises(RoiInputError, match="document"):
        parse_inputs([1, 2])


def test_with_values_rejects_unknown_names() -> None:
    with pytest.raises(RoiInputError, match=r"inputs\.nope"):
        default_inputs("iou").with_values(nope=1.0)


@pytest.mark.parametrize(
    ("segment", "inputs", "field", "message"),
    [
        ("iou", {"endpoints": 0}, "inputs.endpoints", "at least 1"),
        ("security", {"endpoints": 0}, "inputs.endpoints", "at least 1"),
        ("service_bureau", {"meters": 0}, "inputs.meters", "at least 1"),
        ("iou", {"endpoints": 10, "modem_lines": 450}, "inputs.modem_lines", "10 endpoints"),
        ("service_bureau", {"meters": 99}, "inputs.modem_lines", "99 meters"),
    ],
)
def test_a_model_that_saves_lines_without_endpoints_is_refused(
    segment: str, inputs: dict[str, int], field: str, message: str
) -> None:
    """0 endpoints still saved 450 modem lines (an NPV of $2.6 M for buying nothing)."""
    with pytest.raises(RoiInputError) as caught:
        parse_inputs({"segment": segment, "inputs": inputs})
    assert caught.value.field == field
    assert message in caught.value.problem
