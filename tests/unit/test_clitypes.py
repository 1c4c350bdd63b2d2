"""The command-line tools' shared pieces: finite numbers, database errors as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError

from app.clitypes import FiniteFloat, run
from app.config import ROOT, ConfigError


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_finite_float_refuses_what_float_range_lets_through(text: str) -> None:
    @click.command()
    @click.option("--x", type=FiniteFloat(min=0))
    def command(x: float) -> None:
        click.echo(x)

    result = CliRunner().invoke(command, ["--x", text])
    assert result.exit_code == 2
    assert "is not a finite number" in result.output or "is not in the range" in result.output
    assert CliRunner().invoke(command, ["--x", "2.5"]).output == "2.5\n"


def test_help_shows_a_finite_float_range_only_when_it_has_one() -> None:
    @click.command()
    @click.option("--free", type=FiniteFloat(), help="no bounds")
    @click.option("--kw", type=FiniteFloat(min=0), help="at least zero")
    def command(free: float, kw: float) -> None:
        """Print nothing."""

    shown = CliRunner().invoke(command, ["--help"]).output
    assert "None" not in shown  # it said "x<=None" for an option without bounds
    assert "x>=0" in shown


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OperationalError("SELECT 1", {}, Exception("no such table: meters")),
            "Error: database: OperationalError: no such table: meters "
            "(run `python -m app.manage migrate`?)",
        ),
        (ConfigError("MQTT URL 'bogus' must start with mqtt://"), "Error: MQTT URL 'bogus'"),
    ],
)
def test_run_turns_database_and_setting_errors_into_one_line(
    error: Exception,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.group()
    def group() -> None:
        """A tool."""

    @group.command()
    def go() -> None:
        raise error

    monkeypatch.setattr("sys.argv", ["tool", "go"])
    with pytest.raises(SystemExit) as stopped:
        run(group)
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["app.manage", "rebuild-rollups"],
        ["app.ingest", "vee", "--last-days", "1"],
        ["simulator", "backfill", "--days", "1", "--no-migrate"],
    ],
)
def test_a_mistyped_sqlite_path_is_an_error_not_a_new_empty_database(
    tmp_path: Path, argv: list[str]
) -> None:
    """SQLite made an empty file at any path; each tool then failed later, or not at all."""
    missing = tmp_path / "typo" / "wattlnie.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{missing}", "WATTLINE_INSTANCE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard, not a speed limit
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: DATABASE_URL: no SQLite database at {missing} "
        "(run `python -m app.manage migrate` to create it)"
    )
    assert not missing.exists()
    assert not missing.parent.exists()
