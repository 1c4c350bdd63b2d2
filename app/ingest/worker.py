"""MQTT → database ingest worker: decode on paho's thread, write batches on our own.

Messages are acknowledged to the broker only after their batch is committed (paho
manual ack) and the session is persistent (clean_session=False), so a crash or a
database outage never loses a reading: the broker redelivers, and the idempotent
insert makes the redelivery harmless.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from app import mqtt as mqtt_adapter
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry, vee
from app.ingest.handoff import Handoff
from app.ingest.store import Accepted, Inbound, MeterDirectory, Rejected, write_batch

log = logging.getLogger(__name__)

# Module-level timing so tests can shorten them.
# A batch closes at this many rows (a backlog message counts once per reading), after
# BATCH_WAIT_S, or when nothing arrives for BATCH_LINGER_S: big enough to amortise the
# commit, small enough to acknowledge within a fraction of a second. At full rate the
# 0.2 s usually closes it first; 40,000 against 10,000 rows stored 148,000-150,000
# instead of 129,000-139,000 readings/s here (fewer commits, savepoints and upserts).
BATCH_MAX_ROWS = 40_000
BATCH_WAIT_S = 0.2
BATCH_LINGER_S = 0.02
QUEUE_SIZE = 20_000
# And at most this many readings queued (split between the writers): a batch ready for
# each writer when it comes back. Mosquitto 2.0.11 ignores its in-flight limit once the
# worker acknowledges anything, so a backlog of day-long messages came in as fast as paho
# could decode them: 12,500 messages (1.2 million readings) queued and 717 MB of worker
# in a benchmark run, against 251 MB with the queue bounded near a batch a writer.
QUEUE_ROWS = 2 * BATCH_MAX_ROWS
HEARTBEAT_S = 5.0
RETRY_MAX_S = 10.0
KINDS_CONSUMED: tuple[telemetry.Kind, ...] = ("interval", "event", "status", "reply")

# Leaving a share group: after the UNSUBACK, wait this long without a message before
# disconnecting (the broker still sends what it had already routed to this worker).
SHARE_DRAIN_QUIET_S = 1.0


def tune_gc() -> None:
    """Collect garbage far less often in an ingest process (call once, at start-up).

    A worker allocates a few objects per reading and keeps almost none of them, so the
    default collector (a pass every 700 allocations, full passes over everything queued)
    cost about as much CPU as decoding did; measured in benchmarks.md's profile. Freezing
    what start-up loaded also keeps it out of every later pass.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


# glibc's mallopt parameter for the size above which a block is its own mapping.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def tune_malloc() -> bool:
    """Keep glibc from moving large blocks onto the heap (call once, at start-up).

    A batch's numpy columns and COPY data are blocks of hundreds of kilobytes. glibc maps
    each such block on its own and unmaps it on free, but after the first free it raises
    that threshold to the block's size, and from then on they come from the heaps of the
    three threads, which fragment: the worker's RSS crept up a few MB a minute over a
    soak. A fixed threshold (glibc's default value) stops the adjustment. False where the
    C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


@dataclass
class IngestStats:
    """Counters for logs, the heartbeat and tests."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    batches: int = 0
    readings_offered: int = 0
    dead_letters: int = 0
    db_errors: int = 0
    write_errors: int = 0
    unacknowledged: int = 0
    # Received as the worker began to stop, so never queued nor acknowledged: the broker
    # delivers it again to the next run (at most the one message paho's thread was decoding).
    returned: int = 0


class IngestWorker:
    """Subscribe to the fleet's telemetry and store it; start(), then stop() flushes."""

    def __init__(
        self,
        mqtt_url: str,
        database: str | Engine,
        *,
        prefix: str = telemetry.DEFAULT_PREFIX,
        client_id: str = "wattline-ingest",
        heartbeat_name: str = "ingest",
        limits: vee.Plausibility | None = None,
        share_group: str | None = None,
        writers: int | None = None,
    ) -> None:
        """Configure the worker; nothing connects until start(); share_group splits the load.

        `writers` is how many batches are written at once (default: 2 on PostgreSQL, so one
        batch is prepared while the database writes the other; 1 on SQLite, one writer).
        """
        self.prefix = prefix
        self.share_group = share_group
        self.filters = [telemetry.subscription(k, prefix) for k in KINDS_CONSUMED]
        if share_group:
            self.filters = [mqtt_adapter.shared_filter(share_group, f) for f in self.filters]
        self.client_id = client_id
        self.heartbeat_name = heartbeat_name
        self.limits = limits or vee.Plausibility()
        self.stats = IngestStats()
        self._owns_engine = isinstance(database, str)
        self._engine = make_engine(database) if isinstance(database, str) else database
        self._sessions: sessionmaker[Session] = make_sessionmaker(self._engine)
        self._meters = MeterDirectory()
        if writers is None:
            writers = 2 if self._engine.dialect.name == "postgresql" else 1
        # One queue per writer, each meter always on the same one: two writers never store
        # the same meter's rows at once, so its rollups have one writer in this process.
        share = max(1, writers)
        self._queues: list[Handoff[Inbound]] = [
            Handoff(QUEUE_SIZE // share, weight=_rows, max_weight=QUEUE_ROWS // share)
            for _ in range(share)
        ]
        self._accepting = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._leaving = threading.Event()
        self._unsubscribed = threading.Event()
        self._last_message = 0.0
        self._generation = 0
        self._writers = [
            threading.Thread(
                target=self._write_loop, args=(n,), name=f"ingest-writer-{n}", daemon=True
            )
            for n in range(len(self._queues))
        ]
        self._stats_lock = threading.Lock()
        self._client = mqtt_adapter.make_client(
            mqtt_url, client_id, clean_session=False, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_message = self._on_message

    @property
    def broker_connected(self) -> bool:
        """Return True while the MQTT connection is up."""
        return self._connected.is_set()

    def start(self, connect_timeout: float = mqtt_adapter.CONNECT_TIMEOUT_S) -> None:
        """Load the meter directory, connect, subscribe and start writing."""
        with self._sessions() as session:
            self._meters.refresh(session)
        # Visible to the portal from the start, not only after the first batch.
        self._write_heartbeat(connected=False)
        self._accepting.set()
        for writer in self._writers:
            writer.start()
        mqtt_adapter.connect(self._client)
        self._client.loop_start()
        if not self._connected.wait(connect_timeout):
            log.warning("not connected to the broker after %.0f s; still trying", connect_timeout)

    @property
    def queued_readings(self) -> int:
        """Return the readings received and waiting for a writer (bounded by QUEUE_ROWS)."""
        return sum(q.weight for q in self._queues)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed (SUBACK received)."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, flush and acknowledge what was taken, then disconnect."""
        if self.share_group:
            self._leave_share_group(timeout)
        self._accepting.clear()
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for writer in self._writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        self._write_heartbeat(connected=False)
        self._client.disconnect()
        self._client.loop_stop()
        if self._owns_engine:
            self._engine.dispose()
        log.info("ingest stopped: %s", self.stats)

    def _leave_share_group(self, timeout: float) -> None:
        # A broker keeps giving a persistent session that is merely disconnected its turn
        # of the shared stream (Mosquitto queues it until that client id returns), so a
        # worker leaving for good unsubscribes first: new messages then go to the others.
        self._leaving.set()
        if not self._connected.is_set():
            log.warning("leaving share group while disconnected: this session keeps its share")
            return
        self._client.unsubscribe(self.filters)
        if not self._unsubscribed.wait(min(timeout, mqtt_adapter.CONNECT_TIMEOUT_S)):
            log.warning("no UNSUBACK from the broker: this session may keep its share")
            return
        # What the broker routed here before the UNSUBACK still arrives: take and ack it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self._last_message >= SHARE_DRAIN_QUIET_S
            if quiet and self._unfinished() == 0:
                return
            time.sleep(0.05)
        log.warning("messages still arriving after %.0f s; the rest stay in this session", timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._unfinished() == 0:
                return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------ paho thread

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        if self._leaving.is_set():
            return
        # Resubscribe on every connect: a broker restart may have lost the session.
        client.subscribe([(f, 1) for f in self.filters])
        log.info("connected to broker (session present: %s)", flags.session_present)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", failed)
            return
        # Only now is every published reading guaranteed to reach us.
        self._connected.set()

    def _on_unsubscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._unsubscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        # From here on nothing received so far is acknowledged: paho empties its outgoing
        # queue on reconnect, so a PUBACK queued now would go out on the next connection.
        self._generation += 1
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); paho will reconnect", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set():
            # Not acknowledged: the persistent session redelivers it to the next worker.
            return
        self._last_message = time.monotonic()
        received_at = datetime.now(UTC)
        payload = bytes(msg.payload)
        mid = msg.mid if msg.qos else 0
        item: Inbound
        try:
            topic, message = telemetry.decode(msg.topic, payload, self.prefix)
            item = Accepted(topic, message, payload, received_at, mid, self._generation)
            self.stats.accepted += 1
        except telemetry.ContractError as exc:
            item = Rejected(msg.topic, payload, str(exc), received_at, mid, self._generation)
            self.stats.rejected += 1
            log.warning("dead-lettering message on %s: %s", msg.topic, exc)
        except Exception as exc:  # a decoder bug must not kill the paho thread
            reason = f"decoder error {type(exc).__name__}: {exc}"
            item = Rejected(msg.topic, payload, reason, received_at, mid, self._generation)
            self.stats.rejected += 1
            log.exception("dead-lettering message on %s after an unexpected error", msg.topic)
        self.stats.received += 1
        meter = item.topic.meter_id if isinstance(item, Accepted) else item.topic
        target = self._queues[hash(meter) % len(self._queues)]
        # Blocking here is the backpressure: paho stops reading and the broker holds messages.
        while self._accepting.is_set():
            if target.put(item, timeout=0.5):
                return
        self.stats.returned += 1

    # ------------------------------------------------------------ writer thread

    def _unfinished(self) -> int:
        return sum(q.unfinished for q in self._queues)

    def _take_batch(self, source: Handoff[Inbound]) -> list[Inbound]:
        # Close the batch once the stream pauses: the broker sends only so many messages
        # before they are acknowledged, and they are acknowledged when this batch commits.
        return source.take(
            BATCH_MAX_ROWS,
            first_wait=0.2,
            total_wait=BATCH_WAIT_S,
            linger=BATCH_LINGER_S,
        )

    def _write_loop(self, index: int) -> None:
        last_beat = 0.0
        beat_connected = False
        source = self._queues[index]
        while True:
            batch = self._take_batch(source)
            if batch:
                self._commit_with_retry(batch, source)
            now = time.monotonic()
            connected = self.broker_connected
            # Every HEARTBEAT_S, and at once when subscribed or disconnected: the portal's
            # broker status, and the demo, which starts the simulator only once subscribed.
            if index == 0 and (now - last_beat >= HEARTBEAT_S or connected != beat_connected):
                self._write_heartbeat(connected=connected)
                last_beat, beat_connected = now, connected
            if self._stopping.is_set() and not source:
                return

    def _commit_with_retry(
        self, batch: list[Inbound], source: Handoff[Inbound], *, isolating: bool = False
    ) -> None:
        delay = 0.5
        again = not isolating  # a fault in the messages gets one more try, then halving
        while True:
            try:
                with self._sessions.begin() as session:
                    result = write_batch(session, batch, self._meters, self.limits)
                self._meters.months_committed(result.new_partitions)
                break
            except Exception as exc:
                if isinstance(exc, SQLAlchemyError) and not _refused(exc):
                    if self._database_away(exc, batch, source, delay):
                        return
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                # The database refused the rows themselves, or they trip a bug in the write
                # path: a fault in the messages, which retrying for ever cannot mend. The
                # writer must not die of it either (its queue would stall, unacked).
                if self._fault(batch, source, exc, again):
                    again = False
                    continue
                return
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.readings_offered += result.readings_offered
            self.stats.dead_letters += result.dead_letters
        # A packet id is only meaningful on the connection that received it: after a
        # reconnect the broker redelivers (same id) or has forgotten, and a stale id
        # could acknowledge a different, not yet stored message.
        generation = self._generation
        mqtt_adapter.ack_all(
            self._client,
            [item.mid for item in batch if item.mid and item.connection == generation],
        )
        self._discard(batch, source)

    def _database_away(
        self, exc: SQLAlchemyError, batch: list[Inbound], source: Handoff[Inbound], delay: float
    ) -> bool:
        """Count a database failure and wait `delay`; True if shutting down (batch left)."""
        self._months_unknown()
        with self._stats_lock:
            self.stats.db_errors += 1
        if self._stopping.is_set():
            # Unacknowledged, so the broker keeps them for the next run.
            log.error(
                "database unavailable at shutdown; %d messages left to the broker", len(batch)
            )
            self._discard(batch, source)
            return True
        log.error(
            "database write failed (%s: %s); retrying in %.1f s",
            type(exc).__name__,
            # The server's own first line: what an operator needs to tell why.
            (str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines() or [""])[0][:300],
            delay,
        )
        time.sleep(delay)
        return False

    def _fault(
        self, batch: list[Inbound], source: Handoff[Inbound], exc: Exception, again: bool
    ) -> bool:
        """Handle a batch that fails for what is in it; True to try the same batch once more.

        One more try first (a passing fault loses nothing); then halve the batch until the
        message that fails is alone, and dead-letter that one, raw and with the error, like
        any unusable message. A fault every message trips dead-letters them all: visible,
        with its reason, in the portal's dead letters, and the stream goes on.
        """
        self._months_unknown()
        with self._stats_lock:
            self.stats.write_errors += 1
        if again:
            log.exception("writing %d messages failed; trying once more", len(batch))
            time.sleep(0.5)
            return True
        log.warning("writing %d messages failed again (%s); halving", len(batch), exc)
        if len(batch) > 1:
            half = len(batch) // 2
            self._commit_with_retry(batch[:half], source, isolating=True)
            self._commit_with_retry(batch[half:], source, isolating=True)
        elif isinstance(batch[0], Accepted):
            self._commit_with_retry([_failed(batch[0], exc)], source, isolating=True)
        else:
            # Even its dead letter cannot be written. The broker redelivers it only after a
            # reconnect; until then it holds one of the session's in-flight slots.
            log.error("message on %s left unacknowledged", batch[0].topic)
            with self._stats_lock:
                self.stats.unacknowledged += 1
            self._discard(batch, source)
        return False

    def _months_unknown(self) -> None:
        # A rolled-back batch may have created a month's partition in its transaction:
        # the next one reads the catalogue again instead of trusting what it noted.
        self._meters.months_unknown()

    def _discard(self, batch: list[Inbound], source: Handoff[Inbound]) -> None:
        source.done(len(batch))

    def _write_heartbeat(self, *, connected: bool) -> None:
        try:
            with self._sessions.begin() as session:
                session.merge(
                    models.ServiceHeartbeat(
                        name=self.heartbeat_name,
                        broker_connected=connected,
                        updated_at=datetime.now(UTC),
                        details={
                            "client_id": self.client_id,
                            "share_group": self.share_group,
                            "received": self.stats.received,
                            "dead_letters": self.stats.dead_letters,
                            "queue": sum(len(q) for q in self._queues),
                            "queued_readings": self.queued_readings,
                        },
                    )
                )
        except SQLAlchemyError as exc:
            log.warning("heartbeat not written: %s", exc.__class__.__name__)


# SQLSTATE classes in which the server refuses what the statement carries: more than one
# row where one was expected (21), a value (22), a constraint (23), a program limit such
# as an index row too large or too many parameters (54, which halving the batch can
# mend). Every other class waits for the database or an operator (08 connection, 40
# deadlock, 53 disk full, 57 shut down, 42 a missing table before the migrations ran), so
# the writer keeps retrying them.
_REFUSED_CLASSES = frozenset({"21", "22", "23", "54"})


def _refused(exc: SQLAlchemyError) -> bool:
    """Return True if the database refused the rows themselves (a value, a constraint)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    # psycopg names the SQLSTATE; a CardinalityViolation is its ProgrammingError, which by
    # class alone would look like a database to wait for, and stall the writer for ever.
    state = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    if isinstance(state, str) and len(state) == 5:
        return state[:2] in _REFUSED_CLASSES
    if isinstance(exc, DataError | IntegrityError):
        return True
    # A value SQLAlchemy could not bind is not the driver's error: the messages' fault too.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _failed(item: Accepted, exc: Exception) -> Rejected:
    """Return `item` as a dead letter for the error writing it raised."""
    try:
        text = str(exc)
    except Exception:  # describing the error must not kill the writer too
        # Seen: a value nested ~1,000 deep fails to serialise, and then so does the
        # message of the error SQLAlchemy wraps around that.
        text = "(its message could not be formatted)"
    reason = f"ingest error {type(exc).__name__}: {text}"
    return Rejected(
        str(item.topic), item.payload, reason, item.received_at, item.mid, item.connection
    )


def _rows(item: Inbound) -> int:
    if isinstance(item, Accepted) and isinstance(item.message, telemetry.IntervalMessage):
        return len(item.message.readings)
    return 1
