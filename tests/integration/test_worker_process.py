"""`python -m app.ingest` as a process: killed mid-stream, or stopped by SIGTERM, loses nothing.

The worker runs as operators run it, in a process of its own; the test kills it with
SIGKILL (no chance to flush: a crash, an OOM kill, a pulled plug) or stops it with SIGTERM
(a deploy), and checks the stored count against the unique readings published, exactly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.db import models
from app.domain import telemetry
from simulator.fleet import Meter
from tests.factories import T0
from tests.integration.test_ingest import count, interval_payload, topic, wait_for_count
from tests.integration.test_ingest import publisher as publisher

# Mosquitto only. The embedded amqtt broker (the zero-install default of `make demo`, where
# it lives and dies with the demo's own process) forgets a subscriber's unacknowledged QoS 1
# messages when its connection drops, so a worker stopped or killed there loses the messages
# it held; docs/ingest.md, "Worker stops and crashes".
pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.parametrize("mqtt_url", ["mosquitto"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]
READINGS_PER_MESSAGE = 8


class WorkerProcess:
    """`python -m app.ingest` with one persistent client id, restartable; its log in a file."""

    def __init__(self, mqtt_url: str, database_url: str, prefix: str, log_dir: Path) -> None:
        """Describe the worker; nothing runs until start()."""
        self.args = [
            sys.executable,
            "-m",
            "app.ingest",
            "--mqtt-url",
            mqtt_url,
            "--database-url",
            database_url,
            "--prefix",
            prefix,
            "--client-id",
            f"test-proc-{uuid.uuid4().hex[:8]}",
        ]
        self.log_dir = log_dir
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start a run and wait until it reports its broker connection."""
        self.runs += 1
        log = self.log(self.runs)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"},
            )
        deadline = time.monotonic() + 60
        while "connected to broker" not in log.read_text():
            assert self.process.poll() is None, f"worker exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"worker never connected: {log.read_text()}"
            time.sleep(0.05)

    def log(self, run: int) -> Path:
        """Return the log file of run `run` (1-based)."""
        return self.log_dir / f"ingest-{run}.log"

    def signal(self, signum: int, timeout: float = 60) -> int:
        """Send `signum` to the running worker and return its exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill a run still going (a failed test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def worker_process(
    mqtt_url: str, database_url: str, topic_prefix: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """Yield a worker process on the test's broker, database and topic prefix."""
    worker = WorkerProcess(mqtt_url, database_url, topic_prefix, tmp_path)
    yield worker
    worker.close()


def messages(fleet: list[Meter], prefix: str, rounds: int) -> list[tuple[str, bytes]]:
    """Return `rounds` messages a meter, each 8 new readings: none overlaps another."""
    return [
        (topic(prefix, m), interval_payload(m, telemetry.interval_range(start, 8)))
        for start in (T0 + timedelta(hours=2 * i) for i in range(rounds))
        for m in fleet
    ]


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    worker_process: WorkerProcess,
    database_url: str,
    topic_prefix: str,
) -> None:
    """SIGKILL while readings stream in, start it again: the stored count is exact."""
    stream = messages(fleet, topic_prefix, 30)
    unique = READINGS_PER_MESSAGE * len(stream)
    worker_process.start()
    sent = [0]

    def produce() -> None:
        for t, payload in stream:
            publisher(t, payload)
            sent[0] += 1
            time.sleep(0.004)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        # Kill once some readings are stored and the stream is still going.
        deadline = time.monotonic() + 60
        while count(database_url, models.Reading) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        stored_at_kill = count(database_url, models.Reading)
        assert worker_process.signal(signal.SIGKILL) == -signal.SIGKILL
        killed_at = sent[0]
        time.sleep(0.3)  # the stream goes on into the broker's queue for the dead worker
        worker_process.start()
    finally:
        producer.join(120)
    assert 0 < stored_at_kill < unique, "the kill did not land mid-stream"
    assert killed_at < len(stream), "the stream ended before the kill"
    # Redelivery-like duplicates of messages stored before the kill.
    for t, payload in stream[:10]:
        publisher(t, payload)
    assert wait_for_count(database_url, models.Reading, unique, timeout=60) == unique
    time.sleep(0.5)  # anything late or doubled would have to arrive now
    assert count(database_url, models.Reading) == unique
    assert count(database_url, models.DeadLetter) == 0
    # The second run took over the first one's session: the broker kept what it held.
    assert "session present: True" in worker_process.log(2).read_text()
    assert worker_process.signal(signal.SIGTERM) == 0


def test_sigterm_stores_every_message_the_worker_took_before_it_exits(
    fleet: list[Meter],
    publisher: Callable[[str, bytes], None],
    worker_process: WorkerProcess,
    database_url: str,
    topic_prefix: str,
) -> None:
    """SIGTERM mid-stream: the worker writes what it took, exits 0, the rest waits for it."""
    stream = messages(fleet, topic_prefix, 20)
    unique = READINGS_PER_MESSAGE * len(stream)
    worker_process.start()
    for t, payload in stream:
        publisher(t, payload)
    assert worker_process.signal(signal.SIGTERM) == 0
    # Its own account on the way out: every message it received was written and acked.
    line = worker_process.log(1).read_text().rsplit("ingest stopped: ", 1)[-1]
    stats = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    assert stats["received"] > 0
    assert stats["accepted"] == stats["received"]
    assert stats["unacknowledged"] == 0
    # A message paho's thread was decoding when the stop began goes back to the broker.
    assert stats["returned"] in (0, 1)
    taken = stats["received"] - stats["returned"]
    assert stats["readings_offered"] == READINGS_PER_MESSAGE * taken
    assert count(database_url, models.Reading) == stats["readings_offered"]
    # What it had not taken waited at the broker for the next run.
    worker_process.start()
    assert wait_for_count(database_url, models.Reading, unique, timeout=60) == unique
    time.sleep(0.5)
    assert count(database_url, models.Reading) == unique
    assert worker_process.signal(signal.SIGTERM) == 0
