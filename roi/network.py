"""The network-choice request: parse sites and per-network costs from JSON, naming bad fields.

The choice itself is ``roi.models.choose_networks``; this module is its JSON boundary::

    {"sites": [{"site_id": "a", "area": "rural", "cellular_coverage": true}, ...],
     "costs": {"cellular_endpoint": 1800, ...},      # optional, NetworkCosts fields
     "horizon_years": 10, "discount_rate": 0.08}      # optional
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, Final

from roi.inputs import (
    DEFAULT_DISCOUNT_RATE,
    DEFAULT_HORIZON_YEARS,
    MAX_HORIZON_YEARS,
    MAX_MAGNITUDE,
    RoiInputError,
    finite_number,
)
from roi.models import NetworkCosts, NetworkMix, Site, choose_networks

MAX_SITES: Final = 20_000
_COST_FIELDS: Final = frozenset(f.name for f in fields(NetworkCosts))


def _number(field: str, raw: object, low: float, high: float) -> float:
    value = finite_number(field, raw)
    if not low <= value <= high:
        raise RoiInputError(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return value


def _site(i: int, raw: object) -> Site:
    base = f"sites[{i}]"
    if not isinstance(raw, Mapping):
        raise RoiInputError(base, "must be an object with site_id and area")
    site_id, area = raw.get("site_id"), raw.get("area")
    if not isinstance(site_id, str) or not 0 < len(site_id) <= 64:
        raise RoiInputError(f"{base}.site_id", "must be a string of 1 to 64 characters")
    if area not in ("urban", "rural"):
        raise RoiInputError(f"{base}.area", f"must be urban or rural, got {area!r}")
    cellular = raw.get("cellular_coverage", True)
    private = raw.get("private_coverage")
    if not isinstance(cellular, bool):
        raise RoiInputError(f"{base}.cellular_coverage", "must be true or false")
    if private is not None and not isinstance(private, bool):
        raise RoiInputError(f"{base}.private_coverage", "must be true, false or null")
    return Site(site_id, area, cellular, private)


def parse_network_request(body: object) -> NetworkMix:
    """Validate a network-choice request and return the cheapest network per site."""
    if not isinstance(body, Mapping):
        raise RoiInputError("document", "must be a JSON object")
    for key in body:
        if key not in {"sites", "costs", "horizon_years", "discount_rate"}:
            raise RoiInputError(str(key), "unknown field")
    raw_sites = body.get("sites")
    if not isinstance(raw_sites, list) or not raw_sites:
        raise RoiInputError("sites", "must be a non-empty list of sites")
    if len(raw_sites) > MAX_SITES:
        raise RoiInputError("sites", f"at most {MAX_SITES:,} sites per request")
    sites = [_site(i, raw) for i, raw in enumerate(raw_sites)]
    horizon = _number(
        "horizon_years", body.get("horizon_years", DEFAULT_HORIZON_YEARS), 1, MAX_HORIZON_YEARS
    )
    if not horizon.is_integer():
        raise RoiInputError("horizon_years", "must be a whole number of years")
    rate = _number("discount_rate", body.get("discount_rate", DEFAULT_DISCOUNT_RATE), 0, 1)
    raw_costs = body.get("costs", {})
    if not isinstance(raw_costs, Mapping):
        raise RoiInputError("costs", "must be an object")
    changes: dict[str, Any] = {}
    for key, value in raw_costs.items():
        if key not in _COST_FIELDS:
            raise RoiInputError(f"costs.{key}", "unknown cost")
        high = 1.0 if key == "cost_escalation" else MAX_MAGNITUDE
        changes[key] = _number(f"costs.{key}", value, 0, high)
    return choose_networks(sites, replace(NetworkCosts(), **changes), int(horizon), rate)


URBAN_RADIUS_KM: Final = 25.0
_EARTH_KM: Final = 6371.0


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(math.sqrt(a))


def sites_from_locations(
    points: list[tuple[str, float, float]], urban_radius_km: float = URBAN_RADIUS_KM
) -> list[Site]:
    """Call a site urban within `urban_radius_km` of the sites' centroid, rural beyond it.

    The fleet knows where each meter is but not the census class of the place, so distance
    from the service territory's centre stands in for it.
    """
    if not points:
        return []
    lat0 = sum(p[1] for p in points) / len(points)
    lon0 = sum(p[2] for p in points) / len(points)
    return [
        Site(site_id, "urban" if _km(lat0, lon0, lat, lon) <= urban_radius_km else "rural")
        for site_id, lat, lon in points
    ]
