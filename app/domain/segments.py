"""Segment views' economics: what each utility's wireless fleet displaces and saves (pure).

The portal's IOU, service-bureau and security pages show running figures for the meters
already migrated. The prices are the ROI model's documented defaults (`roi.inputs`), so a
page and a customer's ROI report never disagree about what a phone line or an escort costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from app.domain.access import Role
from roi.inputs import default_inputs

# Dial-up reads fail on busy lines, noise and modem faults. No survey figure exists; this
# is a stated assumption shown on the page next to the measured wireless rate.
MODEM_READ_SUCCESS: Final = 0.90
MODEM_READ_SUCCESS_SOURCE: Final = (
    "Assumption: first-attempt success of scheduled dial-up modem reads; "
    "replace with the utility's own figure."
)
# A walking reader visits each meter once a month in a secured building.
READS_PER_METER_PER_YEAR: Final = 12
DAYS_PER_MONTH: Final = 365.25 / 12
INTERVAL: Final = timedelta(minutes=15)
# The longest an interval waits for its meter's call: a daily meter calls once between
# 00:15 and 04:00 local time with everything since its last call (docs/protocol.md), so
# the first interval of a day can wait 28 hours without a read having failed.
CALL_LAG: Final = timedelta(hours=28)


_CHANNEL = frozenset(
    {Role.VENDOR_ADMIN, Role.VENDOR_SE, Role.DISTRIBUTOR_MANAGER, Role.DISTRIBUTOR_REP}
)
# Who may open each segment page; the tenant scope then limits the rows. A utility viewer
# is a service-bureau customer and a building manager a security customer: neither sees
# the channel's IOU page, nor the other's segment.
SEGMENT_ROLES: Final[dict[str, frozenset[Role]]] = {
    "iou": _CHANNEL,
    "service_bureau": _CHANNEL | {Role.UTILITY_VIEWER},
    "security": _CHANNEL | {Role.BUILDING_MANAGER},
}


def may_view_segment(role: Role, segment: str) -> bool:
    """Return True if a role may open a segment's page."""
    return role in SEGMENT_ROLES.get(segment, frozenset())


@dataclass(frozen=True, slots=True)
class Prices:
    """Unit costs the segment views use, with the ROI defaults as their source."""

    modem_line_monthly: float
    subscription_monthly: float
    owned_software_annual: float
    owned_staff_fte: float
    staff_cost_annual: float
    reader_hours_per_visit: float
    reader_hourly_rate: float
    escort_hours_per_visit: float
    escort_hourly_rate: float
    access_processing_cost: float

    @classmethod
    def from_roi_defaults(cls) -> Prices:
        """Read the unit costs from the ROI model's per-segment defaults."""
        iou = default_inputs("iou")
        bureau = default_inputs("service_bureau")
        security = default_inputs("security")
        return cls(
            modem_line_monthly=iou.value("modem_line_monthly"),
            subscription_monthly=bureau.value("subscription_monthly"),
            owned_software_annual=bureau.value("owned_software_annual"),
            owned_staff_fte=bureau.value("owned_staff_fte"),
            staff_cost_annual=bureau.value("staff_cost_annual"),
            reader_hours_per_visit=security.value("reader_hours_per_visit"),
            reader_hourly_rate=security.value("reader_hourly_rate"),
            escort_hours_per_visit=security.value("escort_hours_per_visit"),
            escort_hourly_rate=security.value("escort_hourly_rate"),
            access_processing_cost=security.value("access_processing_cost"),
        )


@dataclass(frozen=True, slots=True)
class UtilityActivity:
    """What the database knows about one utility's migrated fleet."""

    utility_id: str
    name: str
    segment: str
    distributor: str
    region: str
    c_and_i_customers: int
    modem_lines: int
    meters: int
    online: int
    offline: int
    # Intervals the meters read and delivered in the utility's latest simulated day (VEE
    # estimates are not reads), out of `intervals_due_last_day`.
    intervals_last_day: int
    # Intervals of that day the meters' call-in schedules should have delivered by now.
    intervals_due_last_day: int
    # Simulated days between the utility's first and latest stored interval.
    days_in_service: float
    security_events: int = 0

    @property
    def completeness(self) -> float | None:
        """Share of the last day's due intervals that were read (None with none due)."""
        return read_success(self.intervals_last_day, self.intervals_due_last_day)

    @property
    def months_in_service(self) -> float:
        """Months the migrated meters have been reporting."""
        return max(self.days_in_service, 0.0) / DAYS_PER_MONTH


@dataclass(frozen=True, slots=True)
class IouRow:
    """One investor-owned utility on the IOU page."""

    activity: UtilityActivity
    lines_displaced: int
    lines_in_service: int
    migrated_share: float
    wireless_read_success: float | None
    modem_read_success: float
    line_cost_avoided_monthly: float
    line_cost_avoided_to_date: float


@dataclass(frozen=True, slots=True)
class BureauRow:
    """One hosted municipal or co-op utility on the service-bureau page."""

    activity: UtilityActivity
    subscription_monthly: float
    subscription_annual: float
    self_run_annual: float
    saving_annual: float


@dataclass(frozen=True, slots=True)
class SecurityRow:
    """One secured building owner on the security page."""

    activity: UtilityActivity
    visits_avoided_per_year: int
    visits_avoided_to_date: float
    escort_hours_saved_per_year: float
    cost_avoided_per_year: float
    cost_per_visit: float


def read_success(reads: int, due: int) -> float | None:
    """Return the share of due intervals that were read (None when none were due)."""
    if due <= 0:
        return None
    return min(reads / due, 1.0)


def intervals_due(start: datetime, end: datetime, offline: bool, last: datetime | None) -> int:
    """Return how many intervals of [start, end) a meter should have delivered by `end`.

    A meter calling in on its schedule owes what it has called in for: the intervals after
    its newest wait for its next call (a daily meter's for up to a day), they are not failed
    reads. A meter that reports itself offline, or has not called in for longer than any
    schedule allows, owes the whole window.
    """
    if offline or last is None or last + INTERVAL < end - CALL_LAG:
        due_end = end
    else:
        due_end = min(end, last + INTERVAL)
    return max(0, (due_end - start) // INTERVAL)


def iou_row(activity: UtilityActivity, prices: Prices) -> IouRow:
    """Price the phone lines an IOU's wireless endpoints displace."""
    # Each wireless endpoint replaces one dedicated modem line (DOMAIN.md).
    displaced = min(activity.meters, activity.modem_lines)
    monthly = displaced * prices.modem_line_monthly
    return IouRow(
        activity=activity,
        lines_displaced=displaced,
        lines_in_service=max(activity.modem_lines - displaced, 0),
        migrated_share=displaced / activity.modem_lines if activity.modem_lines else 0.0,
        wireless_read_success=activity.completeness,
        modem_read_success=MODEM_READ_SUCCESS,
        line_cost_avoided_monthly=monthly,
        line_cost_avoided_to_date=monthly * activity.months_in_service,
    )


def bureau_row(activity: UtilityActivity, prices: Prices) -> BureauRow:
    """Compare a hosted utility's subscription with running the software itself."""
    monthly = activity.meters * prices.subscription_monthly
    self_run = prices.owned_software_annual + prices.owned_staff_fte * prices.staff_cost_annual
    return BureauRow(
        activity=activity,
        subscription_monthly=monthly,
        subscription_annual=monthly * 12,
        self_run_annual=self_run,
        saving_annual=self_run - monthly * 12,
    )


def security_row(activity: UtilityActivity, prices: Prices) -> SecurityRow:
    """Count the escorted meter-reader visits a secured site no longer needs."""
    per_visit = (
        prices.reader_hours_per_visit * prices.reader_hourly_rate
        + prices.escort_hours_per_visit * prices.escort_hourly_rate
        + prices.access_processing_cost
    )
    visits = activity.meters * READS_PER_METER_PER_YEAR
    return SecurityRow(
        activity=activity,
        visits_avoided_per_year=visits,
        visits_avoided_to_date=activity.meters * activity.months_in_service,
        escort_hours_saved_per_year=visits * prices.escort_hours_per_visit,
        cost_avoided_per_year=visits * per_visit,
        cost_per_visit=per_visit,
    )
