"""Replaying dead letters through the real broker and ingest worker, from the portal and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from app import create_app
from app.command_bus import CommandBus, CommandBusError
from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.worker import IngestWorker
from app.manage import cli
from simulator.fleet import Meter
from tests.factories import T0, seed_database
from tests.integration.test_ingest import (
    count,
    interval_payload,
    publisher,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    topic,
    wait_for_count,
)
from tests.integration.test_portal import csrf_from, login, make_settings

STEP = timedelta(minutes=15)


def letters(database_url: str) -> list[models.DeadLetter]:
    """Return every dead letter, oldest first."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(models.DeadLetter).order_by(models.DeadLetter.id)))
    engine.dispose()
    return found


def provision(database_url: str, *meters: Meter) -> None:
    """Add meters to the fleet, as provisioning out of band does."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, list(meters))
    engine.dispose()


def hourly_intervals(database_url: str, meter_id: str) -> int:
    """Return the intervals the meter's hourly rollups count."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(
            select(func.sum(models.HourlyRollup.intervals)).where(
                models.HourlyRollup.meter_id == meter_id
            )
        )
    engine.dispose()
    return int(n or 0)


def test_a_meter_provisioned_late_gets_its_first_readings_by_replay(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    tmp_path: Path,
    publisher: Callable[[str, bytes], None],  # noqa: F811
    start_worker: Callable[[], IngestWorker],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readings of meters not yet provisioned are dead-lettered, then replayed once they are.

    From the portal: the replayed message is stored once, the letter is marked, a second
    replay is refused, and a letter refused for its payload has no Replay at all. From the
    CLI: a meter's letters found by its topic (they name no meter), and --again, which
    stores nothing twice: the hourly rollups still count each interval once.
    """
    fleet = seed_database(database_url, intervals=1)
    late = replace(fleet[0], id=f"{fleet[0].utility_id}-late-1")
    later = replace(fleet[0], id=f"{fleet[0].utility_id}-late-2")
    start_worker()
    starts = telemetry.interval_range(T0, 4)
    publisher(topic(topic_prefix, late), interval_payload(late, starts))
    publisher(topic(topic_prefix, later), interval_payload(later, starts))
    publisher(topic(topic_prefix, fleet[1]), b"not json at all")
    assert wait_for_count(database_url, models.DeadLetter, 3) == 3
    # Two writers may store them in either order: found by topic.
    by_meter = {d.topic.rsplit("/", 2)[1]: d for d in letters(database_url)}
    first, second, bad = by_meter[late.id], by_meter[later.id], by_meter[fleet[1].id]
    assert first.reason == f"unknown meter {late.id!r}"
    assert (first.meter_id, second.meter_id, bad.meter_id) == (None, None, fleet[1].id)
    provision(database_url, late, later)

    app = create_app(
        make_settings(database_url, tmp_path, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    client = app.test_client()
    assert login(client, "admin@wattline.example") == 302
    page = client.get("/dead-letters/").get_data(as_text=True)
    assert f'aria-label="Replay dead letter {first.id}"' in page
    assert f'aria-label="Replay dead letter {bad.id}"' not in page
    path = f"/dead-letters/{first.id}/replay"
    assert client.post(path).status_code == 400  # no CSRF token
    response = client.post(path, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    seeded = len(fleet)  # one interval each
    assert wait_for_count(database_url, models.Reading, seeded + 4) == seeded + 4
    assert {d.id: d.replayed_at is not None for d in letters(database_url)} == {
        first.id: True,
        second.id: False,
        bad.id: False,
    }
    assert client.post(path, data={"csrf_token": csrf_from(page)}).status_code == 409
    refused = client.post(f"/dead-letters/{bad.id}/replay", data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 409
    assert "refused again" in refused.get_data(as_text=True)

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MQTT_URL", mqtt_url)
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", topic_prefix)
    runner = CliRunner()
    assert runner.invoke(cli, ["replay-dead-letters"]).exit_code == 2  # which letters?
    result = runner.invoke(cli, ["replay-dead-letters", "--meter", later.id])
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letters; 0 not replayable" in result.output
    assert wait_for_count(database_url, models.Reading, seeded + 8) == seeded + 8
    result = runner.invoke(cli, ["replay-dead-letters", "--all"])
    assert "replayed 0 dead letters; 1 not replayable" in result.output  # the bad one

    result = runner.invoke(cli, ["replay-dead-letters", "--id", str(first.id), "--again"])
    assert "replayed 1 dead letters" in result.output
    # A new reading of the same meter behind the replay: the same writer takes both, in order.
    publisher(topic(topic_prefix, late), interval_payload(late, [starts[-1] + STEP]))
    assert wait_for_count(database_url, models.Reading, seeded + 9) == seeded + 9
    assert count(database_url, models.DeadLetter) == 3
    assert hourly_intervals(database_url, late.id) == 5
    app.extensions["wattline"]["commands"].close()
    app.extensions["wattline"]["engine"].dispose()


def test_the_command_does_not_replay_what_its_own_replays_dead_letter(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each publish here dead-letters its message again at once, as a failing ingest would.

    Without the ceiling read before the first publish, the run would find every new letter
    on its next page and go on for ever; with it, the one letter is replayed and the copy
    it produced is left for another run.
    """
    fleet = seed_database(database_url, intervals=1)
    meter = fleet[0]
    payload = interval_payload(meter, telemetry.interval_range(T0 + STEP, 1))
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.add(
            models.DeadLetter(
                topic=f"{telemetry.DEFAULT_PREFIX}/{meter.utility_id}/{meter.id}/interval",
                payload=payload,
                reason="ingest error RuntimeError: disk on fire",
                received_at=T0 + STEP,
                meter_id=meter.id,
            )
        )

    calls: list[str] = []

    def publish_and_fail_again(self: CommandBus, topic_: str, body: bytes) -> None:
        calls.append(topic_)
        if len(calls) > 5:  # a run that never ends fails here instead of hanging the suite
            raise CommandBusError("replaying its own dead letters for ever")
        with sessions.begin() as session:
            session.add(
                models.DeadLetter(
                    topic=topic_,
                    payload=body,
                    reason="ingest error RuntimeError: disk on fire",
                    received_at=T0 + STEP,
                    meter_id=meter.id,
                )
            )

    monkeypatch.setattr(CommandBus, "publish", publish_and_fail_again)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MQTT_URL", "mqtt://127.0.0.1:1")
    result = CliRunner().invoke(cli, ["replay-dead-letters", "--reason", "DISK ON"])
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letters" in result.output
    with sessions() as session:
        marked = [d.replayed_at is not None for d in session.scalars(
            select(models.DeadLetter).order_by(models.DeadLetter.id)
        )]  # fmt: skip
    engine.dispose()
    assert marked == [True, False]
