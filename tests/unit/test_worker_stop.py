"""A message paho's thread is handing over as the worker stops goes back to the broker."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app.domain import telemetry
from app.ingest import worker as worker_module
from app.ingest.worker import IngestWorker
from tests.factories import T0, make_reading


def message(mid: int) -> mqtt.MQTTMessage:
    """A QoS 1 interval message as paho hands it to the worker."""
    body = telemetry.IntervalMessage(
        "m-1", tuple(make_reading(s) for s in telemetry.interval_range(T0, 4))
    )
    topic = telemetry.topic_for("u-1", "m-1", "interval")
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = telemetry.encode_interval(body)
    msg.qos = 1
    return msg


def test_a_message_waiting_for_room_when_the_stop_begins_is_returned_not_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUEUE_SIZE", 1)
    # Nothing connects: start() is never called, and a hand-off needs no database.
    (tmp_path / "w.db").touch()  # never written: the worker stops before any batch
    ingest = IngestWorker("mqtt://127.0.0.1:1", f"sqlite:///{tmp_path / 'w.db'}", writers=1)
    ingest._accepting.set()
    ingest._on_message(ingest._client, None, message(1))  # fills the one-message hand-off
    stop = threading.Timer(0.2, ingest._accepting.clear)  # what stop() does first
    stop.start()
    ingest._on_message(ingest._client, None, message(2))  # waits for room, then gives up
    stop.join()
    assert (ingest.stats.received, ingest.stats.accepted) == (2, 2)
    # The second is neither queued nor acknowledged: the broker delivers it again.
    assert ingest.stats.returned == 1
    assert ingest.queued_readings == 4
    ingest._engine.dispose()
