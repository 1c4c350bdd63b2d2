"""Typed, validated ROI inputs: every default carries its unit, source and low/high range.

The JSON input document (``GET /api/v1/roi/defaults`` returns one, ``POST /api/v1/roi``
accepts one, edited or not)::

    {
      "segment": "iou" | "service_bureau" | "security",     # required
      "horizon_years": 10,          # optional, whole years 1..30
      "discount_rate": 0.08,        # optional, a fraction in [0, 1] (0.08 is 8 %)
      "model_version": "...",       # optional, informational (echoed by defaults())
      "inputs": {                   # optional; any input left out keeps its default
        "modem_line_monthly": 55,                       # a bare number sets the value
        "truck_roll_cost": {"value": 400, "low": 300, "high": 500,
                            "source": "customer's 2024 work orders"}
      }
    }

An input given as an object may set ``value``, ``low``, ``high`` and ``source``; the
read-only keys that ``defaults()`` emits (``unit``, ``description``, ``min``, ``max``,
``integer``) are accepted so a defaults document round-trips, but a ``unit`` that differs
from the model's unit is refused (a yearly figure sent where a monthly one is expected
is exactly the mistake it catches). When a new value falls outside the default range and
no range is given, the range is widened to include it; an explicit range must satisfy
low <= value <= high. Every error is a ``RoiInputError`` whose ``field`` is the dotted
path of the offending field, e.g. ``inputs.modem_lines.value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

Segment = Literal["iou", "service_bureau", "security"]
SEGMENTS: Final[tuple[Segment, ...]] = ("iou", "service_bureau", "security")
MODEL_VERSION: Final = "roi-1"

MAX_HORIZON_YEARS: Final = 30
DEFAULT_HORIZON_YEARS: Final = 10
# No real input comes near this; refusing larger values keeps the arithmetic finite.
MAX_MAGNITUDE: Final = 1e12
DEFAULT_DISCOUNT_RATE: Final = 0.08
DISCOUNT_RATE_SOURCE: Final = (
    "8 % is a common utility hurdle rate / weighted average cost of capital; "
    "use the customer's own rate (typically 5-10 %)."
)

# discount_rate_source and model_version are informational: accepted so defaults round-trip.
_TOP_LEVEL_KEYS: Final = frozenset(
    {"segment", "horizon_years", "discount_rate", "discount_rate_source", "model_version", "inputs"}
)
_EDITABLE_KEYS: Final = frozenset({"value", "low", "high", "source"})
_READ_ONLY_KEYS: Final = frozenset({"unit", "description", "min", "max", "integer"})


class RoiInputError(ValueError):
    """Reject an ROI input document; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Input:
    """One model input: its value, unit, where the default comes from and its plausible range."""

    name: str
    value: float
    unit: str
    source: str
    low: float
    high: float
    description: str
    minimum: float = 0.0
    maximum: float | None = None
    integer: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form used in input documents."""
        return {
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "low": self.low,
            "high": self.high,
            "description": self.description,
            "min": self.minimum,
            "max": self.maximum,
            "integer": self.integer,
        }


@dataclass(frozen=True)
class RoiInputs:
    """A validated input set for one segment model."""

    segment: Segment
    horizon_years: int
    discount_rate: float
    inputs: Mapping[str, Input]

    def value(self, name: str) -> float:
        """Return one input's value."""
        return self.inputs[name].value

    def values(self) -> dict[str, float]:
        """Return every input's value by name."""
        return {name: item.value for name, item in self.inputs.items()}

    def with_values(self, **values: float) -> RoiInputs:
        """Return a copy with some values replaced (ranges widened to include them)."""
        updated = dict(self.inputs)
        for name, new in values.items():
            if name not in updated:
                raise RoiInputError(f"inputs.{name}", "unknown input")
            updated[name] = _moved(updated[name], new)
        return replace(self, inputs=updated)

    def to_dict(self) -> dict[str, Any]:
        """Return the complete JSON-able input document."""
        return {
            "segment": self.segment,
            "horizon_years": self.horizon_years,
            "discount_rate": self.discount_rate,
            "discount_rate_source": DISCOUNT_RATE_SOURCE,
            "model_version": MODEL_VERSION,
            "inputs": {name: item.to_dict() for name, item in self.inputs.items()},
        }


# --- Default catalogue -------------------------------------------------------------------

_CUSTOMER = "Customer data gathered by the distributor; the default is an illustrative size."
_NO_PUBLISHED = "No published figure exists; "


def _i(
    name: str,
    value: float,
    unit: str,
    low: float,
    high: float,
    source: str,
    description: str,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    integer: bool = False,
) -> Input:
    return Input(name, value, unit, source, low, high, description, minimum, maximum, integer)


def _count(name: str, value: float, description: str, *, minimum: float = 0.0) -> Input:
    # Counts are the customer's own figures: no range unless the user gives one.
    return _i(
        name, value, "count", value, value, _CUSTOMER, description, minimum=minimum, integer=True
    )


def _count_per_year(name: str, value: float, description: str) -> Input:
    return _i(name, value, "count/yr", value, value, _CUSTOMER, description)


_ENDPOINT_COST_SOURCE: Final = (
    "Domain brief: cellular C&I endpoints cost in the low thousands of dollars per site "
    "installed; split here into hardware and installation. Use the quoted price."
)


def _capex_opex(
    *, endpoints: float, installation: float, integration: float, hosting: float
) -> list[Input]:
    return [
        # With no endpoint there is no project: 0 made a model saving lines for free.
        _count("endpoints", endpoints, "Meters fitted with a wireless endpoint.", minimum=1),
        _i(
            "endpoint_cost",
            1_200,
            "$/endpoint",
            800,
            2_000,
            _ENDPOINT_COST_SOURCE,
            "Endpoint hardware price per meter.",
        ),
        _i(
            "installation_cost",
            installation,
            "$/endpoint",
            installation * 2 / 3,
            installation * 5 / 3,
            _ENDPOINT_COST_SOURCE,
            "Field installation per meter (crew time, antenna where needed).",
        ),
        _i(
            "integration_cost",
            integration,
            "$",
            integration / 2,
            integration * 2,
            "Vendor estimate for head-end / meter-data software integration; no published "
            "figure. Range covers a standard connector to a custom project.",
            "One-off integration with the utility's systems, in year 0.",
        ),
        _i(
            "cellular_monthly",
            2.0,
            "$/endpoint/month",
            1.0,
            3.0,
            "Domain brief: ~$1-2 per SIM per month plus data; C&I interval data is a few "
            "MB a month, so the high end allows for data charges.",
            "Cellular plan per endpoint.",
        ),
        _i(
            "hosting_annual",
            hosting,
            "$/yr",
            hosting / 2,
            hosting * 2,
            "Vendor estimate for head-end hosting and support; no published figure.",
            "Head-end hosting and software support per year.",
        ),
        _i(
            "endpoint_maintenance_annual",
            25,
            "$/endpoint/yr",
            10,
            50,
            "Vendor estimate: spares, failed-unit swaps and firmware management.",
            "Endpoint maintenance per endpoint per year.",
        ),
    ]


def _read_costs(*, cost_per_read: float, miles: float, miles_unit: str, per: str) -> list[Input]:
    return [
        _i(
            "cost_per_read",
            cost_per_read,
            "$/read",
            cost_per_read / 2,
            cost_per_read * 2.5,
            _NO_PUBLISHED + "reasoned from route scheduling, handheld and data-entry and "
            "exception handling per read. Reader labour and mileage are separate inputs, "
            "so they are not counted here.",
            "Back-office handling per manual read or re-read (excluding labour and mileage).",
        ),
        _i(
            "reader_hourly_rate",
            40,
            "$/h",
            30,
            60,
            "US BLS occupational wage data puts meter readers' median wage in the low $20s "
            "an hour; loaded with benefits and overhead (x1.4-1.8) that is $30-60.",
            "Loaded hourly cost of a meter reader.",
        ),
        _i(
            "miles_per_read" if per == "read" else "miles_per_visit",
            miles,
            miles_unit,
            miles / 3,
            miles * 8 / 3,
            "Reasoned: C&I meters are scattered, so a read is often a dedicated trip; "
            "use the utility's route data.",
            f"Vehicle miles per {per}.",
        ),
        _i(
            "mileage_rate",
            0.70,
            "$/mile",
            0.50,
            0.90,
            "IRS standard business mileage rate (70 cents a mile for 2025); fleet "
            "vehicles' true cost varies around it.",
            "Vehicle cost per mile.",
        ),
    ]


def _standard_avoided(
    *,
    modem_lines: float,
    manual_reads: float,
    re_reads: float,
    estimated_bills: float,
    truck_rolls: float,
) -> list[Input]:
    return [
        _count("modem_lines", modem_lines, "Telephone-modem lines displaced by endpoints."),
        _i(
            "modem_line_monthly",
            50,
            "$/line/month",
            30,
            100,
            _NO_PUBLISHED + "for a meter phone line. Business analogue (POTS) lines "
            "typically cost tens of dollars a month and rise as carriers retire copper; "
            "replace with the customer's telecom bill.",
            "Monthly charge per telephone-modem line.",
        ),
        _i(
            "modem_maintenance_annual",
            60,
            "$/line/yr",
            20,
            150,
            _NO_PUBLISHED + "reasoned from modem replacements and line troubleshooting "
            "visits spread over the fleet.",
            "Modem and line maintenance per line per year.",
        ),
        _count_per_year("manual_reads_per_year", manual_reads, "Scheduled manual reads a year."),
        _count_per_year(
            "re_reads_per_year", re_reads, "Re-reads a year (failed calls, disputed reads)."
        ),
        _i(
            "reader_hours_per_read",
            0.75,
            "h/read",
            0.5,
            1.5,
            "Reasoned: travel between scattered C&I sites plus on-site access and read.",
            "Reader time per manual read or re-read, including travel.",
        ),
        *_read_costs(cost_per_read=10, miles=15, miles_unit="mile/read", per="read"),
        _count_per_year(
            "estimated_bills_per_year", estimated_bills, "Bills issued on estimated reads."
        ),
        _i(
            "estimated_bill_cost",
            15,
            "$/bill",
            5,
            40,
            _NO_PUBLISHED + "reasoned from exception handling, customer calls and "
            "rebilling when the actual read arrives.",
            "Cost of handling one estimated bill.",
        ),
        _count_per_year("truck_rolls_per_year", truck_rolls, "Field visits for meter comms."),
        _i(
            "truck_roll_cost",
            375,
            "$/roll",
            250,
            500,
            "Domain brief: $250-500 per truck roll is a commonly quoted range.",
            "Cost of one truck roll.",
        ),
    ]


def _escalation(*, costs: bool = True) -> list[Input]:
    items = [
        _i(
            "avoided_escalation",
            0.03,
            "fraction/yr",
            0.01,
            0.06,
            "Reasoned: labour and telephone-line prices tend to rise at or above general "
            "inflation (~2-3 %/yr).",
            "Yearly escalation of avoided costs (year 1 is unescalated).",
            maximum=1.0,
        )
    ]
    if costs:
        items.insert(
            0,
            _i(
                "cost_escalation",
                0.03,
                "fraction/yr",
                0.0,
                0.05,
                "Reasoned: general inflation (~2-3 %/yr); data-plan prices have been flat.",
                "Yearly escalation of running costs (year 1 is unescalated).",
                maximum=1.0,
            ),
        )
    return items


_IOU: Final[tuple[Input, ...]] = (
    *_capex_opex(endpoints=500, installation=600, integration=50_000, hosting=12_000),
    *_standard_avoided(
        modem_lines=450, manual_reads=600, re_reads=240, estimated_bills=300, truck_rolls=40
    ),
    *_escalation(),
    _i(
        "tax_rate",
        0.25,
        "fraction",
        0.21,
        0.30,
        "US federal corporate rate 21 % plus state income tax.",
        "Combined income-tax rate for the after-tax view.",
        maximum=1.0,
    ),
    _i(
        "depreciation_years",
        10,
        "yr",
        7,
        15,
        "Reasoned: metering communications equipment is typically depreciated over "
        "7-15 years; use the utility's book life.",
        "Straight-line depreciation life of capex.",
        minimum=1,
        maximum=50,
    ),
    _i(
        "sunset_share",
        0.0,
        "fraction",
        0.0,
        0.5,
        "No shutdown is announced for the LTE networks endpoints use today, so the base "
        "is 0; the high end reflects 2G/3G shutdowns that stranded real meter fleets.",
        "Share of endpoints on a network that shuts down within the horizon.",
        maximum=1.0,
    ),
    _i(
        "sunset_year",
        8,
        "yr",
        6,
        12,
        "Reasoned from 2G/3G networks' commercial lives; check the carrier's roadmap.",
        "Year the network shuts down; affected endpoints are replaced that year.",
        minimum=1,
        maximum=MAX_HORIZON_YEARS,
        integer=True,
    ),
)

_SERVICE_BUREAU: Final[tuple[Input, ...]] = (
    _count("meters", 150, "Meters on the hosted service.", minimum=1),
    _i(
        "subscription_monthly",
        12,
        "$/meter/month",
        8,
        18,
        "Placeholder for the distributor's per-meter price (endpoint, network, hosting "
        "and software included); use the quoted price.",
        "Service-bureau subscription per meter per month.",
    ),
    _i(
        "onboarding_fee",
        5_000,
        "$",
        0,
        15_000,
        "Placeholder for the distributor's one-off set-up fee, paid in year 0.",
        "One-off onboarding fee (operating expense, not capex).",
    ),
    *_standard_avoided(
        modem_lines=100, manual_reads=600, re_reads=60, estimated_bills=100, truck_rolls=12
    ),
    _i(
        "owned_software_annual",
        20_000,
        "$/yr",
        8_000,
        40_000,
        "Vendor estimate for licensing and hosting the dial-up head-end and meter-data "
        "software a utility reading C&I meters by modem runs itself; 0 if it has none.",
        "Yearly cost of the reading and meter-data software the utility runs itself today, "
        "which the hosted service replaces.",
    ),
    _i(
        "owned_staff_fte",
        0.25,
        "FTE",
        0.1,
        0.5,
        "Reasoned: part of an IT/metering person runs a small utility's own reading "
        "system (the nightly dial-up, failed reads, billing exports); 0 if nobody does.",
        "Staff time spent today running the utility's own reading system, which the hosted "
        "service takes over.",
    ),
    _i(
        "staff_cost_annual",
        85_000,
        "$/FTE/yr",
        65_000,
        110_000,
        "Reasoned: loaded cost of a utility IT/metering technician.",
        "Loaded yearly cost of one full-time staff member.",
    ),
    *_escalation(),
)

_SECURITY: Final[tuple[Input, ...]] = (
    *_capex_opex(endpoints=20, installation=900, integration=10_000, hosting=3_000),
    _count_per_year(
        "site_visits_per_year", 240, "Meter-reading visits inside secured buildings a year."
    ),
    _i(
        "reader_hours_per_visit",
        1.0,
        "h/visit",
        0.5,
        2.0,
        "Reasoned: screening, escorted walk to the meter room and the read itself.",
        "Reader time per visit inside the secured site.",
    ),
    _i(
        "escort_hours_per_visit",
        1.0,
        "h/visit",
        0.5,
        2.0,
        "Reasoned: an escort accompanies the reader for the whole visit.",
        "Escort time per visit.",
    ),
    _i(
        "escort_hourly_rate",
        60,
        "$/h",
        45,
        90,
        "Reasoned: loaded cost of a contract security officer or cleared staff escort.",
        "Loaded hourly cost of an escort.",
    ),
    _i(
        "access_processing_cost",
        25,
        "$/visit",
        10,
        75,
        _NO_PUBLISHED + "reasoned from visitor badge issuance, access-request review "
        "and logging per visit.",
        "Badge and access processing per visit.",
    ),
    *_read_costs(cost_per_read=10, miles=20, miles_unit="mile/visit", per="visit"),
    *_escalation(),
)

_CATALOGUE: Final[dict[Segment, tuple[Input, ...]]] = {
    "iou": _IOU,
    "service_bureau": _SERVICE_BUREAU,
    "security": _SECURITY,
}


def default_inputs(segment: str) -> RoiInputs:
    """Return the default, validated input set for a segment."""
    seg = _segment(segment)
    return RoiInputs(
        seg,
        DEFAULT_HORIZON_YEARS,
        DEFAULT_DISCOUNT_RATE,
        {item.name: item for item in _CATALOGUE[seg]},
    )


def defaults(segment: str) -> dict[str, Any]:
    """Return the complete JSON-able default input document for a segment."""
    return default_inputs(segment).to_dict()


# --- Parsing -----------------------------------------------------------------------------


def _segment(raw: object) -> Segment:
    if not isinstance(raw, str) or raw not in SEGMENTS:
        raise RoiInputError("segment", f"must be one of {', '.join(SEGMENTS)}; got {raw!r}")
    return raw


def finite_number(field: str, raw: object) -> float:
    """Read a JSON number that must be finite (not bool, NaN, infinity or too big for a float)."""
    # bool is an int subclass, and True as "1 endpoint" is never what a caller meant.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise RoiInputError(field, f"must be a number, got {type(raw).__name__}")
    try:
        value = float(raw)
    except OverflowError:  # a JSON integer of hundreds of digits
        value = math.inf
    if not math.isfinite(value):
        raise RoiInputError(field, "must be a finite number (no NaN or infinity)")
    return value


def _horizon(raw: object) -> int:
    value = finite_number("horizon_years", raw)
    if not value.is_integer():
        raise RoiInputError("horizon_years", f"must be a whole number of years, got {value}")
    if not 1 <= value <= MAX_HORIZON_YEARS:
        raise RoiInputError(
            "horizon_years", f"must be between 1 and {MAX_HORIZON_YEARS} years, got {value:g}"
        )
    return int(value)


def _discount_rate(raw: object) -> float:
    value = finite_number("discount_rate", raw)
    if not 0.0 <= value <= 1.0:
        raise RoiInputError(
            "discount_rate", f"must be a fraction between 0 and 1 (0.08 is 8 %), got {value:g}"
        )
    return value


def _check_bounds(field: str, spec: Input, value: float) -> None:
    if value < spec.minimum:
        raise RoiInputError(field, f"must be at least {spec.minimum:g}, got {value:g}")
    if value > MAX_MAGNITUDE:
        raise RoiInputError(field, f"must be at most {MAX_MAGNITUDE:g}, got {value:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise RoiInputError(field, f"must be at most {spec.maximum:g}, got {value:g}")
    # float(): a catalogue default may be an int, and int.is_integer needs Python 3.12.
    if spec.integer and not float(value).is_integer():
        raise RoiInputError(field, f"must be a whole number, got {value:g}")


def _moved(spec: Input, value: float) -> Input:
    """Return spec with a new value; a point input stays a point, a range widens to fit."""
    if spec.low == spec.high:
        return replace(spec, value=value, low=value, high=value)
    return replace(spec, value=value, low=min(spec.low, value), high=max(spec.high, value))


def _parse_input(spec: Input, raw: object) -> Input:
    base = f"inputs.{spec.name}"
    if not isinstance(raw, Mapping):
        value = finite_number(base, raw)
        _check_bounds(base, spec, value)
        return _moved(spec, value)

    for key in raw:
        if key not in _EDITABLE_KEYS | _READ_ONLY_KEYS:
            raise RoiInputError(f"{base}.{key}", "unknown key")
    if "unit" in raw and raw["unit"] != spec.unit:
        raise RoiInputError(f"{base}.unit", f"must be {spec.unit!r}, got {raw['unit']!r}")
    source = raw.get("source", spec.source)
    if not isinstance(source, str):
        raise RoiInputError(f"{base}.source", "must be a string")

    value = finite_number(f"{base}.value", raw["value"]) if "value" in raw else spec.value
    _check_bounds(f"{base}.value", spec, value)
    has_range = "low" in raw or "high" in raw
    low = finite_number(f"{base}.low", raw["low"]) if "low" in raw else spec.low
    high = finite_number(f"{base}.high", raw["high"]) if "high" in raw else spec.high
    if not has_range:
        low, high = _moved(spec, value).low, _moved(spec, value).high
    _check_bounds(f"{base}.low", spec, low)
    _check_bounds(f"{base}.high", spec, high)
    if low > value:
        raise RoiInputError(f"{base}.low", f"must not exceed the value {value:g}, got {low:g}")
    if high < value:
        raise RoiInputError(f"{base}.high", f"must not be below the value {value:g}, got {high:g}")
    return replace(spec, value=value, low=low, high=high, source=source)


def parse_inputs(document: object) -> RoiInputs:
    """Build a validated input set from a JSON input document (see the module docstring)."""
    if not isinstance(document, Mapping):
        raise RoiInputError("document", "must be a JSON object")
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            raise RoiInputError(str(key), "unknown field")
    if "segment" not in document:
        raise RoiInputError("segment", "is required")
    result = default_inputs(_segment(document["segment"]))
    horizon = _horizon(document.get("horizon_years", result.horizon_years))
    rate = _discount_rate(document.get("discount_rate", result.discount_rate))

    raw_inputs = document.get("inputs", {})
    if not isinstance(raw_inputs, Mapping):
        raise RoiInputError("inputs", "must be an object of name: value")
    parsed = dict(result.inputs)
    for name, raw in raw_inputs.items():
        if name not in parsed:
            raise RoiInputError(f"inputs.{name}", f"unknown input for segment {result.segment}")
        parsed[name] = _parse_input(parsed[name], raw)
    _check_lines(parsed)
    return RoiInputs(result.segment, horizon, rate, parsed)


def _check_lines(parsed: Mapping[str, Input]) -> None:
    # Each wireless endpoint displaces one modem line (DOMAIN.md), as the segment pages
    # count them: more lines than endpoints would be savings without hardware. (A range
    # may overlap; the model caps each draw's lines at its endpoints.)
    lines = parsed.get("modem_lines")
    fitted = parsed.get("endpoints") or parsed.get("meters")
    if lines is None or fitted is None:
        return
    if lines.value > fitted.value:
        raise RoiInputError(
            "inputs.modem_lines",
            f"must not exceed the {fitted.value:g} {fitted.name}: each endpoint displaces "
            f"one line, got {lines.value:g}",
        )
