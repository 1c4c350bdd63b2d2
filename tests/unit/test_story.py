"""The presenter's story rules: which incident, which utility, which meter, what to say."""

from __future__ import annotations

import pytest

from app.domain import story as rules
from app.domain.telemetry import EVENT_TYPES
from simulator.control import PRESETS, preset


def make_meter(
    id_: str, *, segment: str = "security", status: str = "online"
) -> rules.MeterCandidate:
    """Build a meter candidate; keyword overrides change fields."""
    return rules.MeterCandidate(id_, segment, status)


@pytest.mark.parametrize("segment", ["iou", "service_bureau", "security"])
def test_every_segment_has_four_steps_with_a_line_and_a_real_incident(segment: str) -> None:
    story = rules.story_for(segment)
    assert [s.key for s in story.steps] == ["fleet", "incident", "command", "roi"]
    assert [s.number for s in story.steps] == [1, 2, 3, 4]
    assert all(s.script and s.title for s in story.steps)
    assert story.incident in PRESETS
    # The preset is usable with what the story supplies (a region only when it needs one).
    spec = preset(story.incident, "Midwest" if story.needs_region else None)
    assert spec["kind"] in ("outage", "tamper")
    assert story.affected_events <= EVENT_TYPES


def test_incidents_fit_the_segment() -> None:
    assert rules.story_for("iou").incident == "storm"
    assert rules.story_for("service_bureau").incident == "storm"
    assert rules.story_for("security").incident == "tamper"
    assert rules.story_for("security").command == "read"


def test_unknown_segment_and_step_out_of_range_raise() -> None:
    with pytest.raises(rules.StoryError, match="choose one of iou"):
        rules.story_for("telecom")
    story = rules.story_for("iou")
    assert story.step(4).key == "roi"
    for bad in (0, 5, -1):
        with pytest.raises(rules.StoryError, match="steps 1 to 4"):
            story.step(bad)


def test_featured_utility_is_the_segments_biggest_ties_by_id() -> None:
    u = rules.UtilityCandidate
    utilities = [u("glpl", "iou", "Midwest", 5), u("atlantic", "iou", "Northeast", 5),
                 u("cascade", "iou", "Pacific Northwest", 9), u("fed", "security", "Mid-Atlantic", 12)]  # fmt: skip
    assert rules.featured_utility(rules.story_for("iou"), utilities) == utilities[2]
    tied = utilities[:2]
    assert rules.featured_utility(rules.story_for("iou"), tied) == utilities[1]
    assert rules.featured_utility(rules.story_for("service_bureau"), utilities) is None
    empty = [u("millbrook", "service_bureau", "New England", 0)]
    assert rules.featured_utility(rules.story_for("service_bureau"), empty) is None


def test_pick_prefers_an_affected_meter_that_is_online_again() -> None:
    story = rules.story_for("security")
    meters = [make_meter("a"), make_meter("b", status="offline"), make_meter("c")]
    events = [rules.EventSeen("b", "tamper"), rules.EventSeen("c", "tamper"),
              rules.EventSeen("a", "demand_reset")]  # fmt: skip
    pick = rules.pick_meter(story, meters, events)
    assert pick == rules.MeterPick("c", True, "reported tamper and is online again")


def test_pick_takes_the_newest_affected_meter_when_none_is_online() -> None:
    story = rules.story_for("iou")
    meters = [make_meter("x", segment="iou", status="offline"),
              make_meter("y", segment="iou", status="offline"), make_meter("z", segment="iou")]  # fmt: skip
    events = [rules.EventSeen("y", "power_outage"), rules.EventSeen("x", "power_outage")]
    pick = rules.pick_meter(story, meters, events)
    assert pick == rules.MeterPick("y", True, "reported power outage; it is offline")


def test_pick_ignores_other_segments_and_other_event_types() -> None:
    story = rules.story_for("security")
    meters = [
        make_meter("iou-1", segment="iou"),
        make_meter("s2", status="offline"),
        make_meter("s3"),
    ]
    events = [rules.EventSeen("iou-1", "tamper"), rules.EventSeen("s2", "power_outage")]
    pick = rules.pick_meter(story, meters, events)
    assert pick is not None
    assert (pick.meter_id, pick.affected) == ("s3", False)
    assert "no tamper at a federal building event has arrived yet" in pick.reason


def test_pick_falls_back_to_any_meter_and_none_without_meters() -> None:
    story = rules.story_for("security")
    offline = [make_meter("s9", status="offline"), make_meter("s1", status="unknown")]
    pick = rules.pick_meter(story, offline, [])
    assert pick is not None
    assert pick.meter_id == "s1"
    assert rules.pick_meter(story, [make_meter("i", segment="iou")], []) is None
