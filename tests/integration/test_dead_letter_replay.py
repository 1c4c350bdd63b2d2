"""Replaying dead letters through the real broker and ingest worker, from the portal and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app import create_app
from app.db import models
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.worker import IngestWorker
from app.manage import cli
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


def letters(database_url: str) -> list[models.DeadLetter]:
    """Return every dead letter, oldest first."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(models.DeadLetter).order_by(models.DeadLetter.id)))
    engine.dispose()
    return found


def test_a_meter_provisioned_late_gets_its_first_readings_by_replay(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    tmp_path: Path,
    publisher: Callable[[str, bytes], None],  # noqa: F811
    start_worker: Callable[[], IngestWorker],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readings of a meter not yet provisioned are dead-lettered, then replayed once it is.

    From the portal: the replayed message is stored once, the letter is marked, and a
    second replay is refused. A letter that is still bad is refused again as a new dead
    letter. From the CLI: the letters a reason selects, not those that run dead-letters.
    """
    fleet = seed_database(database_url, intervals=1)
    newcomer = replace(fleet[0], id=f"{fleet[0].utility_id}-late-1")
    start_worker()
    starts = telemetry.interval_range(T0, 4)
    publisher(topic(topic_prefix, newcomer), interval_payload(newcomer, starts))
    assert wait_for_count(database_url, models.DeadLetter, 1) == 1
    [first] = letters(database_url)
    assert first.reason == f"unknown meter {newcomer.id!r}"

    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        seed_fleet(session, [newcomer])
    engine.dispose()
    app = create_app(
        make_settings(database_url, tmp_path, mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    )
    client = app.test_client()
    assert login(client, "admin@wattline.example") == 302
    page = client.get("/dead-letters/").get_data(as_text=True)
    assert f'aria-label="Replay dead letter {first.id}"' in page
    path = f"/dead-letters/{first.id}/replay"
    assert client.post(path).status_code == 400  # no CSRF token
    response = client.post(path, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    readings_before = len(fleet)  # one seeded interval each
    assert wait_for_count(database_url, models.Reading, readings_before + 4) == readings_before + 4
    [first] = letters(database_url)
    assert first.replayed_at is not None
    again = client.post(path, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 409
    assert "replayed" in client.get("/dead-letters/").get_data(as_text=True)

    # Still bad: published again, refused again, with its reason, as a new letter.
    meter = fleet[1]
    publisher(topic(topic_prefix, meter), b"not json at all")
    assert wait_for_count(database_url, models.DeadLetter, 2) == 2
    bad = letters(database_url)[1]
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MQTT_URL", mqtt_url)
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", topic_prefix)
    runner = CliRunner()
    assert runner.invoke(cli, ["replay-dead-letters"]).exit_code == 2  # which letters?
    result = runner.invoke(cli, ["replay-dead-letters", "--reason", bad.reason[:12].upper()])
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letters" in result.output
    assert wait_for_count(database_url, models.DeadLetter, 3) == 3
    found = letters(database_url)
    assert found[1].replayed_at is not None
    assert (found[2].reason, bytes(found[2].payload), found[2].replayed_at) == (
        bad.reason,
        b"not json at all",
        None,
    )
    # Replaying the meter's letter again (--again) stores nothing twice.
    result = runner.invoke(cli, ["replay-dead-letters", "--id", str(first.id), "--again"])
    assert result.exit_code == 0, result.output
    publisher(topic(topic_prefix, meter), b"still not json")  # a marker behind the replay
    assert wait_for_count(database_url, models.DeadLetter, 4) == 4
    assert count(database_url, models.Reading) == readings_before + 4
    app.extensions["wattline"]["commands"].close()
    app.extensions["wattline"]["engine"].dispose()
