"""The fleet catalogue: deterministic, prefix-stable, every segment represented."""

from __future__ import annotations

from app.domain.telemetry import parse_topic, topic_for
from simulator.fleet import BUILDING_TYPES, SEGMENTS, UTILITIES, UTILITY_BY_ID, build_fleet


def test_same_seed_same_fleet_and_growth_keeps_existing_meters() -> None:
    assert build_fleet(50, seed=3) == build_fleet(50, seed=3)
    assert build_fleet(80, seed=3)[:50] == build_fleet(50, seed=3)
    assert build_fleet(50, seed=3) != build_fleet(50, seed=4)


def test_seven_meters_reach_every_utility_and_segment() -> None:
    fleet = build_fleet(len(UTILITIES), seed=1)
    assert {m.utility_id for m in fleet} == {u.id for u in UTILITIES}
    assert {UTILITY_BY_ID[m.utility_id].segment for m in fleet} == set(SEGMENTS)


def test_meter_attributes_are_in_range_and_topic_safe() -> None:
    fleet = build_fleet(400, seed=42)
    assert len({m.id for m in fleet}) == 400
    for m in fleet:
        btype = BUILDING_TYPES[m.building_type]
        assert btype.code in UTILITY_BY_ID[m.utility_id].building_types
        assert btype.peak_kw[0] <= m.peak_kw <= btype.peak_kw[1]
        assert 0.80 <= m.power_factor <= 0.99
        assert parse_topic(topic_for(m.utility_id, m.id, "interval")).meter_id == m.id
    assert any(m.power_factor < 0.90 for m in fleet)
    assert {m.network for m in fleet} == {"lte", "3g", "private_nb"}
