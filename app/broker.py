"""Embedded MQTT broker (amqtt) on a background thread: the zero-install default for demos and tests."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger(__name__)


def port_is_free(host: str, port: int) -> bool:
    """Return True if nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Clients of the demo broker that give a username get a persistent session (amqtt keeps
# no offline messages for anonymous sessions); the password is not checked, which is why
# the embedded broker only ever listens on loopback.
DEMO_USERNAME = "wattline"


class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accept every loopback client; only named clients count as non-anonymous."""

    async def authenticate(self, *, session: Session) -> bool:
        """Accept the client, marking it anonymous unless it sent a username."""
        session.is_anonymous = not session.username
        return True


class _Broker(Broker):  # type: ignore[misc]
    """amqtt's broker, minus a leak of retained messages to clients that never asked."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt 0.12 replays, on every CONNECT, the retained messages matching *any*
        # client's filters; only send those matching a filter this session holds.
        holders = self._subscriptions.get(subscription[0], [])
        if not any(holder is session for holder, _ in holders):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            # amqtt 0.12's adapter marks a connection closed *before* draining it, so when
            # the drain fails (the client has gone) the socket is never closed; the garbage
            # collector then closes it later with a ResourceWarning that lands in whatever
            # runs at that moment. asyncio's close() is idempotent and never raises.
            writer.close()

    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        # amqtt 0.12 can leave a finished client's socket "closing" for the garbage collector
        # to warn about at a random later moment. Hold every connection until it is really
        # closed, close it here whatever happened, and abort the rest when the broker stops.
        open_writers: set[WriterAdapter] = self.__dict__.setdefault("_open_writers", set())
        open_writers.add(writer)
        try:
            await super()._client_connected(listener_name, reader, writer)
        finally:
            # A peer that vanished makes drain/write_eof fail; the socket still gets closed.
            with contextlib.suppress(OSError, RuntimeError):
                await writer.close()
            await asyncio.sleep(0)  # let the transport's connection_lost callback run
            if _transport_closed(writer):
                open_writers.discard(writer)

    def abort_open_connections(self) -> None:
        """Abort every client socket still open (called once the broker has shut down)."""
        for writer in list(self.__dict__.get("_open_writers", ())):
            transport = _transport(writer)
            if transport is not None:
                transport.abort()


def _transport(writer: WriterAdapter) -> asyncio.WriteTransport | None:
    stream = getattr(writer, "_writer", None)
    if isinstance(stream, asyncio.StreamWriter) and isinstance(
        stream.transport, asyncio.WriteTransport
    ):
        return stream.transport
    return None


def _transport_closed(writer: WriterAdapter) -> bool:
    transport = _transport(writer)
    if transport is None:
        return True
    sock = transport.get_extra_info("socket")
    return sock is None or sock.fileno() == -1


_PUBACK_TIMEOUT = "Timeout waiting for PUBACK"
_PUBACK_LATE = "Received PUBACK for unknown pending message"
_PUBACK_SUMMARY = (
    "amqtt stopped waiting (after its fixed 5 s) for %d PUBACK(s) and then got %d late "
    "(%d and %d in all): the subscriber acknowledges after it stores, but amqtt no longer "
    "keeps such messages for a reconnect (see docs/ingest.md)"
)


class PubackTimeouts(logging.Filter):
    """Fold amqtt's per-message PUBACK timeout logs into one warning a minute, with counts.

    amqtt waits a fixed 5 s for a subscriber's PUBACK, then logs a warning and, for the
    same message, an error with a traceback, and a warning again when the PUBACK comes.
    The ingest acknowledges after its commit, so under a backlog thousands of messages pass
    that wait (see docs/ingest.md): their logs buried all else the demo and benchmark print.
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Report at most once per `every_s` seconds of `clock`."""
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self._since = [0, 0]  # timeouts, late PUBACKs since the last summary
        self._last_report: float | None = None
        self.total = 0
        self.late = 0
        self.tracebacks = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass other records; count timeouts, letting through one summary a period."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TimeoutError) and str(error).startswith(_PUBACK_TIMEOUT):
            self.tracebacks += 1
            return False  # the traceback of a timeout the warning below already counted
        message = record.getMessage()
        if message.startswith(_PUBACK_LATE):
            self.late += 1
            self._since[1] += 1
            return False  # said in the next summary
        if not message.startswith(_PUBACK_TIMEOUT):
            return True
        self.total += 1
        self._since[0] += 1
        now = self._clock()
        if self._last_report is not None and now - self._last_report < self.every_s:
            return False
        record.msg, record.args = _PUBACK_SUMMARY, self._summary(now)
        return True

    def flush(self) -> None:
        """Report what was counted since the last summary, if anything (at broker stop)."""
        if any(self._since):
            log.warning(_PUBACK_SUMMARY, *self._summary(self._clock()))

    def _summary(self, now: float) -> tuple[int, int, int, int]:
        timeouts, late = self._since
        counts = (timeouts, late, self.total, self.late)
        self._since = [0, 0]
        self._last_report = now
        return counts


# One for the process: amqtt's loggers are global, whichever broker logs.
PUBACK_TIMEOUTS = PubackTimeouts()


class EmbeddedBroker:
    """Run an amqtt broker in its own thread and event loop; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        """Listen on host:port; port None (or a taken port) means a free one."""
        self.host = host
        self.port = port if port is not None and port_is_free(host, port) else free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)

    @property
    def url(self) -> str:
        """Return the broker's mqtt:// URL."""
        return f"mqtt://{DEMO_USERNAME}@{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        for name in ("amqtt.mqtt.protocol.handler", "amqtt.broker"):
            logger = logging.getLogger(name)
            if PUBACK_TIMEOUTS not in logger.filters:
                logger.addFilter(PUBACK_TIMEOUTS)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"embedded broker did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed to start: {self._error}") from self._error
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down and join its thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        PUBACK_TIMEOUTS.flush()  # the count since the last summary, not left unsaid

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._drain(loop)
            loop.close()

    @staticmethod
    def _drain(loop: asyncio.AbstractEventLoop) -> None:
        # What asyncio.run does on exit: cancel the client handlers amqtt left running and let
        # them finish, so each socket's close callback runs before the loop is closed. Skipping
        # this leaves transports "closing" for the garbage collector to warn about, much later.
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(asyncio.sleep(0))

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        broker = _Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                # Auth only: no $SYS publisher or packet logger, which cost CPU per message.
                "plugins": {"app.broker.LoopbackAuthPlugin": {}},
            }
        )
        await broker.start()
        self._ready.set()
        await self._stop.wait()
        # amqtt can take a while to say goodbye to every client; don't hold up Ctrl-C for it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(broker.shutdown(), timeout=5)
        broker.abort_open_connections()
        await asyncio.sleep(0)

    def __enter__(self) -> EmbeddedBroker:
        """Start on entering the context."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving the context."""
        self.stop()


# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class MosquittoProcess:
    """A Mosquitto process of our own (tests, benchmarks), persistent on disk, on a free port."""

    def __init__(self, binary: str, workdir: Path, extra: str = "") -> None:
        """Write a config with persistence under `workdir` (plus `extra` lines); not started."""
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
            # The default 1000 queued messages per client drops the rest when a subscriber
            # falls behind; Wattline counts every reading, so it must never drop (docs/ingest.md).
            "max_queued_messages 0\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"{extra}"
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
        if self.running:
            raise RuntimeError("mosquitto is already running")
        # Only this start's log lines count: a restart appends to the same file.
        since = self.log.stat().st_size if self.log.exists() else 0
        # The binary found by which() and a config file we wrote: no untrusted input.
        self._process = subprocess.Popen(  # noqa: S603
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self._process.returncode}: {self.tail()}")
            # Its own log says it listens: the port came from free_port() and was free then,
            # but another test process could have bound it since, and would answer instead.
            if not self._running_since(since):
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        # Not left running: a caller that gets this error never reaches stop().
        self._process.kill()
        self._process.wait()
        raise RuntimeError(f"mosquitto not running on {self.port} after {timeout} s: {self.tail()}")

    def _running_since(self, offset: int) -> bool:
        """Return True once the log, from byte `offset`, says the broker runs on our port.

        Mosquitto logs "Opening ... listen socket on port N." before it binds and "running"
        only after every listener bound; a taken port logs an error and exits instead.
        """
        try:
            with self.log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        return f"listen socket on port {self.port}." in text and " running" in text

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
