"""Alarm rules: which meter conditions raise an alarm, their stable keys, and who may ack (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from app.domain.access import Role
from app.domain.numbers import MAX_ID, whole_number

# Event types that raise an alarm, and the alarm kind each raises.
EVENT_ALARMS: Final[dict[str, str]] = {
    "power_outage": "outage",
    "tamper": "tamper",
    "reverse_rotation": "tamper",
    "comms_failure": "comms_loss",
}
KIND_LABELS: Final[dict[str, str]] = {
    "outage": "Power outage",
    "tamper": "Tamper",
    "low_pf": "Low power factor",
    "comms_loss": "Comms loss",
}
# Tariff penalties typically start below 0.90 (DOMAIN.md).
LOW_PF_THRESHOLD: Final = 0.90
# A low power factor persists for days and is raised again each day of data: acknowledging
# it silences the meter's low-PF alarm for a week of data (at demo speed a day passes in a
# minute and a half, and the acknowledgement vanished with it).
LOW_PF_ACK_DAYS: Final = 7
# Operators and the customer's own staff acknowledge; a distributor rep sells, and only sees.
ACK_ROLES: Final = frozenset(
    {
        Role.VENDOR_ADMIN,
        Role.VENDOR_SE,
        Role.DISTRIBUTOR_MANAGER,
        Role.UTILITY_VIEWER,
        Role.BUILDING_MANAGER,
    }
)


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm as the portal lists it."""

    key: str
    kind: str
    severity: str
    meter_id: str
    site_name: str
    utility: str
    raised_at: datetime
    summary: str
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def label(self) -> str:
        """Return the kind's display name."""
        return KIND_LABELS[self.kind]


def may_acknowledge(role: Role) -> bool:
    """Return True if a role may acknowledge alarms (within its tenants)."""
    return role in ACK_ROLES


def power_factor(kwh: float, kvarh: float) -> float | None:
    """Return the displacement power factor of energy totals (None when there is no energy)."""
    apparent = math.hypot(kwh, kvarh)
    return kwh / apparent if apparent > 0 else None


def event_key(event_row_id: int) -> str:
    """Key of the alarm raised by a stored event."""
    return f"event:{event_row_id}"


def comms_key(meter_id: str, since: datetime) -> str:
    """Key of a comms-loss alarm: one per meter per offline spell."""
    return f"comms:{meter_id}:{int(since.timestamp())}"


def low_pf_key(meter_id: str, day_end: datetime) -> str:
    """Key of a low-PF alarm: one per meter per day of data."""
    return f"lowpf:{meter_id}:{day_end:%Y%m%d}"


def low_pf_day(key: str) -> date | None:
    """Return the day of data a low-PF key names (None for any other key)."""
    prefix, _, rest = key.partition(":")
    stamp = rest.rpartition(":")[2]
    if prefix != "lowpf" or len(stamp) != 8 or not stamp.isascii() or not stamp.isdigit():
        return None
    try:
        return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
    except ValueError:
        return None


def carries_ack(alarm_key: str, acked_key: str) -> bool:
    """Say whether an acknowledged low-PF alarm still silences a later one of the meter."""
    day, acked = low_pf_day(alarm_key), low_pf_day(acked_key)
    if day is None or acked is None:
        return False
    same_meter = alarm_key.rpartition(":")[0] == acked_key.rpartition(":")[0]
    return same_meter and 0 <= (day - acked).days <= LOW_PF_ACK_DAYS


def parse_key(key: str) -> tuple[str, str]:
    """Split an alarm key into its kind prefix and subject, refusing anything malformed."""
    prefix, sep, rest = key.partition(":")
    if not sep or prefix not in {"event", "comms", "lowpf"} or not rest or len(key) > 160:
        raise ValueError(f"not an alarm key: {key!r}")
    if prefix == "event":
        number = whole_number(rest)
        # An event id is a 32-bit INTEGER column: PostgreSQL raises on a larger one.
        if number is None or not 1 <= number <= MAX_ID:
            raise ValueError(f"not an alarm key: {key!r}")
    if prefix != "event":
        meter_id, sep, stamp = rest.rpartition(":")
        if not sep or not meter_id or whole_number(stamp) is None:
            raise ValueError(f"not an alarm key: {key!r}")
        return prefix, meter_id
    return prefix, rest
