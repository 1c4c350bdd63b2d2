"""Publish a simulated fleet over MQTT and answer its commands (the simulator's only paho user).

The device engine (`simulator.engine`) decides what every meter sends; this module only
paces it against the wall clock and moves it to a broker, through one of two transports:

- ``shared`` (default): one paho client for the whole fleet, like a gateway. Each meter's
  messages still go to its own `{prefix}/{utility}/{meter}/{kind}` topics. A connection has
  only one last will, so the gateway publishes every meter's retained "offline" itself on a
  clean stop; a crash leaves them "online" (judge liveness by the last interval too).
- ``per-meter``: one paho client per meter, each with its own last will ("offline",
  retained) and its own `cmd` subscription, as real endpoints connect. Costs a socket per
  meter: meant for fleets of up to a few thousand.

The paho network loops are driven from the publishing thread itself (`client.loop()`), not
by `loop_start()` (measured 2-2.5x faster for a publisher); commands arrive through
`on_message` in the same thread, where they are only queued and answered between intervals.

Determinism: with a `duration`, the publisher completes exactly floor(duration x speed /
900) intervals (catching up rather than skipping if it falls behind), so the same
scenario, seed, speed and duration publish the same payloads in the same order.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.domain.telemetry import (
    DEFAULT_PREFIX,
    INTERVAL_SECONDS,
    Command,
    ContractError,
    Kind,
    Reply,
    StatusMessage,
    decode_command,
    encode_reply,
    encode_status,
    parse_topic,
    subscription,
    topic_for,
)
from app.mqtt import CONNECT_TIMEOUT_S, PublishWindow, ReadAheadSocket, connect, make_client
from simulator.clock import SimClock
from simulator.control import ControlError, ControlRequest, control_topic, parse_control
from simulator.engine import Engine, Out
from simulator.faults import FaultInjector, FaultRates, clock_skews
from simulator.fleet import Meter
from simulator.incidents import Incident, cut_to_shard
from simulator.model import INTERVAL
from simulator.scenario import Scenario, ScenarioError

log = logging.getLogger(__name__)
# How long (wall seconds) a command waits for a meter's link: under the portal's 30 s
# command timeout, so a meter back from a short outage still answers it.
COMMAND_HOLD_S: Final = 25.0

Connections = Literal["shared", "per-meter"]
CONNECTIONS: Final[tuple[Connections, ...]] = ("shared", "per-meter")
# Module-level timing constants so tests (or a slow broker) can change them.
DRAIN_TIMEOUT_S = 30.0
IDLE_POLL_S = 0.1
RECONNECT_DELAYS_S: Final = (0.5, 1.0, 2.0, 5.0)
LOG_EVERY_INTERVALS = 96
# paho rescans every unacknowledged message on each PUBACK (Client._update_inflight), so a
# smaller window is cheaper per ack: 200 measured ~20 % faster than 500 on loopback Mosquitto.
DEFAULT_WINDOW = 200
PER_METER_WINDOW = 20
_KINDS_PUBLISHED: Final[tuple[Kind, ...]] = ("interval", "event", "status", "reply", "cmd")

Recorder = Callable[[str, bytes, bool], None]


@dataclass(slots=True)
class PublisherStats:
    """Counters of what a FleetPublisher has done so far."""

    intervals: int = 0
    interval_messages: int = 0
    event_messages: int = 0
    status_messages: int = 0
    published: int = 0
    commands_answered: int = 0
    commands_rejected: int = 0
    reconnect_bursts: int = 0
    first_interval: datetime | None = None
    last_interval: datetime | None = None
    sim_time: datetime | None = None
    lag_seconds: float = 0.0
    wall_seconds: float = 0.0

    def summary(self) -> str:
        """Render a one-line summary for logs."""
        rate = self.published / self.wall_seconds if self.wall_seconds else 0.0
        span = (
            f"{self.first_interval:%Y-%m-%d %H:%M}..{self.last_interval:%Y-%m-%d %H:%M}Z"
            if self.first_interval and self.last_interval
            else "none"
        )
        return (
            f"{self.intervals} intervals ({span}), {self.interval_messages} interval messages, "
            f"{self.event_messages} events, {self.status_messages} status, "
            f"{self.published} published in {self.wall_seconds:.1f} s ({rate:,.0f} msg/s), "
            f"{self.commands_answered} commands answered, {self.commands_rejected} rejected, "
            f"{self.reconnect_bursts} reconnect bursts, lag {self.lag_seconds:,.0f} sim s"
        )


class _Aborted(Exception):
    """Stop requested while the broker is unreachable: give up on the current interval."""


@dataclass(slots=True)
class _Link:
    """One paho client and its publish window (the gateway's, or one meter's)."""

    client: mqtt.Client
    window: PublishWindow
    connected: bool = False


class FleetPublisher:
    """Run the simulated clock, publish what the device engine says, and answer commands."""

    def __init__(
        self,
        meters: Sequence[Meter],
        *,
        mqtt_url: str,
        seed: int,
        start: datetime,
        speed: float,
        prefix: str = DEFAULT_PREFIX,
        client_id: str | None = None,
        window: int = DEFAULT_WINDOW,
        wall: Callable[[], float] = time.monotonic,
        incidents: Sequence[Incident] = (),
        faults: FaultRates | None = None,
        connections: Connections = "shared",
        record: Recorder | None = None,
        backlog_days: float = 0.0,
        whole: Sequence[Meter] | None = None,
    ) -> None:
        """Prepare (but do not connect) a publisher for `meters` from simulated time `start`.

        `whole` is the fleet `meters` are a shard of: a live incident chooses its meters
        over it, as the scenario's incidents were, so the shards play one fleet's incident.
        """
        if connections not in CONNECTIONS:
            raise ValueError(f"connections must be one of {', '.join(CONNECTIONS)}")
        self.meters = list(meters)
        self.whole = list(whole) if whole is not None else self.meters
        self.seed = seed
        self.start = start
        self.speed = speed
        self.prefix = prefix
        self.connections = connections
        self.ready = threading.Event()
        SimClock(start, speed, 0.0)  # validate start and speed before anything connects
        self.faults = faults or FaultRates()
        index = np.array([m.index for m in self.meters], dtype=np.uint64)
        skew = (
            clock_skews(len(self.meters), self.faults.clock_skew, seed, index)
            if self.faults.clock_skew
            else None
        )
        self.engine = Engine(
            self.meters,
            seed=seed,
            start=start,
            incidents=incidents,
            clock_skew_s=skew,
            backlog_days=backlog_days,
        )
        self.injector = FaultInjector(self.faults, seed)
        self._record = record
        self._url = mqtt_url
        self._client_id = client_id or f"wattline-sim-{uuid.uuid4().hex[:12]}"
        self._window_limit = window
        self._wall = wall
        self._stop = threading.Event()
        self._stats = PublisherStats()
        self._row = {m.id: i for i, m in enumerate(self.meters)}
        self._topics = {
            kind: [topic_for(m.utility_id, m.id, kind, prefix) for m in self.meters]
            for kind in _KINDS_PUBLISHED
        }
        self._control: collections.deque[ControlRequest] = collections.deque()
        self._control_topic = control_topic(prefix)
        self._commands: collections.deque[tuple[int, Command | str, str | None]] = (
            collections.deque()
        )
        # Commands for meters whose link is down, with the wall time they arrived.
        self._held: list[tuple[float, int, Command]] = []
        self._links: list[_Link] = []
        self._step = 0
        self._wall_start = 0.0

    # ------------------------------------------------------------ public

    @property
    def stats(self) -> PublisherStats:
        """Return a snapshot of the counters."""
        return dataclasses.replace(self._stats)

    def stop(self) -> None:
        """Ask the run loop to finish the current interval, mark meters offline and return."""
        self._stop.set()

    def intervals_for(self, duration: float) -> int:
        """Return how many intervals a run of `duration` wall seconds completes."""
        return math.floor(duration * self.speed / INTERVAL_SECONDS + 1e-9)

    def run(self, duration: float = 0.0) -> PublisherStats:
        """Publish until `duration` wall seconds' worth of intervals are done (0 = until stop())."""
        self._open_links()
        try:
            self._wait_connected()
        except ConnectionError:
            self._close_links()
            raise
        wall_start = self._wall_start = self._wall()
        clock = SimClock(self.start, self.speed, wall_start)
        try:
            self._send(self.engine.start_messages())
            self.ready.set()
            log.info(
                "simulating %d meters from %s at %gx over %s connection(s)",
                len(self.meters),
                self.start,
                self.speed,
                self.connections,
            )
            self._loop(clock, self.intervals_for(duration) if duration else None)
            self._send(self.injector.flush())
            self._send(self.engine.stop_messages())
        except _Aborted:
            log.error(
                "stop requested while disconnected from the broker; statuses left as they are"
            )
        finally:
            self._drain()
            self._close_links()
            self._stats.wall_seconds = self._wall() - wall_start
            self.ready.set()
        return self.stats

    # ------------------------------------------------------------ the sim loop

    def _loop(self, clock: SimClock, limit: int | None) -> None:
        while not self._stop.is_set():
            if limit is not None and self._stats.intervals >= limit:
                break
            clock = self._serve_control(clock)
            now_wall = self._wall()
            self._serve_commands(clock)
            due = self.engine.now + INTERVAL
            sim_now = clock.now(now_wall)
            self._stats.sim_time = sim_now
            if sim_now >= due:
                # Behind schedule is fine: publish the next interval, never skip one.
                self._stats.lag_seconds = (sim_now - due).total_seconds()
                self._publish_step()
                if self.injector.burst(self._step):
                    self._burst()
            else:
                self._stats.lag_seconds = 0.0
                self._pump(min(IDLE_POLL_S, max(0.0, clock.wall_at(due) - now_wall)))

    def _publish_step(self) -> None:
        start = self.engine.now
        outs = self.engine.step()
        self._step += 1
        self._send(self.injector.apply(self._step, outs))
        stats = self._stats
        stats.intervals += 1
        stats.first_interval = stats.first_interval or start
        stats.last_interval = start
        if stats.intervals % LOG_EVERY_INTERVALS == 0:
            stats.wall_seconds = self._wall() - self._wall_start
            log.info("published through %s: %s", start, stats.summary())

    def _send(self, outs: Sequence[Out]) -> None:
        for o in outs:
            self._publish(o.row, self._topics[o.kind][o.row], o.payload, retain=o.retain)
            if o.kind == "interval":
                self._stats.interval_messages += 1
            elif o.kind == "event":
                self._stats.event_messages += 1
            elif o.kind == "status":
                self._stats.status_messages += 1

    # ------------------------------------------------------------ commands

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Called inside client.loop(): decode and queue only; replies are published later.
        if msg.topic == self._control_topic:
            try:
                self._control.append(parse_control(bytes(msg.payload)))
            except ControlError as exc:
                log.warning("ignoring control message: %s", exc)
            return
        try:
            topic = parse_topic(msg.topic, self.prefix)
        except ContractError as exc:
            log.warning("ignoring message on %s: %s", msg.topic, exc)
            return
        row = self._row.get(topic.meter_id)
        if topic.kind != "cmd" or row is None:
            return  # another simulator's meter, or our own reply echoing back
        try:
            self._commands.append((row, decode_command(bytes(msg.payload)), None))
        except ContractError as exc:
            self._commands.append((row, str(exc), _command_id(bytes(msg.payload))))

    def _serve_control(self, clock: SimClock) -> SimClock:
        while self._control:
            request = self._control.popleft()
            if request.speed is not None:
                wall = self._wall()
                # Re-anchor the clock so simulated time continues from where it is now.
                clock = SimClock(max(clock.now(wall), self.engine.now), request.speed, wall)
                self.speed = request.speed
                log.info("speed changed to %gx", request.speed)
            elif request.incident is not None:
                live = Scenario("live", "", None, None, None, None, {}, (request.incident,))
                # One second into the interval being simulated: an edge exactly on the
                # boundary belongs to the interval already published, and would be lost.
                begin = self.engine.now + timedelta(seconds=1)
                try:
                    incidents = live.bind(self.whole, begin, self.seed)
                except ScenarioError as exc:  # off the calendar: ignored, as any bad control
                    log.warning("ignoring control message: %s", exc)
                    continue
                incidents = cut_to_shard(incidents, self.whole, self.meters)
                self.engine.add_incidents(incidents)
                hit = int(sum(int(i.rows.sum()) for i in incidents))
                log.info("incident %r started now on %d meters", request.incident.name, hit)
        return clock

    def _serve_commands(self, clock: SimClock) -> None:
        now_wall = self._wall()
        waiting = self._held
        self._held = []
        for since, row, held in waiting:
            if self.engine.reachable[row]:
                self._send(self.engine.command(row, held, clock.now(now_wall)))
                self._stats.commands_answered += 1
            elif now_wall - since < COMMAND_HOLD_S:
                self._held.append((since, row, held))
            else:
                log.info(
                    "command %s for %s dropped: its link stayed down", held.id, self.meters[row].id
                )
        while self._commands:
            row, cmd, bad_id = self._commands.popleft()
            meter = self.meters[row]
            if isinstance(cmd, str):
                self._stats.commands_rejected += 1
                log.warning("bad command for %s: %s", meter.id, cmd)
                if bad_id is None:
                    continue  # no id to answer to
                payload = encode_reply(Reply(bad_id, "error", {"error": cmd}))
                self._publish(row, self._topics["reply"][row], payload, retain=False)
                continue
            if not self.engine.reachable[row]:
                # A meter whose link is down gets the command when the link returns, as a
                # broker delivers a persistent session's queued QoS 1 messages; past
                # COMMAND_HOLD_S the head-end has timed out and it is dropped.
                self._held.append((now_wall, row, cmd))
                continue
            self._send(self.engine.command(row, cmd, clock.now(self._wall())))
            self._stats.commands_answered += 1

    # ------------------------------------------------------------ paho plumbing

    def _open_links(self) -> None:
        if self.connections == "shared":
            client = make_client(self._url, self._client_id)
            self._links = [_Link(client, PublishWindow(client, self._window_limit))]
            self._wire(client, 0, subscription("cmd", self.prefix))
        else:
            for row, meter in enumerate(self.meters):
                will = encode_status(StatusMessage(meter.id, "offline", details={"reason": "will"}))
                client = make_client(
                    self._url,
                    f"{self._client_id}-{meter.id}",
                    will=(self._topics["status"][row], will),
                )
                self._links.append(_Link(client, PublishWindow(client, PER_METER_WINDOW)))
                self._wire(client, row, self._topics["cmd"][row])
        for link in self._links:
            connect(link.client)

    def _wire(self, client: mqtt.Client, link_index: int, command_filter: str) -> None:
        def on_connect(
            client: mqtt.Client,
            userdata: Any,
            flags: mqtt.ConnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            if reason_code.is_failure:
                log.error("broker refused the connection: %s", reason_code)
                return
            self._links[link_index].connected = True
            # (Re)subscribe here so a reconnect restores the command subscription.
            client.subscribe(command_filter, qos=1)
            if link_index == 0:
                client.subscribe(self._control_topic, qos=1)

        def on_disconnect(
            client: mqtt.Client,
            userdata: Any,
            flags: mqtt.DisconnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            self._links[link_index].connected = False
            if reason_code.is_failure:
                log.warning("disconnected from the broker: %s", reason_code)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = self._on_message

    def _link(self, row: int) -> _Link:
        return self._links[0] if self.connections == "shared" else self._links[row]

    def _wait_connected(self) -> None:
        deadline = self._wall() + CONNECT_TIMEOUT_S * max(1, len(self._links) // 500)
        while not all(link.connected for link in self._links):
            if self._wall() >= deadline:
                raise ConnectionError(f"no CONNACK from {self._url} within the timeout")
            self._pump(0.05)

    def _pump(self, timeout: float) -> None:
        """Run paho's network loops once (acks, commands, keepalive), reconnecting if needed."""
        per = timeout if len(self._links) == 1 else 0.0
        for link in self._links:
            rc = link.client.loop(per)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._reconnect(link)
        if len(self._links) > 1 and timeout:
            time.sleep(min(timeout, 0.01))

    def _reconnect(self, link: _Link) -> None:
        for delay in RECONNECT_DELAYS_S:
            try:
                link.client.reconnect()
            except OSError as exc:
                log.warning("reconnect to %s failed: %s; retrying in %s s", self._url, exc, delay)
                if self._stop.wait(delay):
                    raise _Aborted from exc
            else:
                return
        # Still down: the caller's next pump tries again, with the stop flag checked each time.

    def _burst(self) -> None:
        """Drop every connection at once (no clean DISCONNECT) and let them all reconnect."""
        self._stats.reconnect_bursts += 1
        log.info("fault: reconnect burst across %d connection(s)", len(self._links))
        for link in self._links:
            sock = link.client.socket()
            if isinstance(sock, socket.socket | ReadAheadSocket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._wait_connected()
        if self.connections == "per-meter":
            # Each broker published the meter's will; the meter says it is back.
            self._send(self.engine.status_messages(self.engine.reachable))

    def _publish(self, row: int, topic: str, payload: bytes, *, retain: bool) -> None:
        link = self._link(row)
        # The window frees slots from on_publish, which only runs inside our own loop() calls.
        while not link.window.acquire(timeout=0):
            self._pump(0.05)
            if self._stop.is_set() and not link.connected:
                raise _Aborted
        info = link.client.publish(topic, payload, qos=1, retain=retain)
        self._stats.published += 1
        if self._record is not None:
            self._record(topic, payload, retain)
        # NO_CONN / CONN_LOST keep a QoS 1 message queued for the reconnect; only a refused
        # message gives its slot back.
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            link.window.release_unsent()
            log.error("paho refused a publish to %s (queue full)", topic)

    def _drain(self) -> None:
        deadline = self._wall() + DRAIN_TIMEOUT_S
        while (
            any(link.window.outstanding for link in self._links)
            and all(link.connected for link in self._links)
            and self._wall() < deadline
        ):
            self._pump(0.05)
        left = sum(link.window.outstanding for link in self._links)
        if left:
            log.warning("%d publishes unacknowledged at shutdown", left)

    def _close_links(self) -> None:
        for link in self._links:
            link.client.disconnect()
            # Let the DISCONNECT packet out so the broker does not publish the will.
            link.client.loop(0.01)


def _command_id(payload: bytes) -> str | None:
    """Return a malformed command's id if it has a usable one, so the error can be answered."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and 1 <= len(found) <= 64 else None
