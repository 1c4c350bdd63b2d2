"""The embedded broker behaves like Mosquitto where Wattline depends on it."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from app import mqtt as mqtt_adapter
from app.broker import PUBACK_TIMEOUTS, EmbeddedBroker, MosquittoProcess

pytestmark = pytest.mark.mqtt


def test_retained_messages_reach_only_matching_subscribers(
    mqtt_url: str, topic_prefix: str
) -> None:
    publisher = mqtt_adapter.make_client(mqtt_url, f"t-pub-{uuid.uuid4().hex[:6]}")
    mqtt_adapter.connect(publisher)
    publisher.loop_start()
    status = f"{topic_prefix}/u1/m1/status"
    publisher.publish(status, b"online", qos=1, retain=True).wait_for_publish(5)

    # Someone else subscribes to statuses first (as the ingest does) ...
    other = mqtt_adapter.make_client(mqtt_url, f"t-other-{uuid.uuid4().hex[:6]}")
    other_subscribed = threading.Event()
    other.on_subscribe = lambda *a: other_subscribed.set()
    mqtt_adapter.connect(other)
    other.loop_start()
    other.subscribe(f"{topic_prefix}/+/+/status", 1)
    assert other_subscribed.wait(5)

    # ... then a client interested only in intervals connects.
    got: list[tuple[str, bool]] = []
    subscribed = threading.Event()
    client = mqtt_adapter.make_client(mqtt_url, f"t-sub-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda c, u, m: got.append((m.topic, m.retain))
    client.on_subscribe = lambda *a: subscribed.set()
    mqtt_adapter.connect(client)
    client.loop_start()
    client.subscribe(f"{topic_prefix}/+/+/interval", 1)
    assert subscribed.wait(5)
    publisher.publish(f"{topic_prefix}/u1/m1/interval", b"{}", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)

    publisher.publish(status, b"", qos=1, retain=True).wait_for_publish(
        5
    )  # clear the retained message
    for c in (publisher, other, client):
        c.disconnect()
        c.loop_stop()
    assert got == [(f"{topic_prefix}/u1/m1/interval", False)]


def test_a_burst_of_small_and_large_messages_arrives_whole_and_in_order(
    mqtt_url: str, topic_prefix: str
) -> None:
    """Through the read-ahead socket: many packets per kernel read, and ones larger than it."""
    sizes = [20, 200, 3, mqtt_adapter.READ_AHEAD_BYTES + 5_000, 1, 90_000] * 5 + [150] * 3_000
    bodies = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: object, userdata: object, msg: object) -> None:
        got.append(msg.payload)  # type: ignore[attr-defined]
        if len(got) == len(bodies):
            done.set()

    sub = mqtt_adapter.make_client(mqtt_url, f"t-burst-{uuid.uuid4().hex[:6]}")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    mqtt_adapter.connect(sub)
    sub.loop_start()
    sub.subscribe(f"{topic_prefix}/burst", 1)
    assert subscribed.wait(5)
    assert isinstance(sub.socket(), mqtt_adapter.ReadAheadSocket)
    pub = mqtt_adapter.make_client(mqtt_url, f"t-burst-pub-{uuid.uuid4().hex[:6]}")
    mqtt_adapter.connect(pub)
    pub.loop_start()
    for sent, body in enumerate(bodies):
        # Paced by the subscriber: a broker queues only so many messages for a client
        # (Mosquitto: max_queued_messages, 1,000 by default) and drops the rest.
        deadline = time.monotonic() + 30
        while sent - len(got) >= 500 and time.monotonic() < deadline:
            time.sleep(0.001)
        pub.publish(f"{topic_prefix}/burst", body, qos=1)
    assert done.wait(60), f"{len(got)} of {len(bodies)} messages"
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    assert got == bodies


def test_the_embedded_brokers_puback_timeouts_are_counted_not_logged_one_by_one(
    embedded_broker: EmbeddedBroker, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that holds its PUBACKs past amqtt's fixed 5 s: no traceback per message.

    The ingest acknowledges after its commit, so under a backlog amqtt gives up waiting
    for thousands of messages; each used to log a warning, a traceback and, when its
    PUBACK came, another warning.
    """
    held: list[int] = []
    subscribed = threading.Event()
    client = mqtt_adapter.make_client(
        embedded_broker.url, f"t-slow-{uuid.uuid4().hex[:6]}", manual_ack=True
    )
    client.on_message = lambda c, u, m: held.append(m.mid)  # acknowledged late, below
    client.on_subscribe = lambda *a: subscribed.set()
    mqtt_adapter.connect(client)
    client.loop_start()
    client.subscribe(f"{topic_prefix}/#", 1)
    assert subscribed.wait(5)
    publisher = mqtt_adapter.make_client(embedded_broker.url, f"t-pub-{uuid.uuid4().hex[:6]}")
    mqtt_adapter.connect(publisher)
    publisher.loop_start()
    before, tracebacks, late = (
        PUBACK_TIMEOUTS.total,
        PUBACK_TIMEOUTS.tracebacks,
        PUBACK_TIMEOUTS.late,
    )
    with caplog.at_level(logging.WARNING, logger="amqtt"):
        for n in range(3):
            publisher.publish(f"{topic_prefix}/u1/m1/interval", b"%d" % n, qos=1).wait_for_publish(
                5
            )
        deadline = time.monotonic() + 15
        while PUBACK_TIMEOUTS.total < before + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        # amqtt logs a timed-out delivery's traceback when its broadcast loop next runs:
        # one more message, to a topic nobody here subscribes to, makes it run.
        publisher.publish(f"{topic_prefix}-elsewhere/x", b"", qos=1).wait_for_publish(5)
        while PUBACK_TIMEOUTS.tracebacks < tracebacks + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        for mid in held:  # stored at last: the PUBACKs amqtt no longer waits for
            client.ack(mid, 1)
        while PUBACK_TIMEOUTS.late < late + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    for c in (publisher, client):
        c.disconnect()
        c.loop_stop()
    assert len(held) == 3
    assert PUBACK_TIMEOUTS.total == before + 3
    assert PUBACK_TIMEOUTS.tracebacks == tracebacks + 3  # logged by amqtt, and dropped
    assert PUBACK_TIMEOUTS.late == late + 3
    amqtt_records = [r for r in caplog.records if r.name.startswith("amqtt")]
    assert not [r for r in amqtt_records if r.exc_info], "a traceback per message again"
    assert not [r for r in amqtt_records if r.getMessage().startswith("Timeout waiting")]
    assert not [r for r in amqtt_records if r.getMessage().startswith("Received PUBACK")]


def test_a_private_mosquitto_whose_port_was_taken_meanwhile_fails_to_start(
    private_mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    """Another process listening on the port it was given is not taken for the broker."""
    workdir = tmp_path / "second"
    workdir.mkdir()
    second = MosquittoProcess(private_mosquitto.binary, workdir)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", second.port))
        squatter.listen()
        try:
            with pytest.raises(RuntimeError, match="mosquitto exited"):
                second.start()
        finally:
            second.stop()  # had it started anyway, it would outlive the test
    assert not second.running
