"""Publish a simulated fleet over MQTT and answer its commands (the simulator's only paho user).

One paho client serves the whole fleet: each meter's messages still go to its own
`{prefix}/{utility}/{meter}/{kind}` topics, but thousands of meters cost one connection.

Status and the last will: the contract makes `status` retained and also each meter's MQTT
last will, but a connection has only one will, so a shared client cannot carry thousands.
This publisher therefore sets no will: it publishes retained "online" for every meter at
start and retained "offline" for every meter on a clean stop (duration over, SIGINT,
SIGTERM). A crash or a kill -9 leaves the meters "online" until the next run; consumers
should also judge liveness by the age of the last interval.

The paho network loop is driven from the publishing thread itself (`client.loop()`), not
by `loop_start()`: publishes are then written straight to the socket (measured 2-2.5x
faster), and commands arrive through `on_message` in the same thread, where they are only
queued; they are answered between intervals, so nothing ever blocks inside a callback.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.domain.telemetry import (
    DEFAULT_PREFIX,
    Command,
    ContractError,
    IntervalMessage,
    Kind,
    StatusMessage,
    decode_command,
    encode_interval,
    encode_reply,
    encode_status,
    parse_topic,
    subscription,
    topic_for,
)
from app.mqtt import CONNECT_TIMEOUT_S, PublishWindow, connect, make_client
from simulator.clock import SimClock
from simulator.device import error_reply, handle_command
from simulator.fleet import Meter
from simulator.model import INTERVAL, FleetArrays

log = logging.getLogger(__name__)

# Module-level timing constants so tests (or a slow broker) can change them.
DRAIN_TIMEOUT_S = 30.0
IDLE_POLL_S = 0.1
RECONNECT_DELAYS_S: Final = (0.5, 1.0, 2.0, 5.0)
LOG_EVERY_INTERVALS = 96
# paho rescans every unacknowledged message on each PUBACK (Client._update_inflight), so a
# smaller window is cheaper per ack: 200 measured ~20 % faster than 500 on loopback Mosquitto.
DEFAULT_WINDOW = 200
_KINDS_PUBLISHED: Final[tuple[Kind, ...]] = ("interval", "status", "reply")


@dataclass(slots=True)
class PublisherStats:
    """Counters of what a FleetPublisher has done so far."""

    intervals: int = 0
    interval_messages: int = 0
    status_messages: int = 0
    commands_answered: int = 0
    commands_rejected: int = 0
    first_interval: datetime | None = None
    last_interval: datetime | None = None
    sim_time: datetime | None = None
    lag_seconds: float = 0.0
    wall_seconds: float = 0.0

    def summary(self) -> str:
        """Render a one-line summary for logs."""
        rate = self.interval_messages / self.wall_seconds if self.wall_seconds else 0.0
        span = (
            f"{self.first_interval:%Y-%m-%d %H:%M}..{self.last_interval:%Y-%m-%d %H:%M}Z"
            if self.first_interval and self.last_interval
            else "none"
        )
        return (
            f"{self.intervals} intervals ({span}), {self.interval_messages} interval messages "
            f"in {self.wall_seconds:.1f} s ({rate:,.0f} msg/s), {self.status_messages} status, "
            f"{self.commands_answered} commands answered, {self.commands_rejected} rejected, "
            f"lag {self.lag_seconds:,.0f} sim s"
        )


class _Aborted(Exception):
    """Stop requested while the broker is unreachable: give up on the current interval."""


class FleetPublisher:
    """Run the simulated clock, publish every interval of every meter, and answer commands."""

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
    ) -> None:
        """Prepare (but do not connect) a publisher for `meters` from simulated time `start`."""
        self.meters = list(meters)
        self.seed = seed
        self.start = start
        self.speed = speed
        self.prefix = prefix
        self.ready = threading.Event()
        SimClock(start, speed, 0.0)  # validate start and speed before anything connects
        self._url = mqtt_url
        self._client_id = client_id or f"wattline-sim-{uuid.uuid4().hex[:12]}"
        self._window_limit = window
        self._wall = wall
        self._stop = threading.Event()
        self._stats = PublisherStats()
        self._arrays = FleetArrays.build(self.meters, seed)
        self._row = {m.id: i for i, m in enumerate(self.meters)}
        self._topics = {
            kind: [topic_for(m.utility_id, m.id, kind, prefix) for m in self.meters]
            for kind in _KINDS_PUBLISHED
        }
        n = len(self.meters)
        self._kwh = np.zeros(n)
        self._kvarh = np.zeros(n)
        self._max_kw = np.zeros(n)
        self._commands: collections.deque[tuple[int, Command | str, str | None]] = (
            collections.deque()
        )
        self._connected = False
        self._client: mqtt.Client | None = None
        self._publish_window: PublishWindow | None = None
        self._next = start

    # ------------------------------------------------------------ public

    @property
    def stats(self) -> PublisherStats:
        """Return a snapshot of the counters."""
        return dataclasses.replace(self._stats)

    def stop(self) -> None:
        """Ask the run loop to finish the current interval, mark meters offline and return."""
        self._stop.set()

    def run(self, duration: float = 0.0) -> PublisherStats:
        """Publish until `duration` wall seconds pass (0 = until stop()); return the counters."""
        client = make_client(self._url, self._client_id)
        self._client = client
        self._publish_window = PublishWindow(client, self._window_limit)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        connect(client)
        try:
            self._wait_connected()
        except ConnectionError:
            client.disconnect()
            raise
        wall_start = self._wall()
        clock = SimClock(self.start, self.speed, wall_start)
        try:
            self._publish_statuses("online", self.start)
            self.ready.set()
            log.info(
                "simulating %d meters from %s at %gx", len(self.meters), self.start, self.speed
            )
            self._loop(clock, wall_start, duration)
            self._publish_statuses("offline", clock.now(self._wall()))
        except _Aborted:
            log.error(
                "stop requested while disconnected from the broker; statuses left as they are"
            )
        finally:
            self._drain()
            client.disconnect()
            self._stats.wall_seconds = self._wall() - wall_start
            self.ready.set()
        return self.stats

    # ------------------------------------------------------------ the sim loop

    def _loop(self, clock: SimClock, wall_start: float, duration: float) -> None:
        while not self._stop.is_set():
            now_wall = self._wall()
            if duration and now_wall - wall_start >= duration:
                break
            self._serve_commands(clock)
            due = self._next + INTERVAL
            sim_now = clock.now(now_wall)
            self._stats.sim_time = sim_now
            if sim_now >= due:
                # Behind schedule is fine: publish the next interval, never skip one.
                self._stats.lag_seconds = (sim_now - due).total_seconds()
                self._publish_interval(self._next, sent_at=sim_now)
                self._next = due
            else:
                self._stats.lag_seconds = 0.0
                self._pump(min(IDLE_POLL_S, max(0.0, clock.wall_at(due) - now_wall)))

    def _publish_interval(self, start: datetime, sent_at: datetime) -> None:
        readings = self._arrays.interval(start)
        topics = self._topics["interval"]
        for meter, topic, reading in zip(self.meters, topics, readings, strict=True):
            payload = encode_interval(IntervalMessage(meter.id, (reading,), sent_at=sent_at))
            self._publish(topic, payload, retain=False)
        kwh = np.fromiter((r.kwh for r in readings), dtype=np.float64, count=len(readings))
        self._kwh += kwh
        self._kvarh += np.fromiter(
            (r.kvarh for r in readings), dtype=np.float64, count=len(readings)
        )
        self._max_kw = np.maximum(self._max_kw, kwh / INTERVAL.total_seconds() * 3600)
        stats = self._stats
        stats.intervals += 1
        stats.interval_messages += len(readings)
        stats.first_interval = stats.first_interval or start
        stats.last_interval = start
        if stats.intervals % LOG_EVERY_INTERVALS == 0:
            log.info("published through %s: %s", start, stats.summary())

    def _publish_statuses(self, state: str, at: datetime) -> None:
        for meter, topic in zip(self.meters, self._topics["status"], strict=True):
            self._publish(topic, encode_status(StatusMessage(meter.id, state, at=at)), retain=True)
            self._stats.status_messages += 1

    # ------------------------------------------------------------ commands

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Called inside client.loop(): decode and queue only; replies are published later.
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

    def _serve_commands(self, clock: SimClock) -> None:
        while self._commands:
            row, cmd, bad_id = self._commands.popleft()
            meter = self.meters[row]
            if isinstance(cmd, str):
                self._stats.commands_rejected += 1
                log.warning("bad command for %s: %s", meter.id, cmd)
                if bad_id is None:
                    continue  # no id to answer to
                reply = error_reply(bad_id, cmd)
            else:
                reply = handle_command(
                    meter,
                    cmd,
                    now=clock.now(self._wall()),
                    seed=self.seed,
                    last_complete_interval=self._next - INTERVAL,
                    registers={
                        "kwh": float(self._kwh[row]),
                        "kvarh": float(self._kvarh[row]),
                        "max_demand_kw": float(self._max_kw[row]),
                    },
                )
                self._stats.commands_answered += 1
            self._publish(self._topics["reply"][row], encode_reply(reply), retain=False)

    # ------------------------------------------------------------ paho plumbing

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._connected = True
        # (Re)subscribe here so a reconnect restores the command subscription.
        client.subscribe(subscription("cmd", self.prefix), qos=1)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected = False
        if reason_code.is_failure:
            log.warning("disconnected from the broker: %s", reason_code)

    def _wait_connected(self) -> None:
        deadline = self._wall() + CONNECT_TIMEOUT_S
        while not self._connected:
            if self._wall() >= deadline:
                raise ConnectionError(f"no CONNACK from {self._url} within {CONNECT_TIMEOUT_S} s")
            self._pump(0.05)

    def _require(self) -> tuple[mqtt.Client, PublishWindow]:
        if self._client is None or self._publish_window is None:
            raise RuntimeError("FleetPublisher.run() has not connected a client yet")
        return self._client, self._publish_window

    def _pump(self, timeout: float) -> None:
        """Run paho's network loop once (acks, commands, keepalive), reconnecting if needed."""
        client, _ = self._require()
        rc = client.loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._reconnect()

    def _reconnect(self) -> None:
        client, _ = self._require()
        for delay in RECONNECT_DELAYS_S:
            try:
                client.reconnect()
            except OSError as exc:
                log.warning("reconnect to %s failed: %s; retrying in %s s", self._url, exc, delay)
                if self._stop.wait(delay):
                    raise _Aborted from exc
            else:
                return
        # Still down: the caller's next pump tries again, with the stop flag checked each time.

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        client, window = self._require()
        # The window frees slots from on_publish, which only runs inside our own loop() calls.
        while not window.acquire(timeout=0):
            self._pump(0.05)
            if self._stop.is_set() and not self._connected:
                raise _Aborted
        info = client.publish(topic, payload, qos=1, retain=retain)
        # NO_CONN / CONN_LOST keep a QoS 1 message queued for the reconnect; only a refused
        # message gives its slot back.
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            window.release_unsent()
            log.error("paho refused a publish to %s (queue full)", topic)

    def _drain(self) -> None:
        window = self._publish_window
        if window is None:
            return
        deadline = self._wall() + DRAIN_TIMEOUT_S
        while window.outstanding and self._connected and self._wall() < deadline:
            self._pump(0.05)
        if window.outstanding:
            log.warning("%d publishes unacknowledged at shutdown", window.outstanding)


def _command_id(payload: bytes) -> str | None:
    """Return a malformed command's id if it has a usable one, so the error can be answered."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and 1 <= len(found) <= 64 else None
