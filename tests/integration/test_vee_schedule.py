"""Scheduled VEE: `python -m app.ingest vee --last-days N --every S` as compose runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from app.db import models, queries
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry, vee
from app.ingest.__main__ import main
from app.ingest.store import Accepted, MeterDirectory, write_batch
from tests.factories import make_reading, seed_database

ROOT = Path(__file__).resolve().parents[2]
STEP = timedelta(minutes=15)


def compose_healthcheck(service: str) -> list[str]:
    """Return the `python -c` healthcheck of a compose service, as a command to run here."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    test: list[str] = compose["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return [sys.executable, "-c", test[3]]


def healthy(database_url: str) -> bool:
    """Run the vee service's compose healthcheck against the database; True if it passes."""
    check = subprocess.run(
        compose_healthcheck("vee"),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        timeout=60,
        check=False,
    )
    return check.returncode == 0


def heartbeat(database_url: str) -> dict[str, Any] | None:
    """Return the details of scheduled VEE's heartbeat row, if any."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        beat = session.get(models.ServiceHeartbeat, queries.VEE_HEARTBEAT)
        details = dict(beat.details) if beat else None
    engine.dispose()
    return details


def store_yesterday_with_a_gap(database_url: str) -> tuple[str, list[datetime]]:
    """Store yesterday's 96 intervals (UTC) of one meter but 10:00-11:00; return the gap.

    The tests run VEE over the last two days: should a UTC midnight pass while they run,
    this yesterday is still in the window.
    """
    (meter,) = seed_database(database_url, meters=1, intervals=4)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = telemetry.interval_range(today - timedelta(days=1), 96)
    gap = day[40:44]
    readings = tuple(
        make_reading(s, kwh=10.0 + i % 3, demand_kw=4 * (10.0 + i % 3))
        for i, s in enumerate(day)
        if s not in gap
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        write_batch(
            session,
            [
                Accepted(
                    telemetry.Topic(
                        telemetry.DEFAULT_PREFIX, meter.utility_id, meter.id, "interval"
                    ),
                    telemetry.IntervalMessage(meter.id, readings),
                    b"",
                    datetime.now(UTC),
                )
            ],
            MeterDirectory(),
        )
    engine.dispose()
    return meter.id, gap


def finished_passes(database_url: str) -> int:
    """Return how many passes scheduled VEE reports done (0 while one runs, or before)."""
    beat = heartbeat(database_url)
    return int(beat["passes"]) if beat and beat["state"] == "done" else 0


def qualities(database_url: str, meter_id: str, starts: list[datetime]) -> list[str]:
    """Return the stored quality of each of `starts` (missing ones left out)."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = session.scalars(
            select(models.Reading.quality)
            .where(models.Reading.meter_id == meter_id, models.Reading.start.in_(starts))
            .order_by(models.Reading.start)
        ).all()
    engine.dispose()
    return list(found)


def test_scheduled_vee_runs_until_sigterm_and_keeps_a_heartbeat(
    database_url: str, tmp_path: Path
) -> None:
    """The compose `vee` service: estimates yesterday's gap, beats, is healthy, stops on TERM."""
    meter_id, gap = store_yesterday_with_a_gap(database_url)
    assert qualities(database_url, meter_id, gap) == []
    assert not healthy(database_url), "healthy before VEE ever ran"
    log = tmp_path / "vee.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.ingest",
                "--database-url",
                database_url,
                "vee",
                "--last-days",
                "2",
                "--every",
                "0.5",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while finished_passes(database_url) < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no second pass"
            time.sleep(0.1)
        assert healthy(database_url)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    # The signal came between passes ("done"), or during one, which then stops before its
    # next meter ("stopped"); either way the last finished pass is on record.
    beat = heartbeat(database_url)
    assert beat is not None
    assert beat["state"] in ("done", "stopped")
    assert beat["passes"] >= 2
    assert process.returncode == 0, output
    assert qualities(database_url, meter_id, gap) == [vee.ESTIMATED_LINEAR] * 4
    assert_window(beat, days=2)
    # /api/v1/health tells VEE's beat from the ingest's.
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = queries.health(session, datetime.now(UTC))
    engine.dispose()
    assert found.vee_done_at is not None
    assert found.ingest_seen_at is None


def test_one_scheduled_pass_without_every_then_exit(database_url: str) -> None:
    """`--last-days` alone runs one pass over the whole days before today and returns."""
    meter_id, gap = store_yesterday_with_a_gap(database_url)
    result = CliRunner().invoke(main, ["--database-url", database_url, "vee", "--last-days", "2"])
    assert result.exit_code == 0, result.output
    assert f"{meter_id}: 0 questionable, 4 linear" in result.output
    assert qualities(database_url, meter_id, gap) == [vee.ESTIMATED_LINEAR] * 4
    beat = heartbeat(database_url)
    assert beat is not None
    assert (beat["state"], beat["passes"], beat["meters"]) == ("done", 1, 1)
    assert_window(beat, days=2)


def assert_window(beat: dict[str, Any], days: int) -> None:
    """The pass judged `days` whole UTC days and finished just now (a midnight may pass)."""
    end = telemetry.parse_time(beat["end"], "end")
    assert end == end.replace(hour=0, minute=0, second=0, microsecond=0)
    assert telemetry.parse_time(beat["start"], "start") == end - timedelta(days=days)
    done = telemetry.parse_time(beat["done_at"], "done_at")
    assert end <= done <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        # Passes keep starting (a crash, a restart) and none has ever finished.
        ({"state": "running", "passes": 0, "done_at": None}, False),
        ({"state": "running", "passes": 0, "done_at": timedelta(hours=4)}, False),
        ({"state": "failed", "done_at": timedelta(hours=1)}, True),
        ({"state": "done", "passes": 3, "done_at": timedelta(minutes=1)}, True),
    ],
)
def test_the_vee_healthcheck_wants_a_pass_finished_within_three_hours(
    database_url: str, details: dict[str, Any], expected: bool
) -> None:
    """The compose healthcheck judges by when a pass last finished, not by any heartbeat."""
    seed_database(database_url, meters=1, intervals=4)
    now = datetime.now(UTC)
    ago = details["done_at"]
    doc = {**details, "done_at": telemetry.format_time(now - ago) if ago else None}
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.add(
            models.ServiceHeartbeat(
                name=queries.VEE_HEARTBEAT, broker_connected=False, updated_at=now, details=doc
            )
        )
    engine.dispose()
    assert healthy(database_url) is expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --start and --end, or --last-days"),
        (["--start", "2026-03-02"], "give --start and --end, or --last-days"),
        (["--last-days", "2", "--start", "2026-03-02"], "--last-days replaces"),
        (["--start", "2026-03-02", "--end", "2026-03-03", "--every", "60"], "--every needs"),
        (["--last-days", "0"], "--last-days"),
        # Tracebacks, a 1.8 GB window or rules silently off (NaN compares false) before.
        (["--start", "2025-03-08", "--end", "9999-12-31"], "'9999-12-31' is not between"),
        (["--start", "2025-01-01", "--end", "2026-03-01"], "limited to 366 days"),
        (["--start", "0001-01-01", "--end", "2025-03-11"], "'0001-01-01' is not between"),
        (["--last-days", "1000000"], "--last-days"),
        (["--last-days", "1", "--spike-ratio", "nan"], "'nan' is not a finite number"),
        (["--last-days", "1", "--high-demand-kw", "nan"], "'nan' is not a finite number"),
        (["--last-days", "1", "--max-linear-gap", "inf"], "--max-linear-gap"),
        (["--last-days", "1", "--reference-lookback-days", "100000000"], "--reference-lookback"),
    ],
)
def test_scheduled_vee_options_are_checked(
    database_url: str, extra: list[str], message: str
) -> None:
    """A window given twice, or not at all, is a usage error naming the options."""
    result = CliRunner().invoke(main, ["--database-url", database_url, "vee", *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_a_scheduled_vee_for_an_unknown_meter_stops_instead_of_retrying(database_url: str) -> None:
    # It was caught as a failed pass and retried every tick for ever.
    seed_database(database_url, meters=1, intervals=1)
    args = ["--database-url", database_url, "vee", "--last-days", "1", "--every", "1"]
    result = CliRunner().invoke(main, [*args, "--meter", "ghost"])
    assert result.exit_code == 2
    assert "unknown meter(s) ghost" in result.output
