"""The embedded broker behaves like Mosquitto where Wattline depends on it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from app import mqtt as mqtt_adapter

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
