"""Scripted incidents: what happens to which meters when, and what that does to the physics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from app.domain.telemetry import INTERVAL_SECONDS
from simulator.fleet import Meter
from simulator.model import Effects, Window
from simulator.weather import REGION_INDEX, HeatSpell

IncidentKind = Literal[
    "outage", "tamper", "reverse_rotation", "heat_wave", "comms_outage", "network_sunset"
]
INCIDENT_KINDS: Final[tuple[IncidentKind, ...]] = (
    "outage",
    "tamper",
    "reverse_rotation",
    "heat_wave",
    "comms_outage",
    "network_sunset",
)
FOREVER: Final = 2**62


@dataclass(frozen=True, slots=True)
class Incident:
    """One scripted incident over [start, end) on the meters selected by `rows` (a fleet mask)."""

    kind: IncidentKind
    name: str
    start: datetime
    end: datetime | None
    rows: NDArray[np.bool_]
    region: str | None = None
    delta_c: float = 0.0

    @property
    def start_s(self) -> int:
        """Return the start in epoch seconds."""
        return int(self.start.timestamp())

    @property
    def end_s(self) -> int:
        """Return the end in epoch seconds (far future when open-ended)."""
        return int(self.end.timestamp()) if self.end else FOREVER

    def window(self) -> Window:
        """Return the incident as a model window."""
        return Window(self.rows, self.start_s, self.end_s)


def effects_of(incidents: Sequence[Incident]) -> Effects:
    """Return what the incidents do to readings (comms incidents change nothing measured)."""
    heat = tuple(
        HeatSpell(
            REGION_INDEX[i.region],
            -(-i.start_s // INTERVAL_SECONDS),
            -(-i.end_s // INTERVAL_SECONDS),
            i.delta_c,
        )
        for i in incidents
        if i.kind == "heat_wave" and i.region is not None
    )
    return Effects(
        outages=tuple(i.window() for i in incidents if i.kind == "outage"),
        tamper=tuple(i.window() for i in incidents if i.kind == "tamper"),
        reverse=tuple(i.window() for i in incidents if i.kind == "reverse_rotation"),
        heat=heat,
    )


def active(
    incidents: Sequence[Incident], kinds: Sequence[str], at_s: int, size: int
) -> NDArray[np.bool_]:
    """Return which meters are inside an incident of `kinds` at epoch second `at_s`."""
    hit = np.zeros(size, dtype=np.bool_)
    for i in incidents:
        if i.kind in kinds and i.start_s <= at_s < i.end_s:
            hit |= i.rows
    return hit


def cut_to_shard(
    incidents: Sequence[Incident], whole: Sequence[Meter], meters: Sequence[Meter]
) -> list[Incident]:
    """Return incidents bound over `whole` with their masks cut to `meters`, a shard of it.

    Incidents choose their meters over the whole fleet, so the shards together play exactly
    what one process would (`count: 1` hit one meter in every shard when each chose its own).
    """
    mine = {m.id for m in meters}
    keep = np.array([m.id in mine for m in whole], dtype=np.bool_)
    return [replace(x, rows=x.rows[keep]) for x in incidents]
