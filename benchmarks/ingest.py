"""Ingest benchmarks: MQTT → worker → database against two ceilings measured in the same run.

- the raw broker: a bare paho subscriber draining the same stream (no decoding, no database);
- the bulk load: a binary COPY of the same rows into the same, empty `readings` table
  (SQLite: plain `executemany` into it), i.e. the cheapest way those rows get stored at all.

The publisher runs in its own process, as meters do: it builds its payloads first and
starts on a signal, so the timed part is publishing, delivery and storing only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from app import mqtt as mqtt_adapter
from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest import bulk, columnar, rollups, store, worker
from simulator.fleet import build_fleet

T0 = datetime(2026, 1, 5, tzinfo=UTC)
# The soak publishes a day per round, a thousand rounds in ten minutes: from 2001 they all
# stay in the past (the ingest dead-letters intervals from the future).
SOAK_T0 = datetime(2001, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    """`meters` x `messages` interval messages of `per_message` readings, all distinct."""

    meters: int
    per_message: int
    messages: int

    @property
    def readings(self) -> int:
        """Readings in the whole stream."""
        return self.meters * self.per_message * self.messages

    @property
    def count(self) -> int:
        """Messages in the whole stream."""
        return self.meters * self.messages

    def describe(self) -> str:
        """One line for the document."""
        return (
            f"{self.meters:,} meters x {self.messages} messages x {self.per_message} "
            f"readings ({self.readings:,} readings)"
        )


def message_body(meter_id: str, starts: list[datetime], round_: int) -> bytes:
    """Encode one interval message as the simulator's meters send it: readings and register."""
    readings = tuple(
        telemetry.Reading(s, 1.0 + i % 9, 0.4, 4.0 + i % 9, (120.0, 120.1, 119.9))
        for i, s in enumerate(starts)
    )
    # The cumulative register after the newest reading (a plausible, growing value).
    register = telemetry.Register(
        starts[-1] + timedelta(minutes=15), 1000.0 + 5.0 * len(starts) * (round_ + 1), 400.0
    )
    return telemetry.encode_interval(
        telemetry.IntervalMessage(meter_id, readings, register=register)
    )


def payloads(w: Workload, first: datetime = T0) -> list[tuple[str, str, bytes]]:
    """Return (utility, meter, body) for the stream, in publishing order."""
    fleet = build_fleet(w.meters, seed=1)
    out = []
    for k in range(w.messages):
        start = first + timedelta(minutes=15 * w.per_message * k)
        starts = telemetry.interval_range(start, w.per_message)
        out.extend((m.utility_id, m.id, message_body(m.id, starts, k)) for m in fleet)
    return out


def _publish(
    url: str, prefix: str, w: Workload, ready: EventType, go: EventType, spent: Any
) -> None:
    items = [(telemetry.topic_for(u, m, "interval", prefix), body) for u, m, body in payloads(w)]
    client = mqtt_adapter.make_client(url, f"bench-pub-{uuid.uuid4().hex[:6]}")
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    mqtt_adapter.connect(client)
    while not client.is_connected():
        client.loop(0.1)
    ready.set()
    go.wait()
    before = time.process_time()
    # One thread, as a load generator should be: publish() then writes straight to the
    # socket. With paho's network thread each publish also woke that thread through a
    # socket pair and handed it the interpreter lock, most of the publisher's CPU for
    # small messages. PUBACKs are read between publishes, a window's worth at most ahead.
    window = mqtt_adapter.MAX_INFLIGHT // 2
    for sent, (topic, body) in enumerate(items, 1):
        client.publish(topic, body, qos=1)
        if sent % 64 == 0 or sent - acked >= window:
            client.loop(0)
            while sent - acked >= window:
                client.loop(0.05)
    deadline = time.monotonic() + 300
    while acked < len(items) and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    spent.value = time.process_time() - before


class Publisher:
    """A publishing process: ready once its payloads are built, publishing after go()."""

    def __init__(self, url: str, prefix: str, w: Workload) -> None:
        """Start the process and wait until it is ready to publish."""
        ctx = mp.get_context("spawn")
        self._ready, self._go = ctx.Event(), ctx.Event()
        self._spent = ctx.Value("d", 0.0)
        self._process = ctx.Process(
            target=_publish,
            args=(url, prefix, w, self._ready, self._go, self._spent),
            daemon=True,
        )
        self._process.start()
        if not self._ready.wait(300):
            raise RuntimeError("the publisher never got ready")

    def go(self) -> float:
        """Start publishing; return the start time (perf_counter)."""
        self._go.set()
        return time.perf_counter()

    def join(self) -> None:
        """Wait for the publisher to finish."""
        self._process.join(600)

    @property
    def cpu_seconds(self) -> float:
        """CPU time the publisher spent publishing (after join)."""
        return float(self._spent.value)


@dataclass
class Rate:
    """One measured case."""

    name: str
    items: int
    seconds: float
    # CPU µs per item by process (worker, PostgreSQL, broker, publisher, kernel), if measured.
    cpu: dict[str, float] | None = None
    # The ingest worker's peak resident memory (the largest, if several), if measured.
    peak_rss_mb: float | None = None

    @property
    def per_s(self) -> float:
        """Items per second."""
        return self.items / self.seconds


def raw_broker(url: str, w: Workload) -> Rate:
    """Ceiling: a bare paho subscriber (QoS 1) counting the stream; readings per second."""
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    done = threading.Event()
    got = 0

    def on_message(client: object, userdata: object, msg: object) -> None:
        nonlocal got
        got += 1
        if got == w.count:
            done.set()

    sub = mqtt_adapter.make_client(url, f"bench-sub-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    mqtt_adapter.connect(sub)
    sub.loop_start()
    sub.subscribe(telemetry.subscription("interval", prefix), qos=1)
    subscribed.wait(10)
    publisher = Publisher(url, prefix, w)
    start = publisher.go()
    done.wait(600)
    elapsed = time.perf_counter() - start
    publisher.join()
    sub.disconnect()
    sub.loop_stop()
    if got != w.count:
        raise RuntimeError(f"raw subscriber got {got} of {w.count} messages")
    return Rate("raw broker", w.readings, elapsed)


def seeded(database_url: str, w: Workload) -> None:
    """Seed the workload's fleet into a migrated, empty database."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, build_fleet(w.meters, seed=1))
    engine.dispose()


def reading_rows(w: Workload) -> list[list[tuple[Any, ...]]]:
    """The stream's readings as `readings` rows, in batches the size the worker writes."""
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    for _, meter, body in payloads(w):
        message = telemetry.decode_interval(body)
        rows.extend(store.reading_row(meter, r, now) for r in message.readings)
    size = worker.BATCH_MAX_ROWS
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def reading_copies(w: Workload) -> list[bytes]:
    """The stream's readings as binary COPY data, in batches the size the worker writes."""
    now = datetime.now(UTC)
    per_batch = max(1, worker.BATCH_MAX_ROWS // w.per_message)
    items = payloads(w)
    out = []
    for lo in range(0, len(items), per_batch):
        builder = columnar.Builder()
        for _, meter, body in items[lo : lo + per_batch]:
            message = telemetry.decode_interval(body)
            # Every payload continues its meter's run (one message a meter a batch).
            assert builder.add(meter, telemetry.columns_of(message.readings), now)  # noqa: S101
        out.append(builder.block().reading_copy())
    return out


def bulk_load(database_url: str, w: Workload) -> Rate:
    """Ceiling: the same rows loaded into the empty `readings` table, batch by batch.

    PostgreSQL: COPY data made before the clock starts, so the time is the server's own
    (and the driver's send), with no Python formatting rows in the loop.
    """
    seeded(database_url, w)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    if engine.dialect.name == "postgresql":
        copies = reading_copies(w)
        start = time.perf_counter()
        for data in copies:
            with sessions.begin() as session:
                bulk.copy_rows(session, "readings", store.PG_COLUMNS, data)
        name = "binary COPY into readings"
    else:
        batches = reading_rows(w)
        engine.dispose()
        start = time.perf_counter()
        conn = sqlite3.connect(make_url(database_url).database or "")
        marks = ", ".join("?" * len(store.READING_COLUMNS))
        columns = ", ".join(store.READING_COLUMNS)
        for rows in batches:
            with conn:
                conn.executemany(
                    f"INSERT INTO readings ({columns}) VALUES ({marks})",  # noqa: S608 - fixed names
                    [(*r[:-1], r[-1].replace(tzinfo=None)) for r in rows],
                )
        conn.close()
        name = "executemany into readings"
    elapsed = time.perf_counter() - start
    engine.dispose()
    return Rate(name, w.readings, elapsed)


def stored(database_url: str) -> int:
    """Readings stored."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(models.Reading)) or 0
    engine.dispose()
    return n


def _process_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of every other process: pid → (name, seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            out[int(pid)] = _proc_stat(pid, tick)
        except OSError:
            continue  # gone in between
    return out


def _proc_stat(pid: int | str, tick: int) -> tuple[str, float]:
    """A process's name and CPU seconds (user + system) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / tick


_GROUPS = (
    (("postgres",), "PostgreSQL (all backends)"),
    (("mosquitto",), "Mosquitto"),
    (("kworker", "ksoftirqd", "kdamond", "jbd2"), "kernel threads (disk writeback, network)"),
)


def _cpu_split(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    worker: float,
    publisher: float,
    n: int,
) -> dict[str, float]:
    """CPU µs per item of the worker, PostgreSQL, the broker, the publisher and the kernel."""
    groups = {"ingest worker": worker, "publisher": publisher}
    # By pid, not by name: a kernel worker's name changes with the work it is doing.
    for pid, (name, seconds) in after.items():
        spent = seconds - before.get(pid, (name, 0.0))[1]
        for prefixes, group in _GROUPS:
            if name.startswith(prefixes):
                groups[group] = groups.get(group, 0.0) + spent
    return {k: v / n * 1e6 for k, v in groups.items()}


def _started_worker(
    url: str, database_url: str, prefix: str, share_group: str | None
) -> tuple[worker.IngestWorker, Engine]:
    """Start and connect an ingest worker as `python -m app.ingest` does (GC tuned)."""
    worker.tune_gc()
    worker.tune_malloc()
    engine = make_engine(database_url)
    ingest_worker = worker.IngestWorker(
        url,
        engine,
        prefix=prefix,
        client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
        share_group=share_group,
    )
    ingest_worker.start()
    ingest_worker.wait_connected(10)
    return ingest_worker, engine


def _work(
    url: str,
    database_url: str,
    prefix: str,
    share_group: str | None,
    slot: int,
    counts: Any,
    readings: int,
    events: tuple[EventType, EventType, EventType, EventType],
    result: Any,
) -> None:
    # The worker in a process of its own, as `python -m app.ingest` runs it: a heap of its
    # own too, not the benchmark's (payloads, ceiling rows), which its collector would walk.
    ready, go, finished, release = events
    ingest_worker, engine = _started_worker(url, database_url, prefix, share_group)
    ready.set()
    go.wait()
    cpu = time.process_time()
    deadline = time.monotonic() + 900
    # Done when the workers together were offered the whole stream.
    while time.monotonic() < deadline:
        counts[slot] = ingest_worker.stats.readings_offered
        if sum(counts) >= readings:
            break
        time.sleep(0.005)
    ingest_worker.flush(60)
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable with the parent's.
    result[3 * slot], result[3 * slot + 1] = time.perf_counter(), time.process_time() - cpu
    result[3 * slot + 2] = peak_rss_mb()
    # Connected until the parent has read the machine's CPU: a backend's time leaves
    # /proc with it.
    finished.set()
    release.wait(120)
    ingest_worker.stop()
    engine.dispose()


def ingest(url: str, database_url: str, w: Workload, workers: int = 1) -> Rate:
    """Publisher process → broker → ingest worker process(es) → database, until all is stored.

    With `workers` > 1 they share the stream through an MQTT shared subscription, as
    `python -m app.ingest --share-group` runs them.
    """
    seeded(database_url, w)
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    ctx = mp.get_context("spawn")
    counts, result = ctx.Array("q", workers), ctx.Array("d", 3 * workers)
    group = f"bench{uuid.uuid4().hex[:6]}" if workers > 1 else None
    processes, all_events = [], []
    for slot in range(workers):
        events = (ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event())
        process = ctx.Process(
            target=_work,
            args=(url, database_url, prefix, group, slot, counts, w.readings, events, result),
        )
        process.start()
        processes.append(process)
        all_events.append(events)
    for ready, _, _, _ in all_events:
        if not ready.wait(120):
            raise RuntimeError("an ingest worker never got ready")
    publisher = Publisher(url, prefix, w)
    machine = _process_cpu()
    start = publisher.go()
    for _, go, _, _ in all_events:
        go.set()
    for _, _, finished, _ in all_events:
        finished.wait(1000)
    machine_after = _process_cpu()
    for _, _, _, release in all_events:
        release.set()
    for process in processes:
        process.join(120)
    publisher.join()
    ends, cpus, peaks = result[0::3], result[1::3], result[2::3]
    if any(p.exitcode != 0 for p in processes) or not all(ends):
        raise RuntimeError(f"an ingest worker failed: {[p.exitcode for p in processes]}")
    found = stored(database_url)
    if found != w.readings:
        raise RuntimeError(f"ingest stored {found} readings, expected {w.readings}")
    cpu = _cpu_split(machine, machine_after, sum(cpus), publisher.cpu_seconds, w.readings)
    name = f"ingest → {make_url(database_url).get_backend_name()}"
    return Rate(name, w.readings, max(ends) - start, cpu, max(peaks) or None)


# ---------------------------------------------------------------- where the time goes


@dataclass
class Profile:
    """CPU microseconds per reading, by step, in the worker and in the database backend."""

    steps: list[tuple[str, float, float]]

    def rows(self) -> list[str]:
        """Markdown table rows."""
        out = [f"| {name} | {py:.2f} | {pg:.2f} |" for name, py, pg in self.steps]
        py = sum(s[1] for s in self.steps)
        pg = sum(s[2] for s in self.steps)
        out.append(f"| **total** | **{py:.2f}** | **{pg:.2f}** |")
        return out


def profile(database_url: str, w: Workload) -> Profile | None:
    """Run the worker's steps in this thread and charge CPU time to each (Linux only)."""
    if not os.path.exists("/proc/self/stat") or not database_url.startswith("postgresql"):
        return None
    seeded(database_url, w)
    from sqlalchemy.pool import StaticPool

    engine = make_engine(database_url, poolclass=StaticPool)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    tick = os.sysconf("SC_CLK_TCK")

    def backend_cpu() -> float:
        return _proc_stat(pid, tick)[1]

    directory = store.MeterDirectory()
    with sessions() as session:
        directory.refresh(session)
    items = payloads(w)
    per_batch = max(1, worker.BATCH_MAX_ROWS // w.per_message)
    spent: dict[str, list[float]] = {}

    def charge(name: str, since: tuple[float, float]) -> tuple[float, float]:
        now = (time.thread_time(), backend_cpu())
        acc = spent.setdefault(name, [0.0, 0.0])
        acc[0] += now[0] - since[0]
        acc[1] += now[1] - since[1]
        return now

    received = datetime.now(UTC)
    for lo in range(0, len(items), per_batch):
        mark = (time.thread_time(), backend_cpu())
        decoded = [
            telemetry.decode(telemetry.topic_for(u, m, "interval"), body)
            for u, m, body in items[lo : lo + per_batch]
        ]
        mark = charge("decode and validate (paho thread)", mark)
        builder = columnar.Builder()
        registers = []
        for topic, message in decoded:
            if isinstance(message, telemetry.IntervalMessage):
                if message.register is not None:
                    registers.append(store.register_row(topic.meter_id, message.register, received))
                columns = telemetry.columns_of(message.readings)
                # The payloads are all plain: valid, three-phase, gap-free, one per meter.
                assert columnar.plain(columns)  # noqa: S101 - the benchmark's own workload
                assert builder.add(topic.meter_id, columns, received)  # noqa: S101
        block = builder.block()
        data = block.reading_copy()
        hours = block.hours()
        mark = charge("columns, COPY data and hourly sums (numpy)", mark)
        with sessions.begin() as session:
            bulk.copy_if_all_new(session, "readings", store.PG_COLUMNS, data)
            mark = charge("COPY into readings", mark)
            rollups.add_columns(session, hours, directory.zones)
            mark = charge("write hourly and daily rollups", mark)
            store.add_registers(session, registers)
            mark = charge("write register reads", mark)
        charge("commit", mark)
    engine.dispose()
    n = w.readings
    return Profile([(k, v[0] / n * 1e6, v[1] / n * 1e6) for k, v in spent.items()])


# ---------------------------------------------------------------- memory over time


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux VmHWM), 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1000
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident set size in MB (Linux), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _soak_work(
    url: str, database_url: str, prefix: str, ready: EventType, stop: EventType, offered: Any
) -> None:
    # The soak's worker in a process of its own, so its RSS is the worker's alone and the
    # publisher here does not take its interpreter lock.
    ingest_worker, engine = _started_worker(url, database_url, prefix, None)
    ready.set()
    while not stop.wait(0.05):
        offered.value = ingest_worker.stats.readings_offered
    ingest_worker.stop()
    engine.dispose()


def soak(
    url: str,
    database_url: str,
    seconds: float,
    rate: float,
    progress: Callable[[str], None],
) -> list[tuple[float, float, int]]:
    """Stream `rate` readings/s for `seconds`; return (elapsed s, worker RSS MB, stored)."""
    w = Workload(meters=200, per_message=96, messages=1)
    seeded(database_url, w)
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    ctx = mp.get_context("spawn")
    ready, stop, offered = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    process = ctx.Process(target=_soak_work, args=(url, database_url, prefix, ready, stop, offered))
    process.start()
    if not ready.wait(120):
        raise RuntimeError("the soak's worker never got ready")
    client = mqtt_adapter.make_client(url, f"bench-soak-pub-{uuid.uuid4().hex[:6]}")
    window = mqtt_adapter.PublishWindow(client)
    mqtt_adapter.connect(client)
    client.loop_start()
    fleet = build_fleet(w.meters, seed=1)
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    published = 0
    day = 0
    next_sample = 0.0
    # A day of readings per meter per round, paced to `rate`: below what the worker
    # stores, so memory is measured at a steady state, not while a backlog builds up.
    period = w.meters * 96 / rate
    while (elapsed := time.monotonic() - start) < seconds:
        first = SOAK_T0 + timedelta(days=day)
        starts = telemetry.interval_range(first, 96)
        for m in fleet:
            body = message_body(m.id, starts, day)
            window.acquire()
            client.publish(telemetry.topic_for(m.utility_id, m.id, "interval", prefix), body, 1)
        published += w.meters * 96
        day += 1
        if elapsed >= next_sample:
            samples.append((elapsed, rss_mb(process.pid or 0), int(offered.value)))
            progress(f"soak {elapsed:5.0f} s: RSS {samples[-1][1]:.1f} MB")
            next_sample += max(seconds / 20, 1.0)
        time.sleep(max(0.0, start + day * period - time.monotonic()))
    window.drain(120)
    client.disconnect()
    client.loop_stop()
    deadline = time.monotonic() + 120
    while offered.value < published and time.monotonic() < deadline:
        time.sleep(0.05)
    samples.append((time.monotonic() - start, rss_mb(process.pid or 0), int(offered.value)))
    stop.set()
    process.join(120)
    found = stored(database_url)
    if found != published:
        raise RuntimeError(f"soak stored {found} readings, published {published}")
    return samples
