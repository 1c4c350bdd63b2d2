"""Two ingest workers share one stream through an MQTT shared subscription (Mosquitto only).

amqtt 0.12, the embedded broker, accepts a `$share/...` subscription but delivers nothing to
it, so these tests need Mosquitto (TEST_MQTT_URL) and skip with that reason without it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import mqtt as mqtt_adapter
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest import worker as worker_module
from app.ingest.worker import IngestWorker
from simulator.fleet import Meter
from tests.factories import T0
from tests.integration.test_ingest import count, interval_payload, topic, wait_for_count

pytestmark = pytest.mark.mqtt

Message = tuple[str, bytes]


@pytest.fixture
def publish(mosquitto_url: str) -> Iterator[Callable[[str, bytes], None]]:
    """Yield a function that publishes at QoS 1 and waits for Mosquitto's PUBACK."""
    client = mqtt_adapter.make_client(mosquitto_url, f"test-pub-{uuid.uuid4().hex[:8]}")
    mqtt_adapter.connect(client)
    client.loop_start()

    def _publish(topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    yield _publish
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def start_member(
    mosquitto_url: str, database_url: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], IngestWorker]]:
    """Yield a factory for workers in one share group, each with its own client id."""
    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.2)
    group = f"ingest-{uuid.uuid4().hex[:8]}"
    started: list[IngestWorker] = []

    def start(name: str) -> IngestWorker:
        worker = IngestWorker(
            mosquitto_url,
            database_url,
            prefix=topic_prefix,
            client_id=f"{group}-{name}",
            share_group=group,
        )
        worker.start()
        assert worker.wait_connected(10), "worker did not subscribe to the share group"
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.broker_connected:
            worker.stop()


def stream(prefix: str, fleet: list[Meter], messages_per_meter: int) -> tuple[list[Message], int]:
    """Return interval messages (16 readings each, no overlap) for every meter, and the count."""
    messages: list[Message] = []
    for i in range(messages_per_meter):
        for meter in fleet:
            starts = telemetry.interval_range(T0 + timedelta(hours=4 * i), 16)
            messages.append((topic(prefix, meter), interval_payload(meter, starts)))
    return messages, 16 * len(messages)


def readings_per_meter(database_url: str) -> dict[str, int]:
    """Count stored readings per meter."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        ids = session.scalars(select(models.Reading.meter_id)).all()
    engine.dispose()
    counts: dict[str, int] = {}
    for meter_id in ids:
        counts[meter_id] = counts.get(meter_id, 0) + 1
    return counts


def rollup_totals(database_url: str) -> dict[str, tuple[tuple[int, float], ...]]:
    """Return per meter (intervals, kWh) summed over readings, hourly and daily rollups."""
    engine = make_engine(database_url)
    totals: dict[str, list[tuple[int, float]]] = {}
    with make_sessionmaker(engine)() as session:
        for table in (models.Reading, models.HourlyRollup, models.DailyRollup):
            n = func.count() if table is models.Reading else func.sum(table.intervals)
            rows = session.execute(
                select(table.meter_id, n, func.sum(table.kwh)).group_by(table.meter_id)
            )
            for meter_id, intervals, kwh in rows:
                totals.setdefault(meter_id, []).append((int(intervals), round(kwh, 6)))
    engine.dispose()
    return {meter_id: tuple(t) for meter_id, t in totals.items()}


def test_two_workers_in_a_share_group_split_the_stream_and_store_it_once(
    fleet: list[Meter],
    publish: Callable[[str, bytes], None],
    start_member: Callable[[str], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    a, b = start_member("a"), start_member("b")
    messages, unique = stream(topic_prefix, fleet, messages_per_meter=6)
    # A redelivered message and an overlapping backlog go to whichever worker's turn it is.
    duplicates = messages[::3]
    # Half of it repeats each meter's last message (20 h to 24 h), half is new.
    overlap_starts = telemetry.interval_range(T0 + timedelta(hours=22), 16)
    overlaps = [(topic(topic_prefix, m), interval_payload(m, overlap_starts)) for m in fleet]
    unique += 8 * len(fleet)  # the overlap's second half is new
    for t, payload in messages + duplicates + overlaps:
        publish(t, payload)
    published = len(messages + duplicates + overlaps)

    assert wait_for_count(database_url, models.Reading, unique, timeout=30) == unique
    assert a.flush()
    assert b.flush()
    time.sleep(0.5)  # anything late would have to arrive now
    assert count(database_url, models.Reading) == unique
    assert set(readings_per_meter(database_url).values()) == {16 * 6 + 8}
    assert count(database_url, models.DeadLetter) == 0
    # Both took part, and between them saw every message exactly once (no fan-out).
    assert a.stats.readings_offered > 0
    assert b.stats.readings_offered > 0
    assert a.stats.received + b.stats.received == published


def test_one_worker_leaving_mid_stream_loses_nothing(
    fleet: list[Meter],
    publish: Callable[[str, bytes], None],
    start_member: Callable[[str], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    """Stop one worker while the stream runs; the other stores everything, with no restart."""
    a, b = start_member("a"), start_member("b")
    messages, unique = stream(topic_prefix, fleet, messages_per_meter=16)
    sent = [0]

    def producer() -> None:
        for t, payload in messages:
            publish(t, payload)
            sent[0] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=producer)
    thread.start()
    deadline = time.monotonic() + 15
    while b.stats.readings_offered == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.stats.readings_offered > 0, "worker b never got its share"
    b.stop()
    stopped_at = sent[0]
    thread.join(30)
    # Some of the stream went out after b had left: a alone must have taken all of that.
    assert stopped_at < len(messages), "the stream ended before the worker had stopped"

    # Also a redelivery-like duplicate of what b had already stored.
    for t, payload in messages[:5]:
        publish(t, payload)
    assert wait_for_count(database_url, models.Reading, unique, timeout=30) == unique
    assert a.flush()
    time.sleep(0.5)
    assert count(database_url, models.Reading) == unique
    assert set(readings_per_meter(database_url).values()) == {16 * 16}
    # Every message went to exactly one of them: nothing stranded in b's session, no copies.
    assert a.stats.received + b.stats.received == len(messages) + 5


def test_two_workers_writing_one_meters_day_keep_its_rollups_exact(
    fleet: list[Meter],
    mosquitto_url: str,
    start_member: Callable[[str], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    """Hour-long messages of the same meters' days go to both workers and commit side by side."""
    a, b = start_member("a"), start_member("b")
    meters = fleet[:3]
    # A burst, not one message per PUBACK: both workers' batches fill and commit together.
    client = mqtt_adapter.make_client(mosquitto_url, f"test-pub-{uuid.uuid4().hex[:8]}")
    mqtt_adapter.connect(client)
    client.loop_start()
    try:
        infos = [
            client.publish(
                topic(topic_prefix, meter),
                interval_payload(meter, telemetry.interval_range(T0 + timedelta(hours=h), 4)),
                qos=1,
            )
            for h in range(4 * 24)
            for meter in meters
        ]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    unique = 4 * 4 * 24 * len(meters)
    assert wait_for_count(database_url, models.Reading, unique, timeout=30) == unique
    assert a.flush()
    assert b.flush()
    assert a.stats.batches > 1
    assert b.stats.batches > 1
    totals = rollup_totals(database_url)
    assert sorted(totals) == sorted(m.id for m in meters)
    for meter_id, (readings, hourly, daily) in totals.items():
        assert hourly == readings, f"{meter_id}: hourly rollups {hourly} vs readings {readings}"
        assert daily == readings, f"{meter_id}: daily rollups {daily} vs readings {readings}"
