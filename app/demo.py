"""`python -m app.demo` (what `make demo` runs): broker, ingest, simulator and portal in one go."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from types import FrameType

import click
from sqlalchemy import select

from app.broker import EmbeddedBroker, free_port, port_is_free
from app.clitypes import run
from app.config import Settings
from app.db import migrate
from app.db.models import ServiceHeartbeat
from app.db.seed import DEMO_LOGINS, seed_fleet, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
from simulator.fleet import build_fleet

READY_TIMEOUT_S = 60
# The heartbeat `python -m app.ingest` writes (IngestWorker's default name).
INGEST_HEARTBEAT = "ingest"


def _prepare_database(settings: Settings) -> int:
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        added = seed_fleet(session, build_fleet(settings.demo_meters, settings.demo_seed))
        seed_users(session, settings.demo_password)
        seed_partners(session, datetime.now(UTC))
    engine.dispose()
    return added


def _wait_for_ingest(
    settings: Settings,
    since: datetime,
    ingest: subprocess.Popen[bytes],
    stopping: threading.Event,
) -> bool:
    """Wait until the ingest worker reports itself subscribed (its heartbeat, after SUBACK)."""
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline and ingest.poll() is None and not stopping.is_set():
            with engine.connect() as conn:
                beat = conn.execute(
                    select(ServiceHeartbeat.broker_connected, ServiceHeartbeat.updated_at).where(
                        ServiceHeartbeat.name == INGEST_HEARTBEAT
                    )
                ).one_or_none()
            # updated_at is a UTCDateTime: aware on SQLite too.
            if beat is not None and beat[0] and beat[1] >= since:
                return True
            time.sleep(0.1)
        return False
    finally:
        engine.dispose()


def _wait_for_portal(
    url: str, procs: list[subprocess.Popen[bytes]], stopping: threading.Event
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stopping.is_set():
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


# prctl(2)'s PR_SET_PDEATHSIG: the kernel signals a process when the one that started it dies.
_PR_SET_PDEATHSIG = 1
# Looked up here, in the runner: the child between fork and exec only calls it.
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None


def _dies_with(runner: int) -> None:
    """In a child before exec: SIGTERM when the runner dies, even by SIGKILL (Linux only)."""
    # Its own session keeps Ctrl-C and a closed terminal from it; without this, a runner
    # killed outright (kill -9, an out-of-memory kill) left every child running.
    if _PRCTL is not None:
        # The runner's own SIGTERM handler (it only sets a flag) is inherited until exec: the
        # default action, so a SIGTERM before exec ends the child instead of being swallowed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != runner:  # it died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    # One at a time, in the order given (simulator first, ingest last): the ingest then stores
    # the simulator's last intervals and "offline" statuses before it flushes and exits.
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@click.command()
def main() -> None:
    """Set up the database and run the whole demo until Ctrl-C."""
    os.environ["WATTLINE_DEMO"] = "1"
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # amqtt warns about every late or duplicate PUBACK; on a demo screen that is noise.
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    settings = Settings.from_env()
    click.echo("Wattline demo: migrating and seeding the database …")
    added = _prepare_database(settings)
    click.echo(f"  {settings.demo_meters} meters ({added} new), database {settings.database_url}")

    broker: EmbeddedBroker | None = None
    mqtt_url = settings.mqtt_url
    if mqtt_url is None:
        broker = EmbeddedBroker(port=1883).start()
        mqtt_url = broker.url
    port = settings.port
    if port == 0 or not port_is_free("127.0.0.1", port):
        taken = port
        port = free_port()
        if taken:  # PORT=0 asks for any free port; say so only when one was refused
            click.echo(f"  port {taken} is taken; the portal uses {port} instead")

    env = {
        **os.environ,
        "WATTLINE_DEMO": "1",
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.database_url,
        "MQTT_URL": mqtt_url,
        "MQTT_TOPIC_PREFIX": settings.topic_prefix,
        "PYTHONUNBUFFERED": "1",
        # Simulated time runs ahead of the wall clock: accept its "future" intervals.
        "INGEST_FUTURE_TOLERANCE_S": os.environ.get(
            "INGEST_FUTURE_TOLERANCE_S", str(10 * 365 * 86400)
        ),
    }
    py = sys.executable
    commands = {
        "ingest": [py, "-m", "app.ingest"],
        "portal": [
            py,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "8",
            "--access-logfile",
            "-",
            "--log-level",
            "warning",
            "app:create_portal()",
        ],
        "simulator": [
            py,
            "-m",
            "simulator",
            "run",
            # The sales demo's scripted storm, tamper, tower outage and 3G sunset.
            "--scenario",
            "demo",
            "--meters",
            str(settings.demo_meters),
            "--seed",
            str(settings.demo_seed),
            "--speed",
            str(settings.demo_speed),
        ],
    }
    procs: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # SIGHUP: the terminal closed. The children run in sessions of their own, so nothing
    # else would stop them: they were left running, the portal holding its port.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        for name, argv in commands.items():
            click.echo(f"  starting {name}")
            since = datetime.now(UTC)
            # Own session: Ctrl-C reaches only this runner, which stops the children in order.
            child = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                env=env,
                start_new_session=True,
                # Between fork and exec, beside the broker's thread: it makes system calls
                # only (prctl found beforehand), so it takes no lock that thread could hold.
                preexec_fn=functools.partial(_dies_with, os.getpid()),
            )
            procs.append(child)
            # The broker keeps messages only for sessions that exist: the simulator starts
            # once the ingest has subscribed, or its first intervals would reach nobody.
            if name == "ingest" and not _wait_for_ingest(settings, since, procs[-1], stopping):
                if stopping.is_set():  # Ctrl-C while it connected: start nothing more
                    break
                raise click.ClickException("the ingest never subscribed; see the messages above")
        portal_url = f"http://127.0.0.1:{port}"
        up = not stopping.is_set() and _wait_for_portal(portal_url, procs, stopping)
        if not up and not stopping.is_set():
            raise click.ClickException("the demo did not come up; see the messages above")
        if up:
            _banner(settings, portal_url, mqtt_url)
        while not stopping.is_set():
            dead = [
                (name, p.returncode)
                for name, p in zip(commands, procs, strict=True)
                if p.poll() is not None
            ]
            if dead:
                raise click.ClickException(
                    f"{dead[0][0]} exited with code {dead[0][1]}; stopping the demo"
                )
            stopping.wait(0.5)
        click.echo("\nStopping the demo …")
    finally:
        _stop(list(reversed(procs)))
        if broker is not None:
            broker.stop()
    click.echo("Demo stopped.")


def _banner(settings: Settings, portal_url: str, mqtt_url: str) -> None:
    host_port = mqtt_url.split("@")[-1].removeprefix("mqtt://")
    host, _, port = host_port.partition(":")
    lines = [
        "",
        "=" * 72,
        f"  Portal:   {portal_url}",
        f"  Broker:   {mqtt_url}",
        f"  Watch:    mosquitto_sub -h {host} -p {port} -t '{settings.topic_prefix}/#' -v",
        f"  Health:   {portal_url}/api/v1/health",
        f"  Fleet:    {settings.demo_meters} meters at {settings.demo_speed:g}x simulated time",
        "",
        f"  Demo logins (password: {settings.demo_password}):",
        *[f"    {d.email:<32} {d.role.value}" for d in DEMO_LOGINS],
        "",
        "  Ctrl-C stops everything.",
        "=" * 72,
    ]
    click.echo("\n".join(lines))


if __name__ == "__main__":
    run(main, prog_name="python -m app.demo")
