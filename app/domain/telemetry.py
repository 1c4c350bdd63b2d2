"""The Wattline telemetry contract: MQTT topics and JSON payloads shared by meters and ingest.

Pure module (stdlib, orjson, msgspec): the simulator encodes with it, the ingest decodes with it,
and `docs/protocol.md` / `docs/schemas/` describe the same rules for third parties.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, NamedTuple, cast, overload

import msgspec
import orjson

SCHEMA_VERSION: Final = 1
DEFAULT_PREFIX: Final = "wattline/v1"
INTERVAL_SECONDS: Final = 900
MAX_READINGS_PER_MESSAGE: Final = 10_000
# How deep free-form JSON (event and status details, command args, reply results) may nest.
MAX_DEPTH: Final = 32

Kind = Literal["interval", "event", "status", "cmd", "reply"]
KINDS: Final[tuple[Kind, ...]] = ("interval", "event", "status", "cmd", "reply")

# Flags a meter may set on one interval; anything else is a contract violation.
READING_FLAGS: Final = frozenset(
    {"power_fail", "clock_adjusted", "partial", "tamper", "reverse_rotation", "backfill"}
)
EVENT_TYPES: Final = frozenset(
    {
        "power_outage",
        "power_restored",
        "tamper",
        "reverse_rotation",
        "demand_threshold",
        "demand_reset",
        "low_signal",
        "clock_drift",
        "comms_failure",
        "comms_restored",
    }
)
SEVERITIES: Final = ("info", "warning", "critical")
STATUS_STATES: Final = ("online", "offline")
REPLY_STATUSES: Final = ("ok", "accepted", "error")

# Always used with fullmatch: `$` would also match before a trailing newline.
_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_COMMAND_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
# The schemas' timestamp pattern (docs/protocol.md): fromisoformat alone also takes ISO 8601
# basic and week forms. Upper-case T and Z only, as documented, so decoder and schema agree.
_RFC3339_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


class ContractError(ValueError):
    """Raise when a topic or payload breaks the telemetry contract; the message is the reason."""


# ---------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed `{prefix}/{utility_id}/{meter_id}/{kind}` topic."""

    prefix: str
    utility_id: str
    meter_id: str
    kind: Kind

    def __str__(self) -> str:
        """Render the topic string."""
        return f"{self.prefix}/{self.utility_id}/{self.meter_id}/{self.kind}"


def topic_for(utility_id: str, meter_id: str, kind: Kind, prefix: str = DEFAULT_PREFIX) -> str:
    """Build a topic, checking each segment is a valid identifier."""
    for name, value in (("utility_id", utility_id), ("meter_id", meter_id)):
        if not _SEGMENT_RE.fullmatch(value):
            raise ContractError(f"{name} {value!r} is not a valid topic segment")
    if kind not in KINDS:
        raise ContractError(f"unknown kind {kind!r}")
    return f"{prefix}/{utility_id}/{meter_id}/{kind}"


def subscription(kind: Kind | Literal["#"], prefix: str = DEFAULT_PREFIX) -> str:
    """Return the wildcard filter that matches one kind (or everything) for all meters."""
    return f"{prefix}/#" if kind == "#" else f"{prefix}/+/+/{kind}"


# Each meter publishes on the same few topics all day: a parsed topic (immutable) is looked
# up instead of split and matched again. Bounded: cleared whole when full.
_TOPIC_CACHE: dict[str, Topic] = {}
_TOPIC_CACHE_MAX: Final = 100_000


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> Topic:
    """Split a topic into its parts or raise ContractError."""
    found = _TOPIC_CACHE.get(topic)
    if found is not None and found.prefix == prefix:
        return found
    parsed = _parse_topic(topic, prefix)
    if len(_TOPIC_CACHE) >= _TOPIC_CACHE_MAX:
        _TOPIC_CACHE.clear()
    _TOPIC_CACHE[topic] = parsed
    return parsed


def _parse_topic(topic: str, prefix: str) -> Topic:
    if not topic.startswith(prefix + "/"):
        raise ContractError(f"topic {topic!r} is outside prefix {prefix!r}")
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 3:
        raise ContractError(f"topic {topic!r} is not {prefix}/<utility>/<meter>/<kind>")
    utility_id, meter_id, kind = parts
    if kind not in KINDS:
        raise ContractError(f"unknown kind {kind!r} in topic {topic!r}")
    for name, value in (("utility_id", utility_id), ("meter_id", meter_id)):
        if not _SEGMENT_RE.fullmatch(value):
            raise ContractError(f"{name} {value!r} is not a valid topic segment")
    return Topic(prefix, utility_id, meter_id, kind)


# ---------------------------------------------------------------- payload types


class Reading(NamedTuple):
    """One 15-minute interval: energy, reactive energy, demand and per-phase voltage."""

    # A NamedTuple, not a frozen dataclass: immutable all the same, and it builds in a
    # quarter of the time, which matters at a hundred thousand readings a second.

    start: datetime
    kwh: float
    kvarh: float
    demand_kw: float
    voltage: tuple[float, ...]
    flags: frozenset[str] = frozenset()
    seconds: int = INTERVAL_SECONDS


class Columns(NamedTuple):
    """Readings as columns, one tuple per field; a phase a meter does not have is None."""

    starts: tuple[datetime, ...]
    kwh: tuple[float, ...]
    kvarh: tuple[float, ...]
    demand_kw: tuple[float, ...]
    voltage_a: tuple[float, ...]
    voltage_b: tuple[float | None, ...]
    voltage_c: tuple[float | None, ...]
    flags: tuple[frozenset[str], ...]

    def readings(self) -> tuple[Reading, ...]:
        """Return the readings these columns hold."""
        volts = tuple(map(_phases, self.voltage_a, self.voltage_b, self.voltage_c))
        fields = (self.starts, self.kwh, self.kvarh, self.demand_kw, volts, self.flags)
        seconds = (INTERVAL_SECONDS,) * len(self.starts)
        return tuple(map(_as_reading, zip(*fields, seconds, strict=True)))


def _phases(a: float, b: float | None, c: float | None) -> tuple[float, ...]:
    return (a,) if b is None else (a, b) if c is None else (a, b, c)


class ReadingColumns(Sequence[Reading]):
    """A decoded message's readings, held as columns; Reading tuples are made when asked for.

    The ingest stores readings from columns, so the decoder keeps what msgspec parsed as
    one tuple per field instead of one Reading per interval: a Python object fewer for
    each reading on the hot path. Equal to the tuple of the same readings.
    """

    __slots__ = ("_readings", "columns")

    def __init__(self, columns: Columns) -> None:
        """Hold `columns`, each as long as the others."""
        self.columns = columns
        self._readings: tuple[Reading, ...] | None = None

    def readings(self) -> tuple[Reading, ...]:
        """Return the readings as a tuple of Reading (made once)."""
        if self._readings is None:
            self._readings = self.columns.readings()
        return self._readings

    def __len__(self) -> int:
        """Return the number of readings."""
        return len(self.columns.starts)

    @overload
    def __getitem__(self, index: int) -> Reading: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Reading, ...]: ...

    def __getitem__(self, index: int | slice) -> Reading | tuple[Reading, ...]:
        """Return a reading, or a tuple of them for a slice."""
        return self.readings()[index]

    def __iter__(self) -> Iterator[Reading]:
        """Iterate over the readings."""
        return iter(self.readings())

    def __eq__(self, other: object) -> bool:
        """Compare as the tuple of the readings."""
        if isinstance(other, ReadingColumns | tuple):
            return self.readings() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        """Hash as the tuple of the readings."""
        return hash(self.readings())

    def __repr__(self) -> str:
        """Show the readings."""
        return repr(self.readings())


# tuple.__new__ skips the NamedTuple's Python-level __new__: the same object, in C.
_as_reading: Final = functools.partial(tuple.__new__, Reading)


def columns_of(readings: Sequence[Reading]) -> Columns:
    """Return readings as Columns: the decoder's own if it kept them, else made here."""
    if isinstance(readings, ReadingColumns):
        return readings.columns
    volts = [r.voltage for r in readings]
    return Columns(
        tuple(r.start for r in readings),
        tuple(r.kwh for r in readings),
        tuple(r.kvarh for r in readings),
        tuple(r.demand_kw for r in readings),
        tuple(v[0] for v in volts),
        tuple(v[1] if len(v) > 1 else None for v in volts),
        tuple(v[2] if len(v) > 2 else None for v in volts),
        tuple(r.flags for r in readings),
    )


@dataclass(frozen=True, slots=True)
class Register:
    """Cumulative energy registers at an instant (optional on interval messages)."""

    at: datetime
    kwh: float
    kvarh: float


@dataclass(frozen=True, slots=True)
class IntervalMessage:
    """One or more interval readings from one meter (a backlog travels as one message)."""

    meter_id: str
    readings: tuple[Reading, ...] | ReadingColumns  # ReadingColumns: as the decoder keeps them
    sent_at: datetime | None = None
    register: Register | None = None


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A meter event such as a last-gasp outage or a tamper alarm."""

    meter_id: str
    event_id: str
    type: str
    at: datetime
    severity: str = "info"
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """The retained online/offline state of a meter (also its MQTT last will)."""

    meter_id: str
    state: str
    at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Command:
    """A head-end command sent to a meter on its `cmd` topic."""

    id: str
    command: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """A meter's answer to a command, on its `reply` topic."""

    id: str
    status: str
    result: Any = None


Message = IntervalMessage | EventMessage | StatusMessage | Command | Reply


# ---------------------------------------------------------------- time helpers


def format_time(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a trailing Z."""
    if value.tzinfo is None:
        raise ContractError("naive datetime; telemetry times must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any, name: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset into an aware UTC datetime."""
    if not isinstance(value, str):
        raise ContractError(f"{name} must be an RFC 3339 string")
    if not _RFC3339_RE.fullmatch(value):
        raise ContractError(f"{name} {value!r} is not an RFC 3339 timestamp")
    text = value[:-1] + "+00:00" if value[-1] == "Z" else value
    # Python parses at most microseconds; RFC 3339 allows any number of fraction digits.
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[:-6]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ContractError(f"{name} {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ContractError(f"{name} {value!r} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC
        raise ContractError(f"{name} {value!r} is out of range") from None


def floor_interval(value: datetime) -> datetime:
    """Floor an aware datetime to the start of its 15-minute interval."""
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % INTERVAL_SECONDS, UTC)


def interval_range(start: datetime, count: int) -> list[datetime]:
    """Return `count` consecutive interval starts from `start`."""
    step = timedelta(seconds=INTERVAL_SECONDS)
    return [start + i * step for i in range(count)]


# ---------------------------------------------------------------- encoding


def _num(value: float) -> float:
    # Three decimals is Wh / var / 0.1 V resolution: well inside meter accuracy, half the bytes.
    return round(float(value), 3)


def reading_to_dict(reading: Reading) -> dict[str, Any]:
    """Return the JSON-ready form of one reading."""
    return {
        "start": format_time(reading.start),
        "seconds": reading.seconds,
        "kwh": _num(reading.kwh),
        "kvarh": _num(reading.kvarh),
        "demand_kw": _num(reading.demand_kw),
        "voltage": [_num(v) for v in reading.voltage],
        "flags": sorted(reading.flags),
    }


def encode_interval(message: IntervalMessage) -> bytes:
    """Encode an interval message."""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "meter_id": message.meter_id,
        "readings": [reading_to_dict(r) for r in message.readings],
    }
    if message.sent_at is not None:
        body["sent_at"] = format_time(message.sent_at)
    if message.register is not None:
        body["register"] = {
            "at": format_time(message.register.at),
            "kwh": _num(message.register.kwh),
            "kvarh": _num(message.register.kvarh),
        }
    return orjson.dumps(body)


def encode_event(message: EventMessage) -> bytes:
    """Encode an event message."""
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "meter_id": message.meter_id,
            "event_id": message.event_id,
            "type": message.type,
            "at": format_time(message.at),
            "severity": message.severity,
            "details": dict(message.details),
        }
    )


def encode_status(message: StatusMessage) -> bytes:
    """Encode a status message (the last will omits `at`: it is composed at connect time)."""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "meter_id": message.meter_id,
        "state": message.state,
    }
    if message.at is not None:
        body["at"] = format_time(message.at)
    if message.details:
        body["details"] = dict(message.details)
    return orjson.dumps(body)


def encode_command(message: Command) -> bytes:
    """Encode a command."""
    return orjson.dumps({"id": message.id, "command": message.command, "args": dict(message.args)})


def encode_reply(message: Reply) -> bytes:
    """Encode a command reply."""
    return orjson.dumps({"id": message.id, "status": message.status, "result": message.result})


# ---------------------------------------------------------------- decoding


def _load_object(payload: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ContractError("payload must be a JSON object")
    return body


def _free_form(value: Any, field: str) -> Any:
    """Return a free-form value (details, args, result) if it nests at most MAX_DEPTH deep.

    orjson reads up to 1,024 levels, but storing such a value as JSON (and even describing
    the error that fails) exceeds Python's recursion limit near 1,000: it is refused here,
    where it is a dead letter with a reason, not in the writer.
    """
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return value
    raise ContractError(f"{field} is nested deeper than {MAX_DEPTH} levels")


def _check_header(body: Mapping[str, Any], meter_id: str | None) -> str:
    version = body.get("schema_version")
    # type() not isinstance(): `true == 1` in Python, but a boolean is not a version.
    if type(version) is not int or version != SCHEMA_VERSION:
        raise ContractError(f"unsupported schema_version {version!r} (expected {SCHEMA_VERSION})")
    found = body.get("meter_id")
    if not isinstance(found, str) or not _SEGMENT_RE.fullmatch(found):
        raise ContractError("meter_id must be a valid identifier string")
    if meter_id is not None and found != meter_id:
        raise ContractError(f"meter_id {found!r} does not match topic meter {meter_id!r}")
    return found


def _finite(value: Any, name: str, *, minimum: float | None = None) -> float:
    # bool is an int subclass; true/false is never a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ContractError(f"{name} must be finite")
    if minimum is not None and number < minimum:
        raise ContractError(f"{name} {number} is below {minimum}")
    return number


# Every meter reports the same interval starts, so a backlog of a whole fleet names only a
# few hundred distinct timestamps: each is checked and parsed once, then looked up. 16,384
# starts (about 3 MB) are 170 days of intervals, more than the largest message holds
# (MAX_READINGS_PER_MESSAGE), so one message never clears what it is using; cleared when
# full, so a stream that keeps naming new days (a long replay) holds at most that many. At
# 50,000 the cache took 8.7 minutes of the benchmark's soak to fill and was most of the
# worker's memory growth over it.
_START_CACHE: dict[str, datetime] = {}
START_CACHE_MAX: Final = 16_384
_NO_FLAGS: Final[frozenset[str]] = frozenset()


def _on_grid(at: datetime) -> bool:
    return not (int(at.timestamp()) % INTERVAL_SECONDS or at.microsecond)


def _remember(value: str, at: datetime) -> None:
    # Only strings parse_time accepted and that fall on the grid: a hit is a valid start.
    if len(_START_CACHE) >= START_CACHE_MAX:
        _START_CACHE.clear()
    _START_CACHE[value] = at


def _boundary_time(value: Any, name: str) -> datetime:
    """Parse a time that usually falls on an interval boundary, through the starts' cache."""
    cached = _START_CACHE.get(value) if type(value) is str else None
    if cached is not None:
        return cached
    at = parse_time(value, name)
    if _on_grid(at):
        _remember(value, at)
    return at


def _grid_start(value: Any, where: str) -> datetime:
    start = _boundary_time(value, f"{where}.start")
    if not _on_grid(start):
        raise ContractError(f"{where}.start {value!r} is not on the 15-minute grid")
    return start


def _reading(raw: Any, index: int) -> Reading:
    # Only messages msgspec refused come here (see decode_interval): every rule by hand.
    if type(raw) is not dict:
        raise ContractError(f"readings[{index}] must be an object")
    where = f"readings[{index}]"
    start = _grid_start(raw.get("start"), where)
    seconds = raw.get("seconds")
    if seconds != INTERVAL_SECONDS or isinstance(seconds, bool):
        raise ContractError(f"{where}.seconds must be {INTERVAL_SECONDS}")
    voltage = raw.get("voltage")
    if not isinstance(voltage, list) or not 1 <= len(voltage) <= 3:
        raise ContractError(f"{where}.voltage must be a list of 1 to 3 per-phase volts")
    flags = raw.get("flags")
    if flags is None:  # absent or null: no flags
        flags = []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ContractError(f"{where}.flags must be a list of strings")
    unknown = set(flags) - READING_FLAGS
    if unknown:
        raise ContractError(f"{where}.flags has unknown flag(s) {sorted(unknown)}")
    return Reading(
        start=start,
        seconds=INTERVAL_SECONDS,
        kwh=_finite(raw.get("kwh"), f"{where}.kwh", minimum=0.0),
        kvarh=_finite(raw.get("kvarh"), f"{where}.kvarh"),
        demand_kw=_finite(raw.get("demand_kw"), f"{where}.demand_kw", minimum=0.0),
        voltage=tuple(_finite(v, f"{where}.voltage", minimum=0.0) for v in voltage),
        flags=frozenset(flags),
    )


# The wire shape of a well-formed interval message, for msgspec to parse and type-check in C
# (a fifth of the time per reading of orjson plus Python checks). Anything it rejects goes
# through the general checks below, which accept the same messages and name the problem.
_FINITE: Final = 1.7976931348623157e308
_Measure = Annotated[float, msgspec.Meta(ge=0.0, le=_FINITE)]


# A phase the array leaves out; JSON has no NaN, so a NaN here can only be this default.
_NO_PHASE: Final = math.nan


class _Phases(msgspec.Struct, array_like=True, gc=False):
    # One to three per-phase volts. A Struct the collector does not track, not a tuple: with
    # a tuple per reading the worker's collector scanned each of them at least once, about
    # half a microsecond a reading (benchmarks.md).
    a: _Measure
    b: _Measure = _NO_PHASE
    c: _Measure = _NO_PHASE
    # array_like ignores items past the last field: a fourth can only fail to be this.
    beyond: msgspec.UnsetType = msgspec.UNSET


class _WireReading(msgspec.Struct, gc=False):
    start: str
    seconds: Literal[900]
    kwh: _Measure
    kvarh: Annotated[float, msgspec.Meta(ge=-_FINITE, le=_FINITE)]
    demand_kw: _Measure
    voltage: _Phases
    # A tuple, not a frozenset: an empty tuple is one shared object, where msgspec built a
    # new empty frozenset of 216 bytes for every reading (a fifth of the decoding time).
    flags: tuple[str, ...] = ()


class _WireInterval(msgspec.Struct, gc=False):
    schema_version: int
    meter_id: str
    readings: Annotated[
        list[_WireReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)
    ]
    # UNSET, not None: an explicit null is present and wrong, as the general checks say.
    sent_at: Any = msgspec.UNSET
    register: Any = msgspec.UNSET


_WIRE_INTERVAL: Final = msgspec.json.Decoder(_WireInterval)
_START_OF: Final = operator.attrgetter("start")
_KWH_OF: Final = operator.attrgetter("kwh")
_KVARH_OF: Final = operator.attrgetter("kvarh")
_DEMAND_OF: Final = operator.attrgetter("demand_kw")
_VOLTAGE_OF: Final = operator.attrgetter("voltage")
_FLAGS_OF: Final = operator.attrgetter("flags")
_A_OF: Final = operator.attrgetter("a")
_B_OF: Final = operator.attrgetter("b")
_C_OF: Final = operator.attrgetter("c")


def _phase(volts: tuple[float, ...]) -> tuple[float | None, ...]:
    # A phase some reading lacks is None there (NaN only ever marks a missing phase).
    if any(map(math.isnan, volts)):
        return tuple(None if math.isnan(v) else v for v in volts)
    return volts


def decode_interval(payload: bytes, meter_id: str | None = None) -> IntervalMessage:
    """Decode and validate an interval message; `meter_id` is the topic's, if known."""
    try:
        wire = _WIRE_INTERVAL.decode(payload)
    except (msgspec.MsgspecError, RecursionError):  # the general path says why
        return _decode_interval_checked(payload, meter_id)
    if not payload.isascii():
        # msgspec skips unknown fields without checking their UTF-8; orjson does not, and
        # the two paths accept the same messages.
        try:
            payload.decode()
        except UnicodeDecodeError:
            return _decode_interval_checked(payload, meter_id)
    if (
        wire.schema_version != SCHEMA_VERSION
        or not _SEGMENT_RE.fullmatch(wire.meter_id)
        or (meter_id is not None and wire.meter_id != meter_id)
    ):
        return _decode_interval_checked(payload, meter_id)
    # Column by column with C iterators, no Python step per reading: each column a tuple
    # of the values msgspec made (see ReadingColumns).
    rs = wire.readings
    n = len(rs)
    flags: tuple[frozenset[str], ...] = (_NO_FLAGS,) * n
    if any(map(_FLAGS_OF, rs)):
        flags = tuple(frozenset(r.flags) if r.flags else _NO_FLAGS for r in rs)
        if not all(f <= READING_FLAGS for f in flags):
            return _decode_interval_checked(payload, meter_id)
    found = tuple(map(_START_CACHE.get, map(_START_OF, rs)))
    starts = (
        cast(tuple[datetime, ...], found)
        if None not in found
        else tuple(
            start or _grid_start(r.start, f"readings[{index}]")
            for index, (start, r) in enumerate(zip(found, rs, strict=True))
        )
    )
    phases = tuple(map(_VOLTAGE_OF, rs))
    columns = Columns(
        starts,
        tuple(map(_KWH_OF, rs)),
        tuple(map(_KVARH_OF, rs)),
        tuple(map(_DEMAND_OF, rs)),
        tuple(map(_A_OF, phases)),
        _phase(tuple(map(_B_OF, phases))),
        _phase(tuple(map(_C_OF, phases))),
        flags,
    )
    return IntervalMessage(
        meter_id=wire.meter_id,
        readings=ReadingColumns(columns),
        sent_at=None if wire.sent_at is msgspec.UNSET else parse_time(wire.sent_at, "sent_at"),
        register=None if wire.register is msgspec.UNSET else _register(wire.register),
    )


def _decode_interval_checked(payload: bytes, meter_id: str | None) -> IntervalMessage:
    """The general decoder: every rule checked in Python, with the reason for any failure."""
    body = _load_object(payload)
    found = _check_header(body, meter_id)
    readings = body.get("readings")
    if not isinstance(readings, list) or not readings:
        raise ContractError("readings must be a non-empty list")
    if len(readings) > MAX_READINGS_PER_MESSAGE:
        raise ContractError(
            f"readings has {len(readings)} items; at most {MAX_READINGS_PER_MESSAGE}"
        )
    sent_at = parse_time(body["sent_at"], "sent_at") if "sent_at" in body else None
    return IntervalMessage(
        meter_id=found,
        readings=tuple(_reading(raw, i) for i, raw in enumerate(readings)),
        sent_at=sent_at,
        register=_register(body["register"]) if "register" in body else None,
    )


def _register(raw: Any) -> Register:
    if not isinstance(raw, dict):
        raise ContractError("register must be an object")
    return Register(
        # Read at the end of the last interval, which is the next message's first start:
        # parsed once per boundary, not once per message (a fifth of a one-reading
        # message's decoding).
        at=_boundary_time(raw.get("at"), "register.at"),
        kwh=_finite(raw.get("kwh"), "register.kwh", minimum=0.0),
        kvarh=_finite(raw.get("kvarh"), "register.kvarh"),
    )


def decode_event(payload: bytes, meter_id: str | None = None) -> EventMessage:
    """Decode and validate an event message."""
    body = _load_object(payload)
    found = _check_header(body, meter_id)
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
        raise ContractError("event_id must be a string of 1 to 64 characters")
    kind = body.get("type")
    # A str check first: `[] in frozenset` raises TypeError instead of failing the test.
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ContractError(f"unknown event type {kind!r}")
    severity = body.get("severity", "info")
    if not isinstance(severity, str) or severity not in SEVERITIES:
        raise ContractError(f"severity must be one of {', '.join(SEVERITIES)}")
    details = _free_form(body.get("details", {}), "details")
    if not isinstance(details, dict):
        raise ContractError("details must be an object")
    return EventMessage(
        meter_id=found,
        event_id=event_id,
        type=kind,
        at=parse_time(body.get("at"), "at"),
        severity=severity,
        details=details,
    )


def decode_status(payload: bytes, meter_id: str | None = None) -> StatusMessage:
    """Decode and validate a status message."""
    body = _load_object(payload)
    found = _check_header(body, meter_id)
    state = body.get("state")
    if not isinstance(state, str) or state not in STATUS_STATES:
        raise ContractError(f"state must be one of {', '.join(STATUS_STATES)}")
    details = _free_form(body.get("details", {}), "details")
    if not isinstance(details, dict):
        raise ContractError("details must be an object")
    at = parse_time(body["at"], "at") if "at" in body else None
    return StatusMessage(meter_id=found, state=state, at=at, details=details)


def decode_command(payload: bytes) -> Command:
    """Decode and validate a command."""
    body = _load_object(payload)
    command_id = body.get("id")
    if not isinstance(command_id, str) or not 1 <= len(command_id) <= 64:
        raise ContractError("id must be a string of 1 to 64 characters")
    command = body.get("command")
    if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
        raise ContractError("command must be a lower-case identifier")
    args = _free_form(body.get("args", {}), "args")
    if not isinstance(args, dict):
        raise ContractError("args must be an object")
    return Command(id=command_id, command=command, args=args)


def decode_reply(payload: bytes) -> Reply:
    """Decode and validate a command reply."""
    body = _load_object(payload)
    reply_id = body.get("id")
    if not isinstance(reply_id, str) or not 1 <= len(reply_id) <= 64:
        raise ContractError("id must be a string of 1 to 64 characters")
    status = body.get("status")
    if not isinstance(status, str) or status not in REPLY_STATUSES:
        raise ContractError(f"status must be one of {', '.join(REPLY_STATUSES)}")
    return Reply(id=reply_id, status=status, result=_free_form(body.get("result"), "result"))


def decode(topic: str, payload: bytes, prefix: str = DEFAULT_PREFIX) -> tuple[Topic, Message]:
    """Decode any message by its topic kind, or raise ContractError with the reason."""
    parsed = parse_topic(topic, prefix)
    message: Message
    if parsed.kind == "interval":
        message = decode_interval(payload, parsed.meter_id)
    elif parsed.kind == "event":
        message = decode_event(payload, parsed.meter_id)
    elif parsed.kind == "status":
        message = decode_status(payload, parsed.meter_id)
    elif parsed.kind == "cmd":
        message = decode_command(payload)
    else:
        message = decode_reply(payload)
    return parsed, message
