"""Prefill an ROI input document from what the fleet knows about a utility (pure).

The portal gathers a ``FleetProfile`` from the database (tenant-scoped) and this module
turns it into inputs, each with a source that says where the number came from:

* counts from the utility's profile: C&I customers and telephone-modem lines;
* the fleet's meters on each network (a share still on 3G is exposure to a sunset);
* the read success rate: intervals received over intervals expected for the utility's
  meters over the last day of readings.

Anything the fleet cannot know (prices, labour rates) keeps its documented default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roi.inputs import RoiInputs, default_inputs, parse_inputs

# A C&I meter not on a modem line is read by hand once a month for billing.
BILLING_READS_PER_YEAR = 12
# Networks with a shutdown risk within a typical horizon (the rest: LTE, private network).
SUNSET_NETWORKS = frozenset({"3g", "2g"})


@dataclass(frozen=True)
class FleetProfile:
    """What the database knows about one utility."""

    utility_id: str
    utility_name: str
    segment: str
    c_and_i_customers: int
    modem_lines: int
    meters: int
    meters_by_network: Mapping[str, int] = field(default_factory=dict)
    read_success: float | None = None  # fraction of expected intervals received


def _set(values: dict[str, Any], inputs: RoiInputs, name: str, value: float, source: str) -> None:
    if name in inputs.inputs:
        values[name] = {"value": value, "source": source}


def calibrated_document(profile: FleetProfile) -> dict[str, Any]:
    """Return a complete input document for the profile's segment, prefilled from the fleet."""
    base = default_inputs(profile.segment)
    who = profile.utility_name
    values: dict[str, Any] = {}
    lines = profile.modem_lines
    success = profile.read_success
    if profile.segment == "security":
        meters = max(profile.meters, 1)
        _set(values, base, "endpoints", meters, f"Fleet: {meters} metered sites at {who}.")
        _set(
            values,
            base,
            "site_visits_per_year",
            meters * BILLING_READS_PER_YEAR,
            f"Fleet: {meters} secured sites, each visited monthly for a read.",
        )
    else:
        customers = max(profile.c_and_i_customers, profile.meters, lines)
        manual = max(customers - lines, 0) * BILLING_READS_PER_YEAR
        endpoint_name = "meters" if profile.segment == "service_bureau" else "endpoints"
        _set(
            values, base, endpoint_name, customers, f"Utility profile: {customers:,} C&I customers."
        )
        _set(values, base, "modem_lines", lines, f"Utility profile: {lines:,} modem lines.")
        _set(
            values,
            base,
            "manual_reads_per_year",
            manual,
            f"Utility profile: {customers - lines:,} C&I meters without a modem line, "
            "read by hand monthly.",
        )
        if success is not None:
            failed = round(customers * BILLING_READS_PER_YEAR * (1 - success))
            _set(
                values,
                base,
                "re_reads_per_year",
                failed,
                f"Fleet: {success:.1%} of due intervals read; each failed monthly "
                "billing read is re-read.",
            )
            _set(
                values,
                base,
                "estimated_bills_per_year",
                round(failed / 2),
                "Fleet read success: half of the failed billing reads end in an estimated bill "
                "(assumption).",
            )
    if profile.segment == "iou" and profile.meters:
        exposed = sum(n for net, n in profile.meters_by_network.items() if net in SUNSET_NETWORKS)
        share = round(exposed / profile.meters, 4)
        _set(
            values,
            base,
            "sunset_share",
            share,
            f"Fleet: {exposed} of {profile.meters} meters at {who} are on 3G, a network "
            "with a shutdown risk.",
        )
    document = {
        "segment": profile.segment,
        "horizon_years": base.horizon_years,
        "discount_rate": base.discount_rate,
        "inputs": values,
    }
    # Parse to validate and to fill every input not set here with its default.
    return parse_inputs(document).to_dict()
