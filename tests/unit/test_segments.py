"""Segment views' economics and who may open which page (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.access import Role
from app.domain.segments import (
    MODEM_READ_SUCCESS,
    Prices,
    UtilityActivity,
    bureau_row,
    intervals_due,
    iou_row,
    may_view_segment,
    security_row,
)
from roi.inputs import default_inputs

PRICES = Prices(
    modem_line_monthly=40.0,
    subscription_monthly=3.0,
    owned_software_annual=20_000.0,
    owned_staff_fte=0.5,
    staff_cost_annual=100_000.0,
    reader_hours_per_visit=1.0,
    reader_hourly_rate=40.0,
    escort_hours_per_visit=1.5,
    escort_hourly_rate=60.0,
    access_processing_cost=25.0,
)


def make_activity(**overrides: object) -> UtilityActivity:
    """An activity record; keyword overrides change fields."""
    fields: dict[str, object] = {
        "utility_id": "u1",
        "name": "Utility One",
        "segment": "iou",
        "distributor": "NorthGrid",
        "region": "Midwest",
        "c_and_i_customers": 1000,
        "modem_lines": 500,
        "meters": 50,
        "online": 48,
        "offline": 2,
        "intervals_last_day": 50 * 96 - 240,
        "intervals_due_last_day": 50 * 96,
        "days_in_service": 365.25 / 12 * 3,
    }
    fields.update(overrides)
    return UtilityActivity(**fields)  # type: ignore[arg-type]


def test_iou_row_by_hand() -> None:
    """50 endpoints of 500 lines at $40: $2,000 a month, $6,000 over three months."""
    row = iou_row(make_activity(), PRICES)
    assert (row.lines_displaced, row.lines_in_service) == (50, 450)
    assert row.migrated_share == pytest.approx(0.10)
    assert row.wireless_read_success == pytest.approx(0.95)  # 4,560 of 4,800 intervals
    assert row.modem_read_success == MODEM_READ_SUCCESS
    assert row.line_cost_avoided_monthly == pytest.approx(2_000)
    assert row.line_cost_avoided_to_date == pytest.approx(6_000)


def test_iou_row_never_displaces_more_lines_than_exist() -> None:
    row = iou_row(make_activity(meters=80, modem_lines=60, intervals_last_day=0), PRICES)
    assert (row.lines_displaced, row.lines_in_service) == (60, 0)
    assert row.migrated_share == 1.0
    assert row.wireless_read_success == 0.0
    no_lines = iou_row(make_activity(modem_lines=0), PRICES)
    assert (no_lines.lines_displaced, no_lines.migrated_share) == (0, 0.0)


def test_completeness_is_capped_and_none_with_nothing_due() -> None:
    assert make_activity(intervals_last_day=10_000).completeness == 1.0
    assert make_activity(intervals_last_day=90, intervals_due_last_day=120).completeness == 0.75
    no_meters = make_activity(meters=0, intervals_last_day=0, intervals_due_last_day=0)
    assert no_meters.completeness is None


DAY_START = datetime(2026, 3, 2, 10, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


@pytest.mark.parametrize(
    ("offline", "last", "due"),
    [
        # A live meter called in for its newest interval: the whole window is due.
        (False, DAY_END - timedelta(minutes=15), 96),
        # An hourly meter's last call was 45 minutes ago: 3 quarters wait for the next one.
        (False, DAY_END - timedelta(minutes=60), 93),
        # A daily meter called in 20 hours ago: 80 intervals wait for tomorrow's call.
        (False, DAY_END - timedelta(hours=20, minutes=15), 16),
        # Nothing for 26 hours is still within a daily schedule: nothing of the day is owed.
        (False, DAY_END - timedelta(hours=26), 0),
        # Silent for longer than any schedule allows (28 h): the whole day is owed.
        (False, DAY_END - timedelta(hours=28, minutes=30), 96),
        (False, None, 96),
        # A meter that says it is offline owes the whole day whatever it sent last.
        (True, DAY_END - timedelta(hours=5), 96),
    ],
)
def test_intervals_due_follow_the_call_in_schedules(
    offline: bool, last: datetime | None, due: int
) -> None:
    assert intervals_due(DAY_START, DAY_END, offline, last) == due


def test_bureau_row_by_hand() -> None:
    """50 meters x $3 = $150/month, $1,800/yr vs $20,000 + 0.5 x $100,000 = $70,000/yr."""
    row = bureau_row(make_activity(segment="service_bureau"), PRICES)
    assert row.subscription_monthly == pytest.approx(150)
    assert row.subscription_annual == pytest.approx(1_800)
    assert row.self_run_annual == pytest.approx(70_000)
    assert row.saving_annual == pytest.approx(68_200)


def test_security_row_by_hand() -> None:
    """10 meters read monthly: 120 visits x (40 + 1.5 x 60 + 25 = $155) = $18,600 a year."""
    row = security_row(make_activity(segment="security", meters=10, days_in_service=0), PRICES)
    assert row.cost_per_visit == pytest.approx(155)
    assert row.visits_avoided_per_year == 120
    assert row.escort_hours_saved_per_year == pytest.approx(180)
    assert row.cost_avoided_per_year == pytest.approx(18_600)
    assert row.visits_avoided_to_date == 0


def test_prices_come_from_the_roi_defaults() -> None:
    prices = Prices.from_roi_defaults()
    assert prices.modem_line_monthly == default_inputs("iou").value("modem_line_monthly")
    assert prices.escort_hourly_rate == default_inputs("security").value("escort_hourly_rate")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VENDOR_ADMIN, {"iou", "service_bureau", "security"}),
        (Role.VENDOR_SE, {"iou", "service_bureau", "security"}),
        (Role.DISTRIBUTOR_MANAGER, {"iou", "service_bureau", "security"}),
        (Role.DISTRIBUTOR_REP, {"iou", "service_bureau", "security"}),
        (Role.UTILITY_VIEWER, {"service_bureau"}),
        (Role.BUILDING_MANAGER, {"security"}),
    ],
)
def test_segment_page_roles(role: Role, allowed: set[str]) -> None:
    for segment in ("iou", "service_bureau", "security", "unknown"):
        assert may_view_segment(role, segment) is (segment in allowed)
