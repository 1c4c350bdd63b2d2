"""The simulator's publisher against a real broker: intervals, retained status, commands."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from app.domain.telemetry import (
    Command,
    decode,
    encode_command,
    format_time,
    reading_to_dict,
    subscription,
    topic_for,
)
from app.mqtt import connect, make_client
from simulator.fleet import build_fleet
from simulator.model import meter_readings
from simulator.publisher import FleetPublisher

SEED = 7
METERS = 5
START = datetime(2026, 3, 2, tzinfo=UTC)
SPEED = 36_000.0  # 40 simulated intervals per wall second
TIMEOUT_S = 30.0
INTERVAL = timedelta(minutes=15)


@dataclass(frozen=True)
class Received:
    """One message as the test subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho client that records everything on one filter and lets tests wait for it."""

    def __init__(self, url: str, topic_filter: str) -> None:
        """Connect, subscribe and start paho's network thread."""
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        self.client = make_client(url, f"wltest-sub-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        connect(self.client)
        self.client.loop_start()
        assert self._subscribed.wait(TIMEOUT_S), "no SUBACK"

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(self._filter, qos=1)

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Received]], bool], what: str) -> list[Received]:
        """Wait (bounded) until `predicate(messages)` holds; return a copy of the messages."""
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"timed out waiting for {what}; got {len(self.messages)} messages")
                self._cond.wait(remaining)
            return list(self.messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def of_kind(kind: str, prefix: str) -> Callable[[list[Received]], list[Any]]:
    """Return a function decoding the messages of one kind (the contract's decoder)."""

    def pick(messages: list[Received]) -> list[Any]:
        return [
            decode(m.topic, m.payload, prefix)
            for m in messages
            if m.topic.endswith(f"/{kind}") and m.payload
        ]

    return pick


@pytest.fixture
def watcher(mqtt_url: str, topic_prefix: str) -> Iterator[Subscriber]:
    """Subscribe to everything under the prefix before any simulator publishes."""
    sub = Subscriber(mqtt_url, subscription("#", topic_prefix))
    yield sub
    sub.close()


@pytest.fixture
def fleet_publisher(
    mqtt_url: str, topic_prefix: str, watcher: Subscriber
) -> Iterator[FleetPublisher]:
    """Run a small fast fleet in a thread; stop it, join it and clear its retained statuses."""
    publisher = FleetPublisher(
        build_fleet(METERS, SEED),
        mqtt_url=mqtt_url,
        seed=SEED,
        start=START,
        speed=SPEED,
        prefix=topic_prefix,
    )
    errors: list[BaseException] = []

    def target() -> None:
        try:
            publisher.run(duration=120)  # an upper bound only: the test stops it sooner
        except BaseException as exc:
            errors.append(exc)
            publisher.ready.set()
            raise

    thread = threading.Thread(target=target, name="fleet-publisher", daemon=True)
    thread.start()
    assert publisher.ready.wait(TIMEOUT_S), "publisher never came online"
    assert not errors, errors
    yield publisher
    publisher.stop()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "publisher did not stop"
    cleaner = make_client(mqtt_url, f"wltest-clean-{uuid.uuid4().hex[:8]}")
    connect(cleaner)
    cleaner.loop_start()
    infos = [
        cleaner.publish(
            topic_for(m.utility_id, m.id, "status", topic_prefix), b"", qos=1, retain=True
        )
        for m in publisher.meters
    ]
    for info in infos:
        info.wait_for_publish(TIMEOUT_S)
    cleaner.disconnect()
    cleaner.loop_stop()


def test_publisher_streams_contiguous_intervals_and_answers_commands(
    mqtt_url: str, topic_prefix: str, fleet_publisher: FleetPublisher, watcher: Subscriber
) -> None:
    try:
        # Once the broker has routed every "online", a new subscriber gets them as retained.
        watcher.wait_for(
            lambda ms: sum(m.topic.endswith("/status") for m in ms) >= METERS, "online statuses"
        )
        _check_retained_status(mqtt_url, topic_prefix, fleet_publisher)
        intervals = of_kind("interval", topic_prefix)
        watcher.wait_for(lambda ms: len(intervals(ms)) >= METERS * 8, "some intervals")

        meter = fleet_publisher.meters[1]
        cmd_topic = topic_for(meter.utility_id, meter.id, "cmd", topic_prefix)
        end = START + 4 * INTERVAL
        commands = {
            "p1": Command("p1", "ping"),
            "r1": Command(
                "r1",
                "read",
                {"what": "intervals", "start": format_time(START), "end": format_time(end)},
            ),
            "r2": Command("r2", "read", {"what": "registers"}),
            "x1": Command("x1", "selfdestruct"),
        }
        for cmd in commands.values():
            watcher.client.publish(cmd_topic, encode_command(cmd), qos=1)
        replies_of = of_kind("reply", topic_prefix)
        messages = watcher.wait_for(lambda ms: len(replies_of(ms)) >= len(commands), "replies")
        replies = {reply.id: (topic, reply) for topic, reply in replies_of(messages)}
        assert set(replies) == set(commands)
        assert all(topic.meter_id == meter.id for topic, _ in replies.values())

        ping = replies["p1"][1]
        assert ping.status == "ok"
        assert ping.result["meter_id"] == meter.id
        assert ping.result["network"] == meter.network
        assert ping.result["signal_dbm"] == meter.signal_dbm
        assert datetime.fromisoformat(ping.result["time"]) > START

        read = replies["r1"][1]
        assert read.status == "ok"
        expected = [reading_to_dict(r) for r in meter_readings(meter, START, 4, SEED)]
        assert read.result == {"meter_id": meter.id, "readings": expected}

        registers = replies["r2"][1]
        assert registers.status == "ok"
        assert registers.result["registers"]["kwh"] > 0

        assert replies["x1"][1].status == "error"
        assert "unknown command" in replies["x1"][1].result["error"]
    finally:
        fleet_publisher.stop()
    offline_of = of_kind("status", topic_prefix)
    watcher.wait_for(
        lambda ms: sum(s.state == "offline" for _, s in offline_of(ms)) >= METERS, "offline"
    )
    stats = fleet_publisher.stats
    assert stats.commands_answered == len(commands)
    # Every interval message published must arrive (QoS 1, drained before offline).
    messages = watcher.wait_for(
        lambda ms: len(intervals(ms)) >= stats.interval_messages, "all intervals"
    )
    _check_contiguous(intervals(messages), fleet_publisher, stats.intervals)


def _check_retained_status(url: str, prefix: str, publisher: FleetPublisher) -> None:
    late = Subscriber(url, subscription("status", prefix))
    try:
        messages = late.wait_for(lambda ms: len(ms) >= METERS, "retained statuses")
    finally:
        late.close()
    assert all(m.retain for m in messages)
    states = {msg.meter_id: msg.state for _, msg in of_kind("status", prefix)(messages)}
    assert states == dict.fromkeys((m.id for m in publisher.meters), "online")


def _check_contiguous(decoded: list[Any], publisher: FleetPublisher, intervals: int) -> None:
    starts: dict[str, list[datetime]] = {m.id: [] for m in publisher.meters}
    for topic, message in decoded:
        assert topic.meter_id == message.meter_id
        starts[message.meter_id].extend(r.start for r in message.readings)
    assert intervals >= 8
    engine = publisher.engine
    for row, (meter_id, seen) in enumerate(starts.items()):
        ordered = sorted(set(seen))
        assert ordered[0] == START, meter_id
        assert ordered == [START + k * INTERVAL for k in range(len(ordered))], meter_id
        # Store-and-forward: what a meter has not delivered yet is still in its memory.
        delivered = int(engine.unsent_from[row] - engine.t0)
        assert len(ordered) == delivered, meter_id
        assert intervals - delivered < 96, meter_id


def test_a_command_to_a_meter_whose_link_is_down_is_answered_when_it_returns(
    mqtt_url: str, topic_prefix: str, watcher: Subscriber
) -> None:
    """The demo's storm story pinged a meter still dark: dropped, it timed out on screen."""
    import numpy as np

    from simulator.incidents import Incident

    fleet = build_fleet(METERS, SEED)
    # Two simulated hours of tower outage for meter 1, at 900x: 8 wall seconds.
    rows = np.zeros(METERS, dtype=np.bool_)
    rows[1] = True
    outage = Incident("comms_outage", "tower", START, START + 8 * INTERVAL, rows)
    publisher = FleetPublisher(
        fleet, mqtt_url=mqtt_url, seed=SEED, start=START, speed=900.0, prefix=topic_prefix,
        incidents=[outage],
    )  # fmt: skip
    thread = threading.Thread(target=publisher.run, kwargs={"duration": 60}, daemon=True)
    thread.start()
    try:
        assert publisher.ready.wait(TIMEOUT_S)
        meter = fleet[1]
        sent = time.monotonic()
        watcher.client.publish(
            topic_for(meter.utility_id, meter.id, "cmd", topic_prefix),
            encode_command(Command("held", "ping")),
            qos=1,
        )
        replies_of = of_kind("reply", topic_prefix)
        messages = watcher.wait_for(lambda ms: len(replies_of(ms)) >= 1, "the held ping's reply")
        waited = time.monotonic() - sent
        ((topic, reply),) = replies_of(messages)
        assert (topic.meter_id, reply.id, reply.status) == (meter.id, "held", "ok")
        # Answered on the meter's clock once the link was back, not before.
        assert datetime.fromisoformat(reply.result["time"]) >= START + 8 * INTERVAL
        assert waited > 2.0
    finally:
        publisher.stop()
        thread.join(TIMEOUT_S)
        clear = make_client(mqtt_url, f"wltest-clean-{uuid.uuid4().hex[:8]}")
        connect(clear)
        clear.loop_start()
        for m in fleet:
            clear.publish(
                topic_for(m.utility_id, m.id, "status", topic_prefix), b"", qos=1, retain=True
            ).wait_for_publish(TIMEOUT_S)
        clear.disconnect()
        clear.loop_stop()
