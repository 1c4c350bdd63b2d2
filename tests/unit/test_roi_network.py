"""Network-choice request parsing and urban/rural classification by location (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from roi.inputs import RoiInputError
from roi.models import NetworkCosts, Site, choose_networks
from roi.network import parse_network_request, sites_from_locations


def make_request(**overrides: Any) -> dict[str, Any]:
    """A two-site request; keyword overrides replace top-level fields."""
    body: dict[str, Any] = {
        "sites": [{"site_id": "town", "area": "urban"}, {"site_id": "farm", "area": "rural"}],
        "costs": {"cost_escalation": 0},
        "horizon_years": 10,
        "discount_rate": 0.0,
    }
    body.update(overrides)
    return body


def test_request_gives_the_same_mix_as_the_model() -> None:
    mix = parse_network_request(make_request())
    direct = choose_networks(
        [Site("town", "urban"), Site("farm", "rural")],
        NetworkCosts(cost_escalation=0),
        10,
        0.0,
    )
    assert mix.to_dict() == direct.to_dict()
    # Undiscounted defaults: rural cellular 2,100 + 240 = 2,340 vs private 1,500 + 480 = 1,980.
    assert [c.network for c in mix.choices] == ["cellular", "private"]
    assert mix.choices[1].cost_pv == pytest.approx(1_980)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "document"),
        (make_request(sites=[]), "sites"),
        (make_request(sites=[{"site_id": "x", "area": "suburban"}]), "sites[0].area"),
        (make_request(sites=[{"area": "urban"}]), "sites[0].site_id"),
        (make_request(sites=["x"]), "sites[0]"),
        (
            make_request(sites=[{"site_id": "x", "area": "urban", "cellular_coverage": "yes"}]),
            "sites[0].cellular_coverage",
        ),
        (
            make_request(sites=[{"site_id": "cave", "area": "urban", "cellular_coverage": False}]),
            "sites[0]",
        ),
        (make_request(costs={"private_monthly": -1}), "costs.private_monthly"),
        (make_request(costs={"satellite": 1}), "costs.satellite"),
        (make_request(costs={"cost_escalation": float("nan")}), "costs.cost_escalation"),
        (make_request(horizon_years=0), "horizon_years"),
        # Integers past a float (a 500 before: math.isfinite overflowed on them).
        (make_request(costs={"cellular_endpoint": 10**400}), "costs.cellular_endpoint"),
        (make_request(horizon_years=10**400), "horizon_years"),
        (make_request(discount_rate=3), "discount_rate"),
        (make_request(colour="red"), "colour"),
    ],
)
def test_bad_requests_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(RoiInputError) as caught:
        parse_network_request(body)
    assert caught.value.field == field


def test_sites_near_the_centre_are_urban() -> None:
    # Four sites around (40, -100) within ~5 km and one ~80 km north.
    points = [
        ("a", 40.00, -100.00),
        ("b", 40.03, -100.02),
        ("c", 39.98, -99.97),
        ("d", 40.01, -100.04),
        ("far", 40.72, -100.00),
    ]
    areas = {s.site_id: s.area for s in sites_from_locations(points)}
    assert areas == {"a": "urban", "b": "urban", "c": "urban", "d": "urban", "far": "rural"}
    assert sites_from_locations([]) == []
