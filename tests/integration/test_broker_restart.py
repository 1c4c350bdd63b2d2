"""Fault test: the broker restarts mid-stream; the stored readings are still exact.

Needs a Mosquitto the test can stop and start (the `private_mosquitto` fixture runs its own,
with persistence on disk). The embedded amqtt broker keeps sessions in memory only, so a
restart of it loses queued messages by design: it is not a broker to restart under load.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app import mqtt as mqtt_adapter
from app.broker import MosquittoProcess
from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest import worker as worker_module
from app.ingest.worker import IngestWorker
from simulator.fleet import build_fleet
from tests.factories import T0
from tests.integration.test_ingest import count, interval_payload, topic, wait_for_count

pytestmark = pytest.mark.mqtt


class Publisher:
    """A QoS 1 publisher on a persistent session that keeps publishing while the broker is away."""

    def __init__(self, url: str) -> None:
        """Connect with clean_session=False: paho re-sends what was not PUBACKed."""
        self.client = mqtt_adapter.make_client(
            url, f"test-pub-{uuid.uuid4().hex[:8]}", clean_session=False
        )
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._sent: set[int] = set()
        self._acked: set[int] = set()
        self.while_down = 0
        mqtt_adapter.connect(self.client)
        self.client.loop_start()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._acked.add(mid)

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand a message to paho; while disconnected paho queues it (rc NO_CONN) for later."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            self.while_down += 1
        else:
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(info.rc)
        with self._lock:
            self._sent.add(info.mid)

    @property
    def acked(self) -> int:
        """Return how many messages the broker has acknowledged."""
        with self._lock:
            return len(self._acked)

    def wait_all_acked(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._sent <= self._acked:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    private_mosquitto: MosquittoProcess,
    database_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stop Mosquitto (SIGTERM) while readings stream in, start it again: counts are exact."""
    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.2)
    # A worker slower than the stream (it acks every half second), so that when the broker
    # stops it holds acknowledged messages the worker has not yet received.
    monkeypatch.setattr(worker_module, "BATCH_WAIT_S", 0.5)
    monkeypatch.setattr(worker_module, "BATCH_LINGER_S", 0.5)
    fleet = build_fleet(10, seed=1)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, fleet)
    engine.dispose()
    broker = private_mosquitto
    worker = IngestWorker(
        broker.url,
        database_url,
        prefix=topic_prefix,
        client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
    )
    worker.start()
    assert worker.wait_connected(10), "worker did not connect"
    publisher = Publisher(broker.url)
    try:
        # 20 messages a meter, 8 readings each, no overlap: 1,600 unique readings.
        messages = [
            (topic(topic_prefix, m), interval_payload(m, telemetry.interval_range(start, 8)))
            for start in (T0 + timedelta(hours=2 * i) for i in range(20))
            for m in fleet
        ]
        unique = 8 * len(messages)
        first, rest = messages[:150], messages[150:]
        sent = [0]

        def stream() -> None:
            for t, payload in first:
                publisher.publish(t, payload)
                sent[0] += 1
                time.sleep(0.01)

        producer = threading.Thread(target=stream)
        producer.start()
        # Stop when the worker has stored some and the broker holds a backlog for it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            worker.stats.batches == 0 or publisher.acked - worker.stats.received < 20
        ):
            time.sleep(0.01)
        held = publisher.acked - worker.stats.received
        broker.stop()  # SIGTERM: Mosquitto saves sessions and queued messages
        stopped_at = sent[0]
        time.sleep(0.5)  # the stream goes on into paho's queue
        broker.start()
        producer.join(30)
        assert stopped_at < len(first), "the stream ended before the broker stopped"

        # Finish the stream, with redelivery-like duplicates of the first (stored) messages.
        for t, payload in [*rest, *messages[:20]]:
            publisher.publish(t, payload)
        assert publisher.wait_all_acked(30), "broker never acknowledged every message"
        assert wait_for_count(database_url, models.Reading, unique, timeout=30) == unique
        assert worker.flush()
        time.sleep(0.5)  # anything late would have to arrive now
        assert count(database_url, models.Reading) == unique
        assert count(database_url, models.DeadLetter) == 0
        # The fault really happened to both sides, with messages held at the broker.
        assert held >= 20, "the broker held no backlog for the worker when it stopped"
        assert publisher.while_down > 0, "nothing was published while the broker was down"
        assert worker._generation >= 2, "the worker never reconnected"
    finally:
        publisher.close()
        worker.stop()
