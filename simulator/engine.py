"""The device engine: every meter's clock, memory, call-in schedule, events and commands.

Pure and deterministic: `step()` completes one 15-minute interval for the whole fleet and
returns the messages the meters send because of it, as (kind, row, payload, retain); the
publisher only moves them to a broker. Time comes from the interval counter, randomness
from counter-based hashes of the seed, so the same fleet, seed and incidents give the same
byte stream however fast it is replayed.

Store-and-forward: each meter remembers the first interval it has not delivered yet
(`unsent_from`). A call that gets through carries everything from there to the newest
interval and moves the mark; a failed call, a comms outage or a power cut just leaves it.
Readings are a pure function of (meter, interval), so the backlog is rebuilt exactly on
delivery: nothing is lost, and nothing is sent twice by the meter itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from app.domain.telemetry import (
    INTERVAL_SECONDS,
    MAX_READINGS_PER_MESSAGE,
    Command,
    ContractError,
    EventMessage,
    IntervalMessage,
    Kind,
    Register,
    Reply,
    StatusMessage,
    encode_event,
    encode_interval,
    encode_reply,
    encode_status,
    format_time,
    parse_time,
    reading_to_dict,
)
from simulator import hashing
from simulator.fleet import SCHEDULES, Meter
from simulator.incidents import Incident, active, effects_of
from simulator.model import (
    EPOCH,
    FLAG_BITS,
    REGION_OFFSET_SLOTS,
    SLOTS_PER_DAY,
    Block,
    FleetArrays,
    dst_table,
    interval_index,
    to_readings,
)
from simulator.radio import Radios

log = logging.getLogger(__name__)

MAX_READ_INTERVALS: Final = 96 * 7
# Meters keep 60 days of intervals; older ones are overwritten.
MEMORY_INTERVALS: Final = 96 * 60
# The furthest a time_sync may move a meter's clock: a year, far past any real clock error.
MAX_CLOCK_STEP: Final = timedelta(days=366)
SCHEDULE_PERIOD: Final[dict[str, int]] = {"live": 1, "hourly": 4, "daily": SLOTS_PER_DAY}
DEMAND_THRESHOLD_RATIO: Final = 1.0  # of the design peak: a new-peak alarm for the demand charge
# The alarm re-arms only once demand falls this far below the threshold: a load hovering at
# its peak raised one alarm for every 0.3 % wobble across it (21 in six days at one meter).
DEMAND_REARM_RATIO: Final = 0.95
CLOCK_DRIFT_ALARM_S: Final = 60.0
FAILED_CALLS_ALARM: Final = 3
COMMANDS: Final = (
    "ping",
    "read",
    "time_sync",
    "demand_reset",
    "set_schedule",
    "disconnect",
    "connect",
)
FIRMWARE: Final = {"Meridian": "4.2.0", "Apex Metering": "2.4.1", "Northstar": "1.9.3"}
_CH_PHASE: Final = 301
_CH_OPENING: Final = 302
# Registers are a function of meter and time, so a restarted simulator carries on from where
# the last run's meters stood instead of from 0 (which a head-end would take for a meter
# change). Summing every interval since a fixed date costs ~30 s a year at 10,000 meters, so
# time is cut into 7-day windows from 1970-01-01 (summing one costs at most 0.5 s at 10,000
# meters): a window's energy is summed exactly from its start, and every whole window before
# it since 2000-01-01 (the earliest interval the ingest and the backfill accept) counts
# REGISTER_WINDOW_KW (of the design peak) for its 168 hours, above any window's mean demand
# (a 24/7 site's reaches about 0.98 of it; a week-long +30 C heat wave 0.86 at most). So a
# run starting in a later window reads higher than the last one's meters at that time, never
# lower, and two runs starting in the same window read identical registers (while they
# share their incidents and commands, which change the energy). Each meter adds its own
# opening reading, so no two read alike.
REGISTER_WINDOW_INTERVALS: Final = 7 * SLOTS_PER_DAY
REGISTER_WINDOW_KW: Final = 1.25
_COUNTED_FROM: Final = 10957 * SLOTS_PER_DAY // REGISTER_WINDOW_INTERVALS  # 2000-01-01's window
_OPENING_HOURS: Final = 4380.0  # opening readings up to half a year at the design peak
_MAX_BLOCK_VALUES: Final = 200_000
_BACKFILL: Final = FLAG_BITS["backfill"]
_CLOCK_ADJUSTED: Final = FLAG_BITS["clock_adjusted"]
_KIND_ORDER: Final[dict[str, int]] = {"status": 0, "event": 1, "interval": 2, "reply": 3}


@dataclass(frozen=True, slots=True)
class Out:
    """One message a meter sends: its kind, the fleet row, the payload and the retain flag."""

    kind: Kind
    row: int
    payload: bytes
    retain: bool = False


@dataclass(slots=True)
class _Pending:
    """An event a meter has logged but not delivered yet."""

    type: str
    at_s: float
    severity: str
    details: dict[str, Any]


@dataclass(slots=True)
class _Span:
    """Intervals [lo, hi) during which a meter's relay was open (hi None: still open)."""

    lo: int
    hi: int | None = None


@dataclass(slots=True)
class EngineStats:
    """What the engine has produced so far."""

    intervals: int = 0
    interval_messages: int = 0
    readings_sent: int = 0
    events: int = 0
    statuses: int = 0
    replies: int = 0
    failed_calls: int = 0
    backlog: int = 0
    by_event: dict[str, int] = field(default_factory=dict)


class CommandError(ValueError):
    """Raise inside command handling when the command or its arguments are unusable."""


class Engine:
    """Simulate a fleet's devices interval by interval (see the module docstring)."""

    def __init__(
        self,
        meters: Sequence[Meter],
        *,
        seed: int,
        start: datetime,
        incidents: Sequence[Incident] = (),
        clock_skew_s: NDArray[np.float64] | None = None,
        backlog_days: float = 0.0,
    ) -> None:
        """Prepare the fleet at `start` (on the 15-minute grid) with scripted incidents.

        `backlog_days`: every meter starts with that much history not yet delivered, so its
        first successful call uploads it (history over MQTT instead of a database backfill).
        """
        self.meters = list(meters)
        self.seed = seed
        self.incidents = tuple(incidents)
        n = len(self.meters)
        self.arrays = FleetArrays.build(self.meters, seed, effects_of(self.incidents))
        self.radios = Radios.build(self.meters, seed, int(start.timestamp()))
        self.t0 = interval_index(start)
        self.t = self.t0  # the interval that completes on the next step()
        self.unsent_from = np.full(n, self.t0, dtype=np.int64)
        self.schedule = np.array([SCHEDULES.index(m.schedule) for m in self.meters], np.intp)
        phase_u = hashing.uniform(hashing.row_keys(seed, _CH_PHASE, self.arrays.index))
        # Hourly meters call at one of the four quarters; daily ones between 00:15 and 04:00.
        self.hourly_phase = np.floor(phase_u * 4).astype(np.int64)
        self.daily_slot = 1 + np.floor(phase_u * 16).astype(np.int64)
        backlog = round(backlog_days * SLOTS_PER_DAY)
        if not 0 <= backlog <= MEMORY_INTERVALS:
            raise ValueError(f"backlog_days must be between 0 and {MEMORY_INTERVALS // 96}")
        # The backlog is history before t0: the registers at t0 already hold its energy.
        self.reg_kwh, self.reg_kvarh = self._registers_at(self.t0)
        self.max_demand = np.zeros(n)
        self.demand_armed = np.ones(n, dtype=np.bool_)
        self.threshold_kw = np.array([m.peak_kw for m in self.meters]) * DEMAND_THRESHOLD_RATIO
        self.skew_s = np.zeros(n) if clock_skew_s is None else np.asarray(clock_skew_s, float)
        self.failures = np.zeros(n, dtype=np.int64)
        self.reachable = np.ones(n, dtype=np.bool_)
        self.relay_open: dict[int, list[_Span]] = {}
        self.clock_adjusted: dict[int, set[int]] = {}
        self.pending: dict[int, list[_Pending]] = {}
        self.async_results: list[tuple[int, int, Command]] = []  # (due interval, row, command)
        self.held_replies: dict[int, list[Reply]] = {}  # results of a meter whose link is down
        self._event_seq = np.zeros(n, dtype=np.int64)
        self._gasp: list[int] = []  # meters sending a last-gasp alarm this step
        if backlog:
            self._preload(self.t0 - backlog, backlog)
        self.stats = EngineStats()

    def _registers_at(self, t: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return every meter's kWh and kVArh registers at the start of interval `t`."""
        window = t // REGISTER_WINDOW_INTERVALS
        anchor = window * REGISTER_WINDOW_INTERVALS
        opening = hashing.uniform(hashing.row_keys(self.seed, _CH_OPENING, self.arrays.index))
        # Before 2000 no window is counted whole: the guarantees above hold from 2000 on.
        whole = max(window - _COUNTED_FROM, 0)
        hours = REGISTER_WINDOW_INTERVALS * INTERVAL_SECONDS / 3600
        counted = whole * hours * REGISTER_WINDOW_KW + opening * _OPENING_HOURS
        kwh = np.round(counted * self.arrays.design_kw, 3)
        kvarh = np.round(kwh * self.arrays.tan_phi, 3)
        count = t - anchor
        if count:
            step = max(1, _MAX_BLOCK_VALUES // count)
            for lo in range(0, len(self.meters), step):
                rows = np.arange(lo, min(lo + step, len(self.meters)), dtype=np.intp)
                past = self.arrays.block(anchor, count, rows)
                kwh[rows] += past.kwh.sum(axis=1)
                kvarh[rows] += past.kvarh.sum(axis=1)
        return kwh, kvarh

    def _preload(self, first: int, count: int) -> None:
        """Put intervals first .. first+count-1 in every meter's memory (and its max demand)."""
        self.unsent_from[:] = first
        step = max(1, _MAX_BLOCK_VALUES // count)
        for lo in range(0, len(self), step):
            rows = np.arange(lo, min(lo + step, len(self)), dtype=np.intp)
            past = self.arrays.block(first, count, rows)
            self.max_demand[rows] = past.demand_kw.max(axis=1)

    # ------------------------------------------------------------ time

    @property
    def now(self) -> datetime:
        """Return the simulated time: the end of the last completed interval."""
        return EPOCH + timedelta(seconds=self.t * INTERVAL_SECONDS)

    def __len__(self) -> int:
        """Return the number of meters."""
        return len(self.meters)

    # ------------------------------------------------------------ lifecycle

    def start_messages(self) -> list[Out]:
        """Return what meters send on start: retained online statuses and standing alarms."""
        at_s = self.t * INTERVAL_SECONDS
        # An incident starting at the very start happens now: its events are logged too.
        self._incident_events(at_s - 1, at_s)
        self.reachable = ~self._comms_down(at_s)
        out = [
            self._status(r, "online", at_s)
            if self.reachable[r]
            else self._status(r, "offline", at_s, reason=self._down_reason(r, at_s))
            for r in range(len(self))
        ]
        for r in np.flatnonzero(self.radios.low_signal()).tolist():
            self._log_event(
                r, "low_signal", at_s, "warning", {"signal_dbm": self.meters[r].signal_dbm}
            )
        for r in np.flatnonzero(np.abs(self.skew_s) >= CLOCK_DRIFT_ALARM_S).tolist():
            self._log_event(
                r, "clock_drift", at_s, "warning", {"drift_s": round(float(self.skew_s[r]), 3)}
            )
        out += self._deliver_events(at_s)
        return out

    def status_messages(self, rows: NDArray[np.bool_]) -> list[Out]:
        """Return retained online statuses for the meters in `rows` (after a reconnect)."""
        at_s = self.t * INTERVAL_SECONDS
        return [self._status(r, "online", at_s) for r in np.flatnonzero(rows).tolist()]

    def stop_messages(self) -> list[Out]:
        """Return the retained offline statuses of a clean shutdown (of the meters online).

        A meter already offline keeps its retained status and its reason (an outage, a
        sunset): "shutdown" would tell a head-end the meter had merely been stopped.
        """
        at_s = self.t * INTERVAL_SECONDS
        return [
            self._status(r, "offline", at_s, reason="shutdown")
            for r in np.flatnonzero(self.reachable).tolist()
        ]

    # ------------------------------------------------------------ one interval

    def add_incidents(self, incidents: Sequence[Incident]) -> None:
        """Add incidents while running (a presenter's "now"); readings follow from here on."""
        self.incidents = (*self.incidents, *incidents)
        # Only the effects change; the per-meter parameters and shape tables stay as built.
        self.arrays = dataclasses.replace(self.arrays, effects=effects_of(self.incidents))

    def step(self) -> list[Out]:
        """Complete interval `t` for every meter and return the messages that causes."""
        t = self.t
        t_start, t_end = t * INTERVAL_SECONDS, (t + 1) * INTERVAL_SECONDS
        rows = np.arange(len(self), dtype=np.intp)
        block = self.arrays.compute(np.full(len(self), t, dtype=np.int64), rows)
        self._adjust(block)
        self.reg_kwh += block.kwh
        self.reg_kvarh += block.kvarh
        self.max_demand = np.maximum(self.max_demand, block.demand_kw)
        out: list[Out] = []

        self._incident_events(t_start, t_end)
        crossed = self.demand_armed & (block.demand_kw > self.threshold_kw)
        for r in np.flatnonzero(crossed).tolist():
            self._log_event(
                r,
                "demand_threshold",
                t_end,
                "warning",
                {
                    "demand_kw": float(block.demand_kw[r]),
                    "threshold_kw": round(float(self.threshold_kw[r]), 3),
                    "interval_start": format_time(EPOCH + timedelta(seconds=t_start)),
                },
            )
        self.demand_armed = (self.demand_armed & ~crossed) | (
            block.demand_kw < self.threshold_kw * DEMAND_REARM_RATIO
        )

        # Reachability at the end of the interval drives the retained status. A meter coming
        # back says "online" before its stored events; one going down gets its last gasp out
        # before the "offline" (the broker's will, or the gateway, reports that).
        down = self._comms_down(t_end)
        going_down = np.flatnonzero(down & self.reachable).tolist()
        out += [
            self._status(r, "online", t_end)
            for r in np.flatnonzero(~down & ~self.reachable).tolist()
        ]
        self.reachable = ~down
        out += self._deliver_events(t_end)
        out += self._deliver_held_replies()
        out += [
            self._status(r, "offline", t_end, reason=self._down_reason(r, t_end))
            for r in going_down
        ]
        out += self._calls(t, t_end, block)
        out += self._finish_async(t, t_end)
        self.t = t + 1
        self.stats.intervals += 1
        self.stats.backlog = int((self.t - self.unsent_from).sum())
        return out

    def _incident_events(self, t_start: int, t_end: int) -> None:
        for inc in self.incidents:
            for edge_s, starting in ((inc.start_s, True), (inc.end_s, False)):
                if not t_start < edge_s <= t_end or edge_s < self.t0 * INTERVAL_SECONDS:
                    continue
                kind = _EDGE_EVENTS.get((inc.kind, starting))
                if kind is None:
                    continue
                etype, severity = kind
                for r in np.flatnonzero(inc.rows).tolist():
                    details: dict[str, Any] = {"incident": inc.name}
                    if inc.kind == "outage" and starting:
                        details["phases_lost"] = ["A", "B", "C"]
                        details["last_gasp"] = True
                    if inc.kind == "network_sunset":
                        details["network"] = self.meters[r].network
                    self._log_event(r, etype, edge_s, severity, details)
                    if etype == "power_outage":
                        # Last gasp: the supercapacitor powers one alarm call as the lights go out.
                        self._gasp.append(r)

    def _comms_down(self, at_s: int) -> NDArray[np.bool_]:
        n = len(self)
        down = active(self.incidents, ("comms_outage", "network_sunset", "outage"), at_s, n)
        result: NDArray[np.bool_] = down | (self.radios.sunset_s <= at_s)
        return result

    def _down_reason(self, row: int, at_s: int) -> str:
        for inc in self.incidents:
            if inc.rows[row] and inc.start_s <= at_s < inc.end_s:
                if inc.kind == "outage":
                    return "power_outage"
                if inc.kind in ("comms_outage", "network_sunset"):
                    return inc.kind
        return "network_sunset" if self.radios.sunset_s[row] <= at_s else "comms_failure"

    # ------------------------------------------------------------ calls and backlog

    def _due(self, t: int) -> NDArray[np.bool_]:
        period = np.array([SCHEDULE_PERIOD[s] for s in SCHEDULES])[self.schedule]
        # The daily call window is clock time (00:15-04:00 local), DST included; not the
        # buildings' opening-time jitter in shift_slots, which moved calls outside it.
        region = self.arrays.region
        clocks = REGION_OFFSET_SLOTS[region] + dst_table(t + 1, 1)[region, 0]
        local_next = t + 1 + clocks
        hourly = (t + 1) % 4 == self.hourly_phase
        daily = local_next % SLOTS_PER_DAY == self.daily_slot
        result: NDArray[np.bool_] = np.where(
            period == 1, True, np.where(period == 4, hourly, daily)
        )
        return result

    def _calls(self, t: int, t_end: int, block: Block) -> list[Out]:
        want = self.reachable & (self.unsent_from <= t) & self._due(t)
        rows = np.flatnonzero(want).astype(np.intp)
        if not len(rows):
            return []
        ok, latency = self.radios.call(rows, t, t_end)
        failed = rows[~ok]
        self.stats.failed_calls += len(failed)
        self.failures[failed] += 1
        for r in failed[self.failures[failed] == FAILED_CALLS_ALARM].tolist():
            self._log_event(
                r, "comms_failure", t_end, "warning", {"failed_calls": FAILED_CALLS_ALARM}
            )
        sent = rows[ok]
        recovered = sent[self.failures[sent] >= FAILED_CALLS_ALARM]
        for r in recovered.tolist():
            self._log_event(
                r, "comms_restored", t_end, "info", {"failed_calls": int(self.failures[r])}
            )
        self.failures[sent] = 0
        out: list[Out] = []
        if len(recovered):
            out += self._deliver_events(t_end, recovered)
        lat = dict(zip(sent.tolist(), latency[ok].tolist(), strict=True))
        firsts = self.unsent_from[sent]
        for first in np.unique(firsts).tolist():
            group = sent[firsts == first]
            if first == t:
                out += self._messages(_take(block, group), group, t_end, lat)
                continue
            count = t - first + 1
            # Bounded blocks: a long backlog for a big fleet would not fit in memory at once.
            step = max(1, _MAX_BLOCK_VALUES // count)
            for lo in range(0, len(group), step):
                part = group[lo : lo + step]
                sub = self.arrays.block(first, count, part)
                self._adjust(sub)
                period = np.array([SCHEDULE_PERIOD[SCHEDULES[s]] for s in self.schedule[part]])
                late = sub.interval < (t + 1 - period)[:, None]
                sub = _with_flags(sub, np.where(late, _BACKFILL, 0).astype(np.uint8))
                out += self._messages(sub, part, t_end, lat)
        self.unsent_from[sent] = t + 1
        return out

    def _messages(
        self, sub: Block, rows: NDArray[np.intp], t_end: int, lat: dict[int, float]
    ) -> list[Out]:
        """Encode each row's readings of `sub` as interval messages (split at the size limit)."""
        out: list[Out] = []
        readings_by_row = to_readings(sub)
        width = 1 if sub.kwh.ndim == 1 else sub.kwh.shape[1]
        for k, r in enumerate(rows.tolist()):
            readings = readings_by_row[k * width : (k + 1) * width]
            sent_at = t_end + lat[r] + float(self.skew_s[r])
            register = Register(
                at=EPOCH + timedelta(seconds=t_end),
                kwh=float(self.reg_kwh[r]),
                kvarh=float(self.reg_kvarh[r]),
            )
            for lo in range(0, len(readings), MAX_READINGS_PER_MESSAGE):
                chunk = tuple(readings[lo : lo + MAX_READINGS_PER_MESSAGE])
                message = IntervalMessage(
                    self.meters[r].id,
                    chunk,
                    sent_at=EPOCH + timedelta(seconds=sent_at),
                    register=register if lo + len(chunk) == len(readings) else None,
                )
                out.append(Out("interval", r, encode_interval(message)))
                self.stats.interval_messages += 1
            self.stats.readings_sent += len(readings)
        return out

    # ------------------------------------------------------------ device state on readings

    def _adjust(self, block: Block) -> None:
        """Apply relay state and clock-adjusted flags to readings computed by the model."""
        if not self.relay_open and not self.clock_adjusted:
            return
        rows, t = block.rows, block.interval
        for r, spans in self.relay_open.items():
            for span in spans:
                hit = (rows == r) & (t >= span.lo)
                if span.hi is not None:
                    hit &= t < span.hi
                if hit.any():
                    block.kwh[hit] = 0.0
                    block.kvarh[hit] = 0.0
                    block.demand_kw[hit] = 0.0
        for r, marks in self.clock_adjusted.items():
            hit = (rows == r) & np.isin(t, list(marks))
            block.flags[hit] |= _CLOCK_ADJUSTED

    def readings(self, row: int, first: int, count: int) -> list[dict[str, Any]]:
        """Return a meter's stored intervals first .. first+count-1 as JSON-ready dicts."""
        if count <= 0:
            return []
        sub = self.arrays.block(first, count, np.array([row], dtype=np.intp))
        self._adjust(sub)
        return [reading_to_dict(r) for r in to_readings(sub)]

    # ------------------------------------------------------------ events and statuses

    def _log_event(
        self, row: int, etype: str, at_s: float, severity: str, details: dict[str, Any]
    ) -> None:
        self.pending.setdefault(row, []).append(_Pending(etype, at_s, severity, details))

    def _deliver_events(self, at_s: float, rows: NDArray[np.intp] | None = None) -> list[Out]:
        out: list[Out] = []
        gasp = set(self._gasp)
        self._gasp.clear()
        candidates = sorted(self.pending) if rows is None else sorted(set(rows.tolist()))
        for r in candidates:
            if not (self.reachable[r] or r in gasp):
                continue
            if rows is None and self.failures[r] >= FAILED_CALLS_ALARM and r not in gasp:
                # Its calls are failing: what it logged (comms_failure first) goes out with
                # the call that gets through (`_calls` delivers it with comms_restored).
                continue
            events = self.pending.pop(r, [])
            if not self.reachable[r]:
                # Only the last gasp itself gets out on the stored energy; the rest waits.
                keep = [e for e in events if e.type != "power_outage"]
                events = [e for e in events if e.type == "power_outage"]
                if keep:
                    self.pending[r] = keep
            out += [self._event(r, e) for e in events]
        return out

    def _event(self, row: int, e: _Pending) -> Out:
        meter = self.meters[row]
        self._event_seq[row] += 1
        at = EPOCH + timedelta(seconds=e.at_s + float(self.skew_s[row]))
        message = EventMessage(
            meter_id=meter.id,
            event_id=f"{e.type}-{int(e.at_s)}-{int(self._event_seq[row])}",
            type=e.type,
            at=at,
            severity=e.severity,
            details=e.details,
        )
        self.stats.events += 1
        self.stats.by_event[e.type] = self.stats.by_event.get(e.type, 0) + 1
        return Out("event", row, encode_event(message))

    def _status(self, row: int, state: str, at_s: float, *, reason: str | None = None) -> Out:
        meter = self.meters[row]
        details: dict[str, Any] = (
            {
                "firmware": FIRMWARE.get(meter.vendor, "1.0.0"),
                "vendor": meter.vendor,
                "model": meter.model,
                "form_factor": meter.form_factor,
                "network": meter.network,
                "signal_dbm": meter.signal_dbm,
                "schedule": SCHEDULES[int(self.schedule[row])],
            }
            if state == "online"
            else {"reason": reason or "shutdown"}
        )
        message = StatusMessage(
            meter.id, state, at=EPOCH + timedelta(seconds=at_s), details=details
        )
        self.stats.statuses += 1
        return Out("status", row, encode_status(message), retain=True)

    # ------------------------------------------------------------ commands

    def command(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        """Answer a head-end command as meter `row` at simulated time `now`; never raises."""
        try:
            handler = _HANDLERS.get(cmd.command)
            if handler is None:
                raise CommandError(
                    f"unknown command {cmd.command!r}; supported: {', '.join(COMMANDS)}"
                )
            return handler(self, row, cmd, now)
        except (CommandError, ContractError) as exc:
            return [self._reply(row, Reply(cmd.id, "error", {"error": str(exc)}))]
        except Exception as exc:  # a bug must cost one reply, never the simulator
            log.exception("command %s for %s failed", cmd.command, self.meters[row].id)
            return [self._reply(row, Reply(cmd.id, "error", {"error": f"internal error: {exc}"}))]

    def _reply(self, row: int, reply: Reply) -> Out:
        self.stats.replies += 1
        return Out("reply", row, encode_reply(reply))

    def _meter_time(self, row: int, now: datetime) -> datetime:
        return now + timedelta(seconds=float(self.skew_s[row]))

    def _ping(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        meter = self.meters[row]
        result = {
            "meter_id": meter.id,
            "time": format_time(self._meter_time(row, now)),
            "network": meter.network,
            "signal_dbm": meter.signal_dbm,
            "schedule": SCHEDULES[int(self.schedule[row])],
            "relay": "open" if self._relay_is_open(row) else "closed",
            "vendor": meter.vendor,
            "model": meter.model,
            "firmware": FIRMWARE.get(meter.vendor, "1.0.0"),
        }
        return [self._reply(row, Reply(cmd.id, "ok", result))]

    def _read(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        meter = self.meters[row]
        what = cmd.args.get("what")
        as_of = self.now
        if what == "registers":
            result: dict[str, Any] = {
                "meter_id": meter.id,
                "as_of": format_time(as_of),
                "registers": {
                    "kwh": round(float(self.reg_kwh[row]), 3),
                    "kvarh": round(float(self.reg_kvarh[row]), 3),
                    "max_demand_kw": round(float(self.max_demand[row]), 3),
                },
            }
            return [self._reply(row, Reply(cmd.id, "ok", result))]
        if what == "intervals":
            start = parse_time(cmd.args.get("start"), "args.start")
            end = parse_time(cmd.args.get("end"), "args.end")
            if end <= start:
                raise CommandError("args.end must be after args.start")
            first = -(-int(start.timestamp()) // INTERVAL_SECONDS)
            last = -(-min(int(end.timestamp()), int(as_of.timestamp())) // INTERVAL_SECONDS)
            count = max(0, last - first)
            if count > MAX_READ_INTERVALS:
                raise CommandError(
                    f"range covers {count} intervals; at most {MAX_READ_INTERVALS} per read"
                )
            oldest = max(self.t - MEMORY_INTERVALS, 0)
            if count and first < oldest:
                raise CommandError(
                    f"args.start is older than the meter's memory ({MEMORY_INTERVALS // 96} days)"
                )
            result = {"meter_id": meter.id, "readings": self.readings(row, first, count)}
            return [self._reply(row, Reply(cmd.id, "ok", result))]
        raise CommandError("args.what must be 'registers' or 'intervals'")

    def _time_sync(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        target = parse_time(cmd.args["time"], "args.time") if "time" in cmd.args else now
        if abs(target - now) > MAX_CLOCK_STEP:
            # A meter's clock set to 9999 was accepted, and its next interval's time then
            # overflowed and stopped the simulator.
            raise CommandError(
                f"args.time is more than {MAX_CLOCK_STEP.days} days from the simulated time"
            )
        before = self._meter_time(row, now)
        adjusted = (target - before).total_seconds()
        # The meter's clock becomes the head-end's: its skew is now the head-end's own error.
        self.skew_s[row] = (target - now).total_seconds()
        self.clock_adjusted.setdefault(row, set()).add(self.t)
        out = [self._reply(row, Reply(cmd.id, "ok", {"adjusted_by_s": round(adjusted, 3)}))]
        if abs(self.skew_s[row]) >= CLOCK_DRIFT_ALARM_S:
            # A head-end that set the clock wrong sees the same alarm as one that drifted.
            at_s = now.timestamp() - EPOCH.timestamp()
            drift = {"drift_s": round(float(self.skew_s[row]), 3)}
            self._log_event(row, "clock_drift", at_s, "warning", drift)
            out += self._deliver_events(at_s, np.array([row], dtype=np.intp))
        return out

    def _demand_reset(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        previous = round(float(self.max_demand[row]), 3)
        self.max_demand[row] = 0.0
        at_s = now.timestamp() - EPOCH.timestamp()
        self._log_event(row, "demand_reset", at_s, "info", {"max_demand_kw": previous})
        out = [self._reply(row, Reply(cmd.id, "ok", {"max_demand_kw": previous}))]
        return out + self._deliver_events(at_s, np.array([row], dtype=np.intp))

    def _set_schedule(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        new = cmd.args.get("schedule")
        if not isinstance(new, str) or new not in SCHEDULES:
            raise CommandError(f"args.schedule must be one of {', '.join(SCHEDULES)}")
        previous = SCHEDULES[int(self.schedule[row])]
        self.schedule[row] = SCHEDULES.index(new)
        result = {"schedule": new, "previous": previous}
        return [self._reply(row, Reply(cmd.id, "ok", result))]

    def _relay(self, row: int, cmd: Command, now: datetime) -> list[Out]:
        # The relay operates at the next interval boundary; the result follows as a second reply.
        self.async_results.append((self.t, row, cmd))
        state = "opening" if cmd.command == "disconnect" else "closing"
        return [self._reply(row, Reply(cmd.id, "accepted", {"relay": state}))]

    def _relay_is_open(self, row: int) -> bool:
        spans = self.relay_open.get(row, [])
        return bool(spans) and spans[-1].hi is None

    def _finish_async(self, t: int, t_end: int) -> list[Out]:
        out: list[Out] = []
        due = [a for a in self.async_results if a[0] <= t]
        self.async_results = [a for a in self.async_results if a[0] > t]
        powered_off = active(self.incidents, ("outage",), t_end, len(self))
        for _, row, cmd in due:
            at = format_time(EPOCH + timedelta(seconds=t_end))
            if powered_off[row]:
                reply = Reply(
                    cmd.id, "error", {"error": "no supply to operate the relay", "at": at}
                )
            else:
                spans = self.relay_open.setdefault(row, [])
                is_open = self._relay_is_open(row)
                if cmd.command == "disconnect" and not is_open:
                    spans.append(_Span(t + 1))
                elif cmd.command == "connect" and is_open:
                    spans[-1].hi = t + 1
                relay = "open" if cmd.command == "disconnect" else "closed"
                reply = Reply(cmd.id, "ok", {"relay": relay, "at": at})
            if self.reachable[row]:
                out.append(self._reply(row, reply))
            else:
                # The relay moved, but the link is down: the result waits for it, as the
                # meter's intervals and events do.
                self.held_replies.setdefault(row, []).append(reply)
        return out

    def _deliver_held_replies(self) -> list[Out]:
        out: list[Out] = []
        for row in [r for r in self.held_replies if self.reachable[r]]:
            out += [self._reply(row, reply) for reply in self.held_replies.pop(row)]
        return out


_EDGE_EVENTS: Final[dict[tuple[str, bool], tuple[str, str]]] = {
    ("outage", True): ("power_outage", "critical"),
    ("outage", False): ("power_restored", "info"),
    ("tamper", True): ("tamper", "critical"),
    ("reverse_rotation", True): ("reverse_rotation", "warning"),
    ("comms_outage", True): ("comms_failure", "warning"),
    ("comms_outage", False): ("comms_restored", "info"),
    ("network_sunset", True): ("comms_failure", "critical"),
}

_HANDLERS: Final = {
    "ping": Engine._ping,
    "read": Engine._read,
    "time_sync": Engine._time_sync,
    "demand_reset": Engine._demand_reset,
    "set_schedule": Engine._set_schedule,
    "disconnect": Engine._relay,
    "connect": Engine._relay,
}


def _take(block: Block, rows: NDArray[np.intp]) -> Block:
    """Return the rows of a one-interval (1-d) block."""
    return Block(
        interval=block.interval[rows],
        rows=block.rows[rows],
        kwh=block.kwh[rows],
        kvarh=block.kvarh[rows],
        demand_kw=block.demand_kw[rows],
        voltage=block.voltage[rows],
        flags=block.flags[rows],
        temperature_c=block.temperature_c[rows]
        if block.temperature_c.size
        else block.temperature_c,
    )


def _with_flags(block: Block, extra: NDArray[np.uint8]) -> Block:
    return Block(
        interval=block.interval,
        rows=block.rows,
        kwh=block.kwh,
        kvarh=block.kvarh,
        demand_kw=block.demand_kw,
        voltage=block.voltage,
        flags=block.flags | extra,
        temperature_c=block.temperature_c,
    )


def sort_key(out: Out) -> tuple[int, int]:
    """Order messages within a step: statuses, events, intervals, replies; then by row."""
    return _KIND_ORDER[out.kind], out.row
