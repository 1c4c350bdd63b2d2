"""The compose file's commands and health checks, run against the real code (no Docker here)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from app.db import models
from app.db.migrate import upgrade
from app.db.session import make_engine, make_sessionmaker
from app.ingest.__main__ import _vee_heartbeat
from app.ingest.__main__ import main as ingest_cli
from app.ingest.worker import IngestWorker
from app.manage import cli as manage_cli
from simulator.cli import cli as simulator_cli
from tests.unit.test_deploy_files import ROOT, command_words, services

CLIS: dict[str, click.Command] = {
    "app.manage": manage_cli,
    "app.ingest": ingest_cli,
    "simulator": simulator_cli,
}


def python_commands() -> list[tuple[str, str, list[str]]]:
    """Return (service, module, arguments) of every `python -m` service command."""
    found = []
    for name, service in services().items():
        words = command_words(service)
        if words[:2] == ["python", "-m"]:
            found.append((name, words[2], words[3:]))
    return found


@pytest.mark.parametrize(("service", "module", "args"), python_commands())
def test_compose_commands_parse_with_their_clis(service: str, module: str, args: list[str]) -> None:
    """Subcommands and options exist as spelt: `migrat` or `--last-dayz` would fail here."""
    command = CLIS[module]
    with command.make_context(module, list(args)) as ctx:
        rest = _unparsed(ctx)
        while isinstance(command, click.Group) and rest:
            name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None, f"{service}: no command {name!r}"
            command = sub
            ctx = command.make_context(name, rest, parent=ctx)
            rest = _unparsed(ctx)
        assert rest == [], f"{service}: arguments left over: {rest}"


def _unparsed(ctx: click.Context) -> list[str]:
    # Click 8 keeps a group's subcommand in protected_args (deprecated: 9 moves it to args).
    with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
        return [*ctx.protected_args, *ctx.args]


def healthchecks() -> list[tuple[str, str]]:
    """Return (service, script) of every `python -c` health check that reads the database."""
    found = []
    for name, service in services().items():
        test = service.get("healthcheck", {}).get("test", [])
        if test[:3] == ["CMD", "python", "-c"] and "DATABASE_URL" in test[3]:
            found.append((name, test[3]))
    return found


def run_check(script: str, database_url: str) -> int:
    """Run a health check script as the container would; return its exit code."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, timeout=60, check=False
    ).returncode


def write_heartbeats(database_url: str, age: timedelta) -> None:
    """Write the ingest's and scheduled VEE's heartbeats as their own code does, `age` old."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    when = datetime.now(UTC) - age
    name = inspect.signature(IngestWorker.__init__).parameters["heartbeat_name"].default
    with sessions.begin() as session:
        session.merge(
            models.ServiceHeartbeat(name=name, broker_connected=True, updated_at=when, details={})
        )
    _vee_heartbeat(sessions, {"done_at": when})
    engine.dispose()


@pytest.mark.parametrize(("service", "script"), healthchecks())
def test_health_checks_read_the_heartbeats_the_services_write(
    tmp_path: Path, service: str, script: str
) -> None:
    """Healthy on a fresh heartbeat, unhealthy with none or a stale one."""
    assert service in {"ingest", "vee"}
    url = f"sqlite:///{tmp_path / 'health.db'}"
    upgrade(url)
    assert run_check(script, url) == 1  # nothing written yet
    write_heartbeats(url, timedelta(seconds=1))
    assert run_check(script, url) == 0
    write_heartbeats(url, timedelta(hours=4))
    assert run_check(script, url) == 1


def test_the_health_checks_cover_the_database_services() -> None:
    assert {name for name, _ in healthchecks()} == {"ingest", "vee"}
