"""Integration fixtures: a private Mosquitto a test may stop and start (the CI one it may not)."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import free_port
from tests.conftest import TEST_MQTT_URL, skip_or_fail

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@pytest.fixture
def mosquitto_url() -> str:
    """Return the shared Mosquitto's URL (TEST_MQTT_URL): for features amqtt lacks."""
    if not TEST_MQTT_URL:
        skip_or_fail("TEST_MQTT_URL not set: no Mosquitto here (CI sets it)")
    return TEST_MQTT_URL


class PrivateMosquitto:
    """A Mosquitto process of the test's own, persistent on disk, on a fixed free port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        """Write a config with persistence under `workdir`; nothing runs until start()."""
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / "mosquitto.log"
        self.config = workdir / "mosquitto.conf"
        # Root: Mosquitto would drop to the `mosquitto` user, who cannot write our tmp dir.
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"user {getpass.getuser()}\n"
            # Sessions and queued QoS 1 messages are saved on a clean stop (SIGTERM) and
            # reloaded on start; autosave 0 means only then, so a restart tests exactly that.
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 0\n"
            # The default 1000 queued messages per client would drop; tests count exactly.
            "max_queued_messages 0\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the broker's mqtt:// URL."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Return True while the process lives."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and wait until it accepts connections."""
        assert not self.running, "already running"
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self._process.returncode}: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto not listening on {self.port} after {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly with SIGTERM (Mosquitto saves its persistence file) and wait."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"mosquitto ignored SIGTERM for {timeout} s") from None

    def tail(self, lines: int = 20) -> str:
        """Return the end of the broker's log (for failure messages)."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """Yield a running private Mosquitto the test may stop and start; stopped afterwards."""
    if MOSQUITTO is None or not os.access(MOSQUITTO, os.X_OK):
        # Not a service CI promises: a machine without the binary skips, even under
        # WATTLINE_REQUIRE_SERVICES; where it exists the test always runs.
        pytest.skip("no mosquitto binary on PATH or in /usr/sbin: cannot restart a broker")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = PrivateMosquitto(MOSQUITTO, workdir)
    broker.start()
    yield broker
    broker.stop()
