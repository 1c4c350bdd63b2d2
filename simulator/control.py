"""Live control of a running simulator: change speed or start an incident now (pure).

A presenter's portal publishes one JSON object on `{prefix}/_control/simulator` (QoS 1,
not retained; two levels under the prefix, so it never matches a meter topic):

    {"action": "speed", "speed": 3600}
    {"action": "incident", "incident": {"kind": "outage", "name": "...", "duration": "3h",
                                        "select": {"region": "Midwest", "share": 0.6}}}

An incident takes the same fields as one in a scenario file and starts at the simulator's
current interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from simulator.scenario import MAX_SPEED, IncidentSpec, ScenarioError, parse_scenario

MIN_SPEED: Final = 1.0
# What the demo control page offers; `{region}` is filled in by the presenter's choice.
PRESETS: Final[dict[str, dict[str, Any]]] = {
    "storm": {
        "kind": "outage",
        "name": "Storm outage (live)",
        "duration": "3h",
        "select": {"region": "{region}", "share": 0.6},
    },
    "tamper": {
        "kind": "tamper",
        "name": "Meter cover removed at a federal building (live)",
        "duration": "45m",
        "select": {"segment": "security", "count": 1},
    },
    "heat_wave": {
        "kind": "heat_wave",
        "name": "Heat wave (live)",
        "duration": "1d",
        "region": "{region}",
        "delta_c": 7,
        "select": {"region": "{region}"},
    },
    "sunset": {
        "kind": "network_sunset",
        "name": "3G carrier shutdown (live)",
        "select": {"network": "3g"},
    },
}


class ControlError(ValueError):
    """Raise when a control message cannot be acted on; the message says why."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One decoded control message."""

    action: Literal["speed", "incident"]
    speed: float | None = None
    incident: IncidentSpec | None = None


def control_topic(prefix: str) -> str:
    """Return the topic a simulator under `prefix` takes control messages on."""
    return f"{prefix}/_control/simulator"


def preset(name: str, region: str | None = None) -> dict[str, Any]:
    """Return a preset incident with `{region}` filled in."""
    if name not in PRESETS:
        raise ControlError(f"unknown incident {name!r}; choose one of {', '.join(PRESETS)}")
    text = orjson.dumps(PRESETS[name]).decode()
    if "{region}" in text:
        if not region:
            raise ControlError(f"the {name} incident needs a region")
        text = text.replace("{region}", region.replace('"', ""))
    loaded: dict[str, Any] = orjson.loads(text)
    return loaded


def encode_speed(speed: float) -> bytes:
    """Encode a speed change."""
    return orjson.dumps({"action": "speed", "speed": speed})


def encode_incident(incident: dict[str, Any]) -> bytes:
    """Encode an incident that starts now."""
    return orjson.dumps({"action": "incident", "incident": incident})


def parse_control(payload: bytes) -> ControlRequest:
    """Decode and validate a control message."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError("a control message is a JSON object")
    action = body.get("action")
    if action == "speed":
        speed = body.get("speed")
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise ControlError("speed must be a number")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ControlError(f"speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}")
        return ControlRequest("speed", speed=float(speed))
    if action == "incident":
        item = body.get("incident")
        if not isinstance(item, dict):
            raise ControlError("incident must be an object")
        try:
            scenario = parse_scenario({"incidents": [{**item, "at": "+0m"}]}, "live incident")
        except ScenarioError as exc:
            raise ControlError(str(exc)) from None
        return ControlRequest("incident", incident=scenario.incidents[0])
    raise ControlError("action must be 'speed' or 'incident'")
