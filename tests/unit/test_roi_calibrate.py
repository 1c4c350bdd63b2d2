"""Calibration from a fleet profile and the version diff (pure)."""

from __future__ import annotations

import pytest

from roi.calibrate import FleetProfile, calibrated_document
from roi.inputs import defaults, parse_inputs
from roi.scenarios import document_changes


def make_profile(**overrides: object) -> FleetProfile:
    """A mid-size IOU profile; keyword overrides change fields."""
    fields: dict[str, object] = {
        "utility_id": "u1",
        "utility_name": "Example Power",
        "segment": "iou",
        "c_and_i_customers": 1_000,
        "modem_lines": 400,
        "meters": 50,
        "meters_by_network": {"lte": 40, "3g": 10},
        "read_success": 0.95,
    }
    fields.update(overrides)
    return FleetProfile(**fields)  # type: ignore[arg-type]


def test_iou_profile_fills_counts_reads_and_sunset_exposure() -> None:
    doc = calibrated_document(make_profile())
    inputs = doc["inputs"]
    assert inputs["endpoints"]["value"] == 1_000
    assert inputs["modem_lines"]["value"] == 400
    assert inputs["manual_reads_per_year"]["value"] == 600 * 12
    # 5 % of 12,000 billing reads fail: 600 re-reads, half of them estimated bills.
    assert inputs["re_reads_per_year"]["value"] == 600
    assert inputs["estimated_bills_per_year"]["value"] == 300
    assert inputs["sunset_share"]["value"] == pytest.approx(0.2)
    assert "3G" in inputs["sunset_share"]["source"]
    assert "Fleet" in inputs["re_reads_per_year"]["source"]
    # Prices are untouched defaults, and the document is complete and valid.
    assert inputs["endpoint_cost"] == defaults("iou")["inputs"]["endpoint_cost"]
    assert parse_inputs(doc).to_dict() == doc


def test_service_bureau_and_security_profiles() -> None:
    bureau = calibrated_document(
        make_profile(segment="service_bureau", c_and_i_customers=640, modem_lines=85)
    )["inputs"]
    assert bureau["meters"]["value"] == 640
    assert "endpoints" not in bureau
    security = calibrated_document(
        make_profile(segment="security", c_and_i_customers=0, modem_lines=24, meters=3)
    )["inputs"]
    assert security["endpoints"]["value"] == 3
    assert security["site_visits_per_year"]["value"] == 36


def test_unknown_read_success_keeps_the_defaults() -> None:
    inputs = calibrated_document(make_profile(read_success=None))["inputs"]
    assert inputs["re_reads_per_year"] == defaults("iou")["inputs"]["re_reads_per_year"]


def test_document_changes_lists_each_changed_field() -> None:
    before = defaults("iou")
    after = parse_inputs(
        {**before, "discount_rate": 0.1, "inputs": {**before["inputs"], "truck_roll_cost": 600}}
    ).to_dict()
    assert document_changes(None, after) == []
    assert document_changes(before, before) == []
    assert document_changes(before, after) == [
        {"field": "discount_rate", "from": 0.08, "to": 0.1},
        {"field": "inputs.truck_roll_cost.value", "from": 375, "to": 600.0},
        {"field": "inputs.truck_roll_cost.high", "from": 500, "to": 600.0},
    ]
