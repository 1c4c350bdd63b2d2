"""Prospects by segment (demand scores) and lead routing to a partner by segment and territory."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from partners.territory import covers

_TIER_ORDER = {"gold": 0, "silver": 1, "bronze": 2}


@dataclass(frozen=True, slots=True)
class Prospect:
    """A potential customer: an IOU, a municipal/co-op utility, or a building owner."""

    id: str
    name: str
    segment: str
    region: str
    c_and_i_customers: int = 0
    modem_lines: int = 0
    buildings: int = 0
    meter_readers: int = 0


def demand_score(p: Prospect) -> float:
    """Score 0..100 how much a prospect needs wireless endpoints (higher is hotter).

    IOUs: each modem line is displaced by an endpoint, so lines dominate; the C&I base
    says how far it can grow. Service bureau: small utilities with C&I meters and no IT
    staff. Security: buildings and meter readers inside secured perimeters. Log scales
    keep one giant from flattening everyone else.
    """
    if p.segment == "iou":
        raw = (
            0.7 * math.log10(1 + p.modem_lines) / 4.0
            + 0.3 * math.log10(1 + p.c_and_i_customers) / 4.7
        )
    elif p.segment == "service_bureau":
        raw = (
            0.6 * math.log10(1 + p.c_and_i_customers) / 3.3
            + 0.4 * math.log10(1 + p.modem_lines) / 2.5
        )
    else:
        raw = 0.6 * math.log10(1 + p.buildings) / 2.0 + 0.4 * math.log10(1 + p.meter_readers) / 1.5
    return round(100.0 * min(max(raw, 0.0), 1.0), 1)


@dataclass(frozen=True, slots=True)
class PartnerCoverage:
    """What routing needs to know about a signed partner."""

    distributor_id: str
    name: str
    tier: str
    territory: frozenset[str]
    segments: frozenset[str]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a lead goes and why (distributor_id None: no partner covers it)."""

    distributor_id: str | None
    reason: str


def route_lead(
    segment: str,
    region: str,
    partners: Sequence[PartnerCoverage],
    open_leads: Mapping[str, int] | None = None,
) -> Route:
    """Route a lead to the partner covering its segment and place: best tier, then least loaded."""
    load = open_leads or {}
    fits = [p for p in partners if segment in p.segments and covers(p.territory, region)]
    if not fits:
        return Route(None, f"no partner covers {segment} in {region}; the vendor follows up")
    fits.sort(
        key=lambda p: (_TIER_ORDER.get(p.tier, 9), load.get(p.distributor_id, 0), p.distributor_id)
    )
    chosen = fits[0]
    why = f"{chosen.name} covers {segment} in {region} ({chosen.tier} tier"
    if len(fits) > 1:
        why += f", chosen over {len(fits) - 1} other partner(s) by tier and open leads"
    return Route(chosen.distributor_id, why + ")")
