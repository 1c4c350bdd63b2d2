"""Ingest against a real broker and a real database: exactly once, dead letters, restarts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app import mqtt as mqtt_adapter
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest import worker as worker_module
from app.ingest.estimation import run_vee
from app.ingest.store import Accepted, MeterDirectory, write_batch
from app.ingest.worker import IngestWorker
from simulator.fleet import Meter
from tests.factories import T0, make_reading

pytestmark = pytest.mark.mqtt


def interval_payload(meter: Meter, starts: list[datetime]) -> bytes:
    """Return an interval message payload carrying `starts`."""
    message = telemetry.IntervalMessage(meter.id, tuple(make_reading(s) for s in starts))
    return telemetry.encode_interval(message)


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Callable[[str, bytes], None]]:
    """Yield a function that publishes at QoS 1 and waits for the broker's acknowledgement."""
    client = mqtt_adapter.make_client(mqtt_url, f"test-pub-{uuid.uuid4().hex[:8]}")
    mqtt_adapter.connect(client)
    client.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    yield publish
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def start_worker(
    mqtt_url: str, database_url: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], IngestWorker]]:
    """Yield a factory for workers sharing one persistent client id; all are stopped after."""
    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.2)
    client_id = f"test-ingest-{uuid.uuid4().hex[:8]}"
    started: list[IngestWorker] = []

    def start() -> IngestWorker:
        worker = IngestWorker(mqtt_url, database_url, prefix=topic_prefix, client_id=client_id)
        worker.start()
        assert worker.wait_connected(10), "worker did not connect to the broker"
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.broker_connected:
            worker.stop()


def count(database_url: str, model: type[models.Base]) -> int:
    """Count rows of a table."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(model)) or 0
    engine.dispose()
    return n


def wait_for_count(
    database_url: str, model: type[models.Base], expected: int, timeout: float = 15
) -> int:
    """Poll until the table holds `expected` rows or the deadline passes; return the last count."""
    deadline = time.monotonic() + timeout
    n = count(database_url, model)
    while n < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        n = count(database_url, model)
    return n


@contextmanager
def database_away(database_url: str) -> Iterator[None]:
    """Make a PostgreSQL database unavailable while the block runs, then let it back.

    New connections are refused and open ones killed, again and again until the block
    ends: a real outage (writes fail, the worker retries), not a lock.
    """
    engine = make_engine(database_url)
    name = engine.url.database
    admin = make_engine(engine.url.set(database="postgres").render_as_string(False))
    engine.dispose()
    over = threading.Event()
    failed: list[BaseException] = []

    def kill() -> None:
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not over.is_set():
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name"
                        ),
                        {"name": name},
                    )
                    over.wait(0.05)
        except BaseException as exc:  # reported below: an outage that ended early
            failed.append(exc)

    try:
        # Autocommit: ALTER DATABASE cannot run in a transaction, nor on its own database.
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            killer = threading.Thread(target=kill)
            killer.start()
            try:
                yield
            finally:
                over.set()
                killer.join()
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        admin.dispose()
    assert not failed, f"the outage ended early: {failed[0]!r}"


def topic(prefix: str, meter: Meter, kind: telemetry.Kind = "interval") -> str:
    """Build the topic of `meter` under the test's prefix."""
    return telemetry.topic_for(meter.utility_id, meter.id, kind, prefix)


def test_readings_are_stored_exactly_once_even_when_redelivered(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    worker = start_worker()
    starts = telemetry.interval_range(T0, 8)
    for meter in fleet[:5]:
        payload = interval_payload(meter, starts)
        publisher(topic(topic_prefix, meter), payload)
        # The same message again, and an overlapping backlog: both must add nothing twice.
        publisher(topic(topic_prefix, meter), payload)
        overlap = interval_payload(meter, telemetry.interval_range(T0 + timedelta(hours=1), 8))
        publisher(topic(topic_prefix, meter), overlap)
    expected = 5 * 12  # 8 + 8 overlapping by 4 = 12 unique intervals per meter
    assert worker.flush()
    assert wait_for_count(database_url, models.Reading, expected) == expected
    time.sleep(0.3)  # anything late would have to arrive now
    assert count(database_url, models.Reading) == expected
    assert count(database_url, models.DeadLetter) == 0


def test_garbage_goes_to_dead_letters_and_the_worker_keeps_going(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    start_worker()
    meter = fleet[0]
    other_utility = next(m.utility_id for m in fleet if m.utility_id != meter.utility_id)
    future = datetime.now(UTC) + timedelta(days=2)
    bad = [
        (topic(topic_prefix, meter), b"{not json", "not valid JSON"),
        (topic(topic_prefix, meter), b'{"schema_version": 99, "meter_id": "x"}', "schema_version"),
        (topic(topic_prefix, meter), b"[1, 2, 3]", "JSON object"),
        (
            f"{topic_prefix}/{meter.utility_id}/nosuch-99999/interval",
            interval_payload(meter, [T0]).replace(meter.id.encode(), b"nosuch-99999"),
            "unknown meter",
        ),
        (
            f"{topic_prefix}/{meter.utility_id}/{meter.id}/interval",
            telemetry.encode_interval(
                telemetry.IntervalMessage(meter.id, (make_reading(T0, kwh=-1.0),))
            ),
            "kwh",
        ),
        (
            # A known meter under another utility's topic: not stored under either.
            f"{topic_prefix}/{other_utility}/{meter.id}/interval",
            interval_payload(meter, [T0 + timedelta(days=1)]),
            f"belongs to utility {meter.utility_id!r}, not {other_utility!r}",
        ),
        (
            # Valid by the contract, impossible in fact: an interval two days in the future.
            topic(topic_prefix, meter),
            interval_payload(meter, [T0, telemetry.floor_interval(future)]),
            "readings[1]: impossible value",
        ),
        (
            topic(topic_prefix, meter),
            telemetry.encode_interval(
                telemetry.IntervalMessage(meter.id, (make_reading(T0, demand_kw=5e6),))
            ),
            "demand_kw",
        ),
        (
            # Seven minutes past the quarter hour: off the 15-minute grid.
            topic(topic_prefix, meter),
            interval_payload(meter, [T0]).replace(b"T00:00:00Z", b"T00:07:00Z"),
            "not on the 15-minute grid",
        ),
    ]
    for t, payload, _ in bad:
        publisher(t, payload)
    good = interval_payload(meter, [T0, T0 + timedelta(minutes=15)])
    publisher(topic(topic_prefix, meter), good)

    assert wait_for_count(database_url, models.DeadLetter, len(bad)) == len(bad)
    assert wait_for_count(database_url, models.Reading, 2) == 2
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        letters = session.scalars(select(models.DeadLetter).order_by(models.DeadLetter.id)).all()
    engine.dispose()
    by_payload = {bytes(d.payload): d.reason for d in letters}
    for _, payload, reason_part in bad:
        assert reason_part in by_payload[payload]


def test_readings_published_while_the_worker_is_down_arrive_after_restart(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    first = start_worker()
    meter = fleet[1]
    payload = interval_payload(meter, telemetry.interval_range(T0, 4))
    publisher(topic(topic_prefix, meter), payload)
    assert wait_for_count(database_url, models.Reading, 4) == 4
    first.stop()

    # The persistent session keeps these at the broker until the worker comes back.
    missed = interval_payload(meter, telemetry.interval_range(T0 + timedelta(hours=1), 4))
    publisher(topic(topic_prefix, meter), missed)
    publisher(topic(topic_prefix, meter), payload)  # a redelivery-like duplicate too

    start_worker()
    assert wait_for_count(database_url, models.Reading, 8) == 8
    time.sleep(0.3)
    assert count(database_url, models.Reading) == 8


def test_status_and_events_update_the_meter(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    worker = start_worker()
    meter = fleet[2]
    publisher(
        topic(topic_prefix, meter, "status"),
        telemetry.encode_status(telemetry.StatusMessage(meter.id, "online", T0)),
    )
    event = telemetry.EventMessage(meter.id, "ev-1", "tamper", T0, "critical", {"cover": "open"})
    publisher(topic(topic_prefix, meter, "event"), telemetry.encode_event(event))
    publisher(topic(topic_prefix, meter, "event"), telemetry.encode_event(event))
    assert wait_for_count(database_url, models.Event, 1) == 1
    assert worker.flush()
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        stored = session.get(models.Meter, meter.id)
        assert stored is not None
        assert stored.status == "online"
        assert stored.status_at == T0
        heartbeat = session.get(models.ServiceHeartbeat, "ingest")
    engine.dispose()
    assert count(database_url, models.Event) == 1
    assert heartbeat is not None


def test_a_late_actual_replaces_an_estimate_once_and_is_audited(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    meter = fleet[3]
    step = timedelta(minutes=15)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        write_batch(
            session,
            [
                Accepted(
                    telemetry.Topic(topic_prefix, meter.utility_id, meter.id, "interval"),
                    telemetry.IntervalMessage(
                        meter.id,
                        (
                            make_reading(T0, kwh=75.0, demand_kw=300.0),
                            make_reading(T0 + 5 * step, kwh=100.0, demand_kw=400.0),
                        ),
                    ),
                    b"",
                    datetime.now(UTC),
                )
            ],
            MeterDirectory(),
        )
    with sessions.begin() as session:
        summary = run_vee(session, meter.id, T0, T0 + 6 * step, now=datetime.now(UTC))
    assert summary.estimated_linear == 4

    worker = start_worker()
    late = interval_payload(meter, [T0 + step, T0 + 2 * step])
    for _ in range(3):  # the first delivery replaces; redeliveries must change nothing more
        publisher(topic(topic_prefix, meter), late)
    assert worker.flush()
    deadline = time.monotonic() + 15
    while count(database_url, models.ReadingAudit) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    with sessions() as session:
        rows = session.scalars(
            select(models.Reading)
            .where(models.Reading.meter_id == meter.id)
            .order_by(models.Reading.start)
        ).all()
        audit = session.scalars(
            select(models.ReadingAudit).order_by(
                models.ReadingAudit.start, models.ReadingAudit.changed_at
            )
        ).all()
    engine.dispose()
    assert [(r.kwh, r.quality) for r in rows] == [
        (75.0, "valid"),
        (12.5, "valid"),
        (12.5, "valid"),
        (pytest.approx(90.0), "estimated-linear"),
        (pytest.approx(95.0), "estimated-linear"),
        (100.0, "valid"),
    ]
    # VEE's four estimates went on the trail from nothing; two actuals then replaced two.
    assert [(a.start, a.source, a.old_quality, a.new_quality) for a in audit] == [
        (T0 + step, "vee", None, "estimated-linear"),
        (T0 + step, "ingest", "estimated-linear", "valid"),
        (T0 + 2 * step, "vee", None, "estimated-linear"),
        (T0 + 2 * step, "ingest", "estimated-linear", "valid"),
        (T0 + 3 * step, "vee", None, "estimated-linear"),
        (T0 + 4 * step, "vee", None, "estimated-linear"),
    ]
    replaced = [a for a in audit if a.source == "ingest"]
    assert [a.old_kwh for a in replaced] == pytest.approx([80.0, 85.0])
    assert [a.new_kwh for a in replaced] == [12.5, 12.5]
    assert worker.stats.dead_letters == 0


def test_database_outage_mid_stream_loses_and_duplicates_nothing(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
) -> None:
    """While the database is away the worker retries without acking; afterwards counts are exact."""
    worker = start_worker()
    meter = fleet[3]
    first = telemetry.interval_range(T0, 96)
    publisher(topic(topic_prefix, meter), interval_payload(meter, first[:48]))
    assert wait_for_count(database_url, models.Reading, 48) == 48

    engine = make_engine(database_url)
    postgres = engine.dialect.name == "postgresql"

    def outage() -> None:
        # PostgreSQL: refuse new connections and kill the open ones for two seconds (a real
        # outage: writes fail, the worker retries). SQLite: hold the write lock for two
        # seconds (writes stall behind it).
        if not postgres:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
                time.sleep(2.0)
                conn.exec_driver_sql("COMMIT")
            return
        with database_away(database_url):
            time.sleep(2.0)

    fault = threading.Thread(target=outage)
    fault.start()
    time.sleep(0.2)
    # Published during the outage, plus one redelivery-like duplicate of stored readings.
    publisher(topic(topic_prefix, meter), interval_payload(meter, first[48:]))
    publisher(topic(topic_prefix, meter), interval_payload(meter, first[:48]))
    fault.join()
    engine.dispose()
    assert wait_for_count(database_url, models.Reading, 96, timeout=30) == 96
    assert worker.flush()
    assert count(database_url, models.Reading) == 96
    if postgres:
        assert worker.stats.db_errors >= 1, "the outage never reached the worker"


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")


def wait_for_the_outage(worker: IngestWorker) -> None:
    """Return once the worker has failed a write against the unavailable database."""
    deadline = time.monotonic() + 30
    while worker.stats.db_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.stats.db_errors >= 1, "the outage never reached the worker"


def assert_all_stored_once(
    worker: IngestWorker, database_url: str, *, readings: int, messages: int
) -> None:
    """After the outage: every reading stored exactly once, each message received once."""
    assert wait_for_count(database_url, models.Reading, readings, timeout=60) == readings
    assert worker.flush()
    time.sleep(0.3)  # anything late or doubled would have to arrive now
    assert count(database_url, models.Reading) == readings
    assert worker.stats.received == messages
    assert count(database_url, models.DeadLetter) == 0


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_long_outage_fills_the_bounded_queue_and_the_broker_holds_the_rest(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backpressure: paho stops reading once the hand-off is full; nothing is lost after."""
    monkeypatch.setattr(worker_module, "QUEUE_SIZE", 8)  # 4 messages a writer
    worker = start_worker()
    meter = fleet[4]
    day = telemetry.interval_range(T0, 96)
    with database_away(database_url):
        publisher(topic(topic_prefix, meter), interval_payload(meter, day[:1]))
        wait_for_the_outage(worker)
        # The writer holds its failed batch (one message); 60 more are published.
        for k in range(1, 61):
            publisher(topic(topic_prefix, meter), interval_payload(meter, day[k : k + 1]))
        time.sleep(1.0)  # time for the worker to take whatever it would take
        taken = worker.stats.received
        retries = worker.stats.db_errors
    # The batch in hand, 4 queued and one paho holds while it waits for room: the broker,
    # not the worker's memory, holds the other 55 (the CI Mosquitto's stock in-flight
    # limit of 20 would allow 20).
    assert taken <= 1 + 4 + 1, f"the worker took {taken} messages while the database was away"
    assert retries >= 2, "the worker did not retry"
    assert_all_stored_once(worker, database_url, readings=61, messages=61)


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_the_queue_is_bounded_in_readings_not_only_in_messages(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Day-long messages fill the hand-off by readings: the broker, not memory, holds them."""
    monkeypatch.setattr(worker_module, "QUEUE_ROWS", 4 * 96)  # 2 day messages a writer
    worker = start_worker()
    meter = fleet[5]
    days = telemetry.interval_range(T0, 96 * 31)
    # One message stored and acknowledged first: after an acknowledgement Mosquitto 2.0.11
    # sends everything it holds, whatever its in-flight limit (docs/ingest.md).
    publisher(topic(topic_prefix, meter), interval_payload(meter, days[:96]))
    assert wait_for_count(database_url, models.Reading, 96, timeout=30) == 96
    with database_away(database_url):
        publisher(topic(topic_prefix, meter), interval_payload(meter, days[96:192]))
        wait_for_the_outage(worker)
        for k in range(2, 31):
            publisher(
                topic(topic_prefix, meter), interval_payload(meter, days[96 * k : 96 * (k + 1)])
            )
        time.sleep(1.0)  # time for the worker to take whatever it would take
        taken = worker.stats.received
        queued = worker.queued_readings
    # The first message, the batch in hand, 2 queued and one paho holds while it waits for
    # room: 5 of 31, where the count bound alone (10,000 a writer) would take them all.
    assert queued <= 2 * 96
    assert taken <= 5, f"the worker took {taken} day-long messages while the database was away"
    assert_all_stored_once(worker, database_url, readings=31 * 96, messages=31)
    assert worker.queued_readings == 0


@pytest.mark.parametrize(
    ("fault", "database_url"),
    [
        ("bug", "sqlite"),
        ("bug", POSTGRES),
        ("refused", "sqlite"),
        ("refused", POSTGRES),
        # SQLite takes the first row of a subquery: it has no cardinality error.
        ("cardinality", POSTGRES),
    ],
    indirect=["database_url"],
)
def test_a_message_that_breaks_the_write_path_is_dead_lettered_alone(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    start_worker: Callable[[], IngestWorker],
    database_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """A fault one message trips costs that message, not the worker.

    Injected into the write path for one meter's messages: a bug (an exception that is not
    the database's), a row the database refuses (a constraint) or, on PostgreSQL, a
    statement the server refuses for its data although psycopg calls it a ProgrammingError
    (a CardinalityViolation, as an upsert meeting one key twice raises). Every other
    reading of the same batches is stored, the culprit goes to the dead letters with the
    error, and the writer goes on with what comes after.
    """
    poison = fleet[1]

    def buggy_write_batch(session: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(i, Accepted) and i.topic.meter_id == poison.id for i in batch):
            if fault == "bug":
                raise RuntimeError("simulated bug in the write path")
            if fault == "cardinality":
                session.execute(text("SELECT (SELECT 1 UNION ALL SELECT 2)"))
            session.execute(text("INSERT INTO meters (id) VALUES (NULL)"))
        return write_batch(session, batch, *args, **kwargs)

    monkeypatch.setattr(worker_module, "write_batch", buggy_write_batch)
    worker = start_worker()
    starts = telemetry.interval_range(T0, 4)
    bad = interval_payload(poison, starts)
    for meter in fleet[:4]:
        payload = bad if meter is poison else interval_payload(meter, starts)
        publisher(topic(topic_prefix, meter), payload)
    assert wait_for_count(database_url, models.DeadLetter, 1) == 1
    assert wait_for_count(database_url, models.Reading, 3 * 4) == 3 * 4
    # The writer is alive: what comes after is stored too.
    later = telemetry.interval_range(T0 + timedelta(hours=1), 4)
    publisher(topic(topic_prefix, fleet[0]), interval_payload(fleet[0], later))
    assert wait_for_count(database_url, models.Reading, 4 * 4) == 4 * 4
    assert worker.flush()
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        letter = session.scalars(select(models.DeadLetter)).one()
        stored = set(session.scalars(select(models.Reading.meter_id).distinct()))
    engine.dispose()
    assert bytes(letter.payload) == bad
    if fault == "bug":
        assert letter.reason == "ingest error RuntimeError: simulated bug in the write path"
    elif fault == "cardinality":
        assert letter.reason.startswith("ingest error ProgrammingError:")
        assert "CardinalityViolation" in letter.reason
        assert worker.stats.db_errors == 0, "a refusal was waited on as an outage"
    else:
        assert letter.reason.startswith("ingest error IntegrityError:")
    assert poison.id not in stored
    assert worker.stats.write_errors >= 1
