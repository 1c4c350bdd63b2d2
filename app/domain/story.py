"""The presenter's one-click story: fleet, incident now, a two-way command, ROI (pure).

A sales engineer walks a prospect through one segment in four steps. This module decides
everything that is not Flask: which incident each segment gets, which utility to feature,
which meter to send the command to, and the line the presenter says at each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

StepKey = Literal["fleet", "incident", "command", "roi"]
STEP_KEYS: Final[tuple[StepKey, ...]] = ("fleet", "incident", "command", "roi")
STEP_COUNT: Final = len(STEP_KEYS)


class StoryError(LookupError):
    """Raise for a segment without a story or a step outside 1..STEP_COUNT."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a story: where it is, what it is called and what the presenter says."""

    number: int
    key: StepKey
    title: str
    script: str


@dataclass(frozen=True, slots=True)
class Story:
    """A segment's story: its incident preset, its command and its four steps."""

    segment: str
    label: str
    # A key of simulator.control.PRESETS; `needs_region` presets get the featured region.
    incident: str
    incident_label: str
    needs_region: bool
    # Event types that mark a meter as hit by this incident.
    affected_events: frozenset[str]
    command: str
    command_label: str
    steps: tuple[Step, ...]

    def step(self, number: int) -> Step:
        """Return step `number` (1-based) or raise StoryError."""
        if not 1 <= number <= STEP_COUNT:
            raise StoryError(f"a story has steps 1 to {STEP_COUNT}; got {number}")
        return self.steps[number - 1]


def _steps(fleet: str, incident: str, command: str, roi: str) -> tuple[Step, ...]:
    titles = ("The live fleet", "An incident, now", "A two-way command", "The ROI")
    return tuple(
        Step(n, key, title, script)
        for n, (key, title, script) in enumerate(
            zip(STEP_KEYS, titles, (fleet, incident, command, roi), strict=True), start=1
        )
    )


_OUTAGE = frozenset({"power_outage", "power_restored", "comms_failure", "comms_restored"})
STORIES: Final[dict[str, Story]] = {
    "iou": Story(
        segment="iou",
        label="IOU",
        incident="storm",
        incident_label="Storm outage",
        needs_region=True,
        affected_events=_OUTAGE,
        command="ping",
        command_label="Ping",
        steps=_steps(
            "These C&I meters call in over cellular instead of a telephone-modem line: "
            "every tile and map dot is live, straight from the meters.",
            "A storm is knocking out power across the region right now: watch the last-gasp "
            "alarms arrive in the feed and the map turn red within seconds.",
            "Ping a meter the storm hit: the reply proves power and communications are back, "
            "with no truck roll and no phone call.",
            "Every endpoint displaces a phone line: here is the payback, prefilled from this "
            "utility's own fleet.",
        ),
    ),
    "service_bureau": Story(
        segment="service_bureau",
        label="Service bureau",
        incident="storm",
        incident_label="Storm outage",
        needs_region=True,
        affected_events=_OUTAGE,
        command="ping",
        command_label="Ping",
        steps=_steps(
            "The distributor hosts everything: this municipal utility sees only its own "
            "meters, live, with no servers or IT staff of its own.",
            "A storm hits the service territory now: outages show up in the hosted portal "
            "as they happen, so the small crew knows where to go.",
            "Ping a meter the storm hit: the hosted head-end reaches it and shows the reply "
            "here, the same as a big utility's.",
            "A subscription per meter per month against running the software in-house: the "
            "ROI, prefilled from this utility's fleet.",
        ),
    ),
    "security": Story(
        segment="security",
        label="Security",
        incident="tamper",
        incident_label="Tamper at a federal building",
        needs_region=False,
        affected_events=frozenset({"tamper", "reverse_rotation"}),
        command="read",
        command_label="On-demand read",
        steps=_steps(
            "Meters inside secured federal buildings report on their own: no meter reader, "
            "no escort, no badge to issue.",
            "Someone just removed a meter cover inside a federal building: the tamper alarm "
            "reaches the portal now, not at next month's read.",
            "Read the tampered meter's registers on demand: the building manager checks it "
            "without sending anyone inside.",
            "Site visits, escort hours and access processing avoided: the ROI, prefilled "
            "from this building owner's fleet.",
        ),
    ),
}


def story_for(segment: str) -> Story:
    """Return a segment's story or raise StoryError."""
    try:
        return STORIES[segment]
    except KeyError:
        raise StoryError(
            f"no story for segment {segment!r}; choose one of {', '.join(STORIES)}"
        ) from None


@dataclass(frozen=True, slots=True)
class UtilityCandidate:
    """A visible utility the story could feature."""

    id: str
    segment: str
    region: str
    meters: int


@dataclass(frozen=True, slots=True)
class MeterCandidate:
    """A visible meter the command could go to."""

    id: str
    segment: str
    status: str


@dataclass(frozen=True, slots=True)
class EventSeen:
    """A recent event at a visible meter, newest first in any sequence of them."""

    meter_id: str
    type: str


@dataclass(frozen=True, slots=True)
class MeterPick:
    """The meter the presenter sends the command to, and why it was chosen."""

    meter_id: str
    affected: bool
    reason: str


def featured_utility(
    story: Story, utilities: Sequence[UtilityCandidate]
) -> UtilityCandidate | None:
    """Pick the segment's utility with the most meters (ties by id), or None if it has none."""
    mine = [u for u in utilities if u.segment == story.segment and u.meters > 0]
    if not mine:
        return None
    return min(mine, key=lambda u: (-u.meters, u.id))


def pick_meter(
    story: Story, meters: Sequence[MeterCandidate], events: Sequence[EventSeen]
) -> MeterPick | None:
    """Choose the command's meter: hit by the incident and online if possible.

    An online meter answers the command, so an affected one that is back online comes
    first; then any affected meter (its timeout is itself the story); then any online
    meter of the segment; then any meter of the segment.
    """
    by_id = {m.id: m for m in meters if m.segment == story.segment}
    if not by_id:
        return None
    affected: dict[str, tuple[MeterCandidate, str]] = {}
    for e in events:
        meter = by_id.get(e.meter_id)
        # Events come newest first: a meter keeps its newest incident event.
        if meter is not None and e.type in story.affected_events and meter.id not in affected:
            affected[meter.id] = (meter, e.type)
    for meter, etype in affected.values():
        if meter.status == "online":
            return MeterPick(meter.id, True, f"reported {_words(etype)} and is online again")
    if affected:
        meter, etype = next(iter(affected.values()))
        return MeterPick(meter.id, True, f"reported {_words(etype)}; it is {meter.status}")
    ordered = sorted(by_id.values(), key=lambda m: (m.status != "online", m.id))
    first = ordered[0]
    return MeterPick(
        first.id,
        False,
        f"no {story.incident_label.lower()} event has arrived yet; this meter is {first.status}",
    )


def _words(event_type: str) -> str:
    return event_type.replace("_", " ")
