"""Scenarios: a fleet and a timeline of scripted incidents, read from YAML.

A scenario file (see `simulator/scenarios/*.yaml`) looks like::

    name: storm
    description: A derecho knocks out power across the Midwest for an evening.
    seed: 42                      # optional defaults for the run
    meters: 200
    speed: 900
    start: 2026-07-13T00:00:00Z   # optional; otherwise the run's --start
    day_starts_in: America/Chicago  # optional: a default start (a week ago) moves back to
                                    #   midnight there, so "+18h" is 18:00 local on any day
    fleet:                        # optional filters on the catalogue fleet
      utilities: [glpl, atlantic]
    incidents:
      - kind: outage              # outage | tamper | reverse_rotation | heat_wave |
        name: Derecho             #   comms_outage | network_sunset
        at: +1d18h                # offset from the start, or an RFC 3339 time
        duration: 5h              # omitted: lasts to the end of the run
        select: {region: Midwest, share: 0.6}

`select` filters meters by `utility`, `region`, `segment`, `building_type`, `network` and
`meters` (ids), then keeps a `share` (a reproducible fraction) or the first `count`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml

from app.domain.telemetry import ContractError, parse_time
from simulator import hashing
from simulator.fleet import BUILDING_TYPES, NETWORKS, SEGMENTS, UTILITY_BY_ID, Meter
from simulator.incidents import INCIDENT_KINDS, Incident, IncidentKind
from simulator.weather import REGIONS

SCENARIO_DIR: Final = Path(__file__).resolve().parent / "scenarios"
_CH_SHARE: Final = 501
_SPAN_RE: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_SELECT_KEYS: Final = frozenset(
    {"utility", "region", "segment", "building_type", "network", "meters", "share", "count"}
)
_TOP_KEYS: Final = frozenset(
    {
        "name",
        "description",
        "seed",
        "meters",
        "speed",
        "start",
        "day_starts_in",
        "fleet",
        "incidents",
    }
)
_INCIDENT_KEYS: Final = frozenset({"kind", "name", "at", "duration", "select", "region", "delta_c"})
# Ten years: any longer and a start plus the span leaves the calendar a datetime can hold
# (a duration of 3,000,000 days was an OverflowError, not an error naming the field).
MAX_SPAN: Final = timedelta(days=3653)
MAX_SPEED: Final = 86_400.0  # a day a second, as the live control allows


class ScenarioError(ValueError):
    """Raise when a scenario file is unusable; the message names the field."""


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    """One incident as written in the file, before it is bound to a fleet and a start."""

    kind: IncidentKind
    name: str
    at: timedelta | datetime
    duration: timedelta | None
    select: Mapping[str, Any]
    region: str | None
    delta_c: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fleet and incident timeline."""

    name: str
    description: str
    seed: int | None
    meters: int | None
    speed: float | None
    start: datetime | None
    fleet: Mapping[str, Any]
    incidents: tuple[IncidentSpec, ...]
    day_starts_in: ZoneInfo | None = None

    def default_start(self, now: datetime) -> datetime:
        """Return the start of a run given no start: a week before `now`, at local midnight.

        Offsets such as "+18h" mean a time of day only when the start is a midnight: from
        "now minus a week" the demo's evening storm struck at any hour (01:00 in Detroit
        when started at noon UTC).
        """
        week_ago = now - timedelta(days=7)
        if self.day_starts_in is None:
            return week_ago
        local = week_ago.astimezone(self.day_starts_in)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self.day_starts_in)
        return midnight.astimezone(UTC)

    def select_fleet(self, meters: Sequence[Meter]) -> list[Meter]:
        """Return the meters the scenario's fleet filters keep."""
        return [m for m in meters if _matches(m, self.fleet)]

    def check_meters(self, known: set[str]) -> None:
        """Refuse incidents that name meters the fleet does not have (they selected none)."""
        for k, spec in enumerate(self.incidents):
            missing = sorted(set(spec.select.get("meters", ())) - known)
            if missing:
                raise ScenarioError(
                    f"incidents[{k}].select.meters: {missing[0]!r} is not in this "
                    f"{len(known)}-meter fleet"
                )

    def bind(self, meters: Sequence[Meter], start: datetime, seed: int) -> list[Incident]:
        """Return the incidents for `meters` (masks over their order) from `start`."""
        out = []
        for k, spec in enumerate(self.incidents):
            try:
                begin = start + spec.at if isinstance(spec.at, timedelta) else spec.at
                end = begin + spec.duration if spec.duration is not None else None
            except OverflowError:
                raise ScenarioError(
                    f"incident {spec.name!r} falls outside the calendar from {start:%Y-%m-%d}"
                ) from None
            out.append(
                Incident(
                    kind=spec.kind,
                    name=spec.name,
                    start=begin,
                    end=end,
                    rows=_select(meters, spec.select, seed, k),
                    region=spec.region,
                    delta_c=spec.delta_c,
                )
            )
        return out


def parse_span(text: Any, where: str) -> timedelta:
    """Parse '1d6h30m' (any of the parts, at least one) into a timedelta."""
    match = _SPAN_RE.fullmatch(str(text).strip()) if text is not None else None
    if not match or not any(match.groups()):
        raise ScenarioError(f"{where} {text!r} is not a span like 2d, 6h, 90m or 1d6h30m")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    if days > MAX_SPAN.days or days * 1440 + hours * 60 + minutes > MAX_SPAN.days * 1440:
        raise ScenarioError(f"{where} {text!r} is longer than {MAX_SPAN.days} days")
    return timedelta(days=days, hours=hours, minutes=minutes)


def _time(value: Any, where: str) -> timedelta | datetime:
    if isinstance(value, datetime):
        value = value.isoformat().replace("+00:00", "Z")
    text = str(value).strip()
    if text.startswith("+"):
        return parse_span(text[1:], where)
    try:
        return parse_time(text, where)
    except ContractError as exc:
        raise ScenarioError(f"{exc} (or use an offset like +1d6h)") from None


def _matches(meter: Meter, select: Mapping[str, Any]) -> bool:
    utility = UTILITY_BY_ID[meter.utility_id]
    checks = {
        "utility": meter.utility_id,
        "utilities": meter.utility_id,
        "region": utility.region,
        "regions": utility.region,
        "segment": utility.segment,
        "segments": utility.segment,
        "building_type": meter.building_type,
        "building_types": meter.building_type,
        "network": meter.network,
        "networks": meter.network,
        "meters": meter.id,
    }
    for key, value in select.items():
        if key in ("share", "count"):
            continue
        allowed = value if isinstance(value, list) else [value]
        if checks[key] not in allowed:
            return False
    return True


def _select(
    meters: Sequence[Meter], select: Mapping[str, Any], seed: int, k: int
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    hit = np.array([_matches(m, select) for m in meters], dtype=np.bool_)
    if "share" in select:
        index = np.array([m.index for m in meters], dtype=np.uint64)
        u = hashing.uniform(hashing.row_keys(seed, _CH_SHARE + k, index))
        hit &= u < float(select["share"])
    if "count" in select:
        keep = np.flatnonzero(hit)[: int(select["count"])]
        hit = np.zeros(len(meters), dtype=np.bool_)
        hit[keep] = True
    return hit


_ALLOWED: Final[dict[str, Sequence[str]]] = {
    "utility": tuple(UTILITY_BY_ID),
    "region": REGIONS,
    "segment": SEGMENTS,
    "building_type": tuple(BUILDING_TYPES),
    "network": tuple(NETWORKS),
}


def _check_select(raw: Any, where: str, keys: frozenset[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a mapping")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ScenarioError(f"{where}: filter {key!r} is not a name")
        base = key[:-1] if key.endswith("s") and key[:-1] in _ALLOWED else key
        if base not in keys and key not in keys:
            raise ScenarioError(f"{where}.{key} is not a known filter ({', '.join(sorted(keys))})")
        if base in _ALLOWED:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in _ALLOWED[base]]
            if bad:
                raise ScenarioError(
                    f"{where}.{key} {bad[0]!r} is not one of {', '.join(_ALLOWED[base])}"
                )
        if key == "share" and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
        ):
            raise ScenarioError(f"{where}.share must be a number between 0 and 1")
        if key == "count" and not (
            isinstance(value, int) and not isinstance(value, bool) and value >= 0
        ):
            raise ScenarioError(f"{where}.count must be a whole number >= 0")
        if key == "meters" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ScenarioError(f"{where}.meters must be a list of meter ids")
        out[base if base in _ALLOWED else key] = value
    return out


def parse_scenario(raw: Any, name: str) -> Scenario:
    """Validate a loaded YAML document into a Scenario."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{name}: the file must hold a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ScenarioError(f"{name}: unknown field {sorted(unknown)[0]!r}")
    incidents = raw.get("incidents") or []
    if not isinstance(incidents, list):
        raise ScenarioError(f"{name}: incidents must be a list")
    specs = []
    for k, item in enumerate(incidents):
        where = f"incidents[{k}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{where} must be a mapping")
        kind = item.get("kind")
        if kind not in INCIDENT_KINDS:
            raise ScenarioError(f"{where}.kind {kind!r} is not one of {', '.join(INCIDENT_KINDS)}")
        unknown_keys = sorted(map(str, set(item) - _INCIDENT_KEYS))
        if unknown_keys:
            # A misspelt "durration" was ignored: the outage then never ended.
            raise ScenarioError(
                f"{where}: unknown field {unknown_keys[0]!r} "
                f"(fields: {', '.join(sorted(_INCIDENT_KEYS))})"
            )
        if kind != "heat_wave" and ("region" in item or "delta_c" in item):
            field = "region" if "region" in item else "delta_c"
            raise ScenarioError(
                f"{where}.{field} is the weather of a heat_wave; "
                f"choose the meters it hits with select (e.g. select: {{region: Midwest}})"
            )
        if "at" not in item:
            raise ScenarioError(f"{where}.at is required")
        region = item.get("region")
        if kind == "heat_wave":
            if region not in REGIONS:
                raise ScenarioError(f"{where}.region {region!r} is not one of {', '.join(REGIONS)}")
            delta = item.get("delta_c")
            if (
                not isinstance(delta, int | float)
                or isinstance(delta, bool)
                or not -30 <= delta <= 30
            ):
                raise ScenarioError(
                    f"{where}.delta_c must be a number of degrees between -30 and 30"
                )
        specs.append(
            IncidentSpec(
                kind=cast(IncidentKind, kind),
                name=str(item.get("name") or kind),
                at=_time(item["at"], f"{where}.at"),
                duration=parse_span(item["duration"], f"{where}.duration")
                if item.get("duration") is not None
                else None,
                select=_check_select(item.get("select"), f"{where}.select", _SELECT_KEYS),
                region=region,
                delta_c=float(item.get("delta_c", 0.0)),
            )
        )
    seed, meters, speed = raw.get("seed"), raw.get("meters"), raw.get("speed")
    for key, value in (("seed", seed), ("meters", meters)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ScenarioError(f"{name}: {key} must be a whole number")
    if meters is not None and meters < 1:
        raise ScenarioError(f"{name}: meters must be >= 1")
    if speed is not None and (
        not isinstance(speed, int | float)
        or isinstance(speed, bool)
        or not 0 < speed <= MAX_SPEED  # NaN fails this too
    ):
        raise ScenarioError(f"{name}: speed must be a number above 0 and at most {MAX_SPEED:g}")
    start = raw.get("start")
    begin = _time(start, "start") if start is not None else None
    if isinstance(begin, timedelta):
        raise ScenarioError(f"{name}: start must be an RFC 3339 time, not an offset")
    zone = raw.get("day_starts_in")
    if zone is not None:
        try:
            zone = ZoneInfo(zone) if isinstance(zone, str) else None
        except (ValueError, ZoneInfoNotFoundError):
            zone = None
        if zone is None:
            raise ScenarioError(
                f"{name}: day_starts_in must be an IANA time zone such as America/Chicago"
            )
    return Scenario(
        name=str(raw.get("name") or name),
        description=str(raw.get("description") or ""),
        seed=seed,
        meters=meters,
        speed=float(speed) if speed is not None else None,
        start=begin,
        fleet=_check_select(raw.get("fleet"), "fleet", _SELECT_KEYS - {"share", "count"}),
        incidents=tuple(specs),
        day_starts_in=zone,
    )


def load_scenario(name_or_path: str) -> Scenario:
    """Load a scenario by name (from simulator/scenarios) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ScenarioError(
            f"no scenario {name_or_path!r}; available: {', '.join(s for s, _ in list_scenarios())}"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path.name}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not valid YAML: {exc}") from None
    return parse_scenario(raw, path.stem)


def list_scenarios() -> list[tuple[str, Path]]:
    """Return (name, path) of the bundled scenarios."""
    return [(p.stem, p) for p in sorted(SCENARIO_DIR.glob("*.yaml"))]
