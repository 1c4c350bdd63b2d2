"""The dead-letter page: reasons and raw payloads, role-gated and scoped to the tenant's meters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app import create_app
from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.store import Accepted, MeterDirectory, Rejected, write_batch
from simulator.fleet import Meter
from tests.factories import T0, make_reading, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

PREFIX = "wattline/v1"


@pytest.fixture
def letters(database_url: str) -> dict[str, str]:
    """Seed the fleet and dead-letter one message per case; return case → raw payload."""
    fleet: list[Meter] = seed_database(database_url, intervals=1)
    by_utility = {m.utility_id: m for m in fleet}
    glpl, millbrook = by_utility["glpl"], by_utility["millbrook"]
    now = datetime.now(UTC)
    payloads = {
        "glpl": '{"oops": "<script>alert(1)</script>"}',
        "millbrook": "not json at all",
        "unknown": '{"meter_id": "ghost-1"}',
        "odd-topic": "{}",
    }
    batch: list[Accepted | Rejected] = [
        Rejected(f"{PREFIX}/glpl/{glpl.id}/interval", payloads["glpl"].encode(), "bad glpl", now),
        Rejected(
            f"{PREFIX}/millbrook/{millbrook.id}/interval",
            payloads["millbrook"].encode(),
            "bad millbrook",
            now,
        ),
        Rejected(f"{PREFIX}/glpl/ghost-1/interval", payloads["unknown"].encode(), "ghost", now),
        Rejected("elsewhere", payloads["odd-topic"].encode(), "odd topic", now),
    ]
    # An impossible value from a known meter is attributed to it as well.
    future = telemetry.IntervalMessage(
        millbrook.id, (make_reading(telemetry.floor_interval(now) + (now - T0)),)
    )
    batch.append(
        Accepted(
            telemetry.Topic(PREFIX, "millbrook", millbrook.id, "interval"),
            future,
            telemetry.encode_interval(future),
            now,
        )
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        result = write_batch(session, batch, MeterDirectory())
    engine.dispose()
    assert result.dead_letters == 5
    return payloads


@pytest.fixture
def app(database_url: str, tmp_path: Path, letters: dict[str, str]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


@pytest.mark.parametrize(
    ("email", "reasons"),
    [
        (
            "admin@wattline.example",
            {"bad glpl", "bad millbrook", "ghost", "odd topic", "impossible value"},
        ),
        (
            "se@wattline.example",
            {"bad glpl", "bad millbrook", "ghost", "odd topic", "impossible value"},
        ),
        ("manager@northgrid.example", {"bad glpl", "bad millbrook", "impossible value"}),
        ("ops@millbrook.example", {"bad millbrook", "impossible value"}),
    ],
)
def test_ops_roles_see_their_tenants_dead_letters(
    app: Flask, email: str, reasons: set[str]
) -> None:
    client = app.test_client()
    login(client, email)
    response = client.get("/dead-letters/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    everything = {"bad glpl", "bad millbrook", "ghost", "odd topic", "impossible value"}
    for reason in everything:
        assert (reason in html) == (reason in reasons), reason
    assert 'href="/dead-letters/"' in client.get("/").get_data(as_text=True)


def test_payload_is_shown_raw_but_escaped(app: Flask, letters: dict[str, str]) -> None:
    client = app.test_client()
    login(client, "admin@wattline.example")
    html = client.get("/dead-letters/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "not json at all" in html


@pytest.mark.parametrize("email", ["rep@northgrid.example", "facilities@fedcenter.example"])
def test_other_roles_are_refused(app: Flask, email: str) -> None:
    client = app.test_client()
    login(client, email)
    assert client.get("/dead-letters/").status_code == 403
    assert 'href="/dead-letters/"' not in client.get("/").get_data(as_text=True)


def test_anonymous_is_sent_to_login_and_bad_paging_is_400(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/dead-letters/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    login(client, "admin@wattline.example")
    bad = client.get("/dead-letters/", query_string={"before": "x"})
    assert bad.status_code == 400
    assert "before" in bad.get_data(as_text=True)
    assert "bad glpl" not in client.get("/dead-letters/", query_string={"before": "1"}).get_data(
        as_text=True
    )


def _replay(client: FlaskClient, letter_id: int) -> TestResponse:
    page = client.get("/dead-letters/").get_data(as_text=True)
    return client.post(f"/dead-letters/{letter_id}/replay", data={"csrf_token": csrf_from(page)})


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("ops@millbrook.example", 403),  # sees dead letters, does not run the feed
        ("rep@northgrid.example", 403),
        ("manager@northgrid.example", 404),  # the ghost meter's letter names no meter of theirs
    ],
)
def test_replay_is_for_feed_roles_and_their_own_letters(
    database_url: str, tmp_path: Path, letters: dict[str, str], email: str, status: int
) -> None:
    """Refused before anything is published: the broker URL goes nowhere."""
    app = create_app(make_settings(database_url, tmp_path, mqtt_url="mqtt://127.0.0.1:1"))
    client = app.test_client()
    login(client, email)
    ghost = 3  # the third letter of the fixture: an unknown meter, vendor staff only
    assert _replay(client, ghost).status_code == status
    html = client.get("/dead-letters/").get_data(as_text=True)
    assert ("Replay dead letter" in html) == (email == "manager@northgrid.example")
    assert all(letter.replayed_at is None for letter in _all_letters(database_url))
    app.extensions["wattline"]["engine"].dispose()


def test_replay_without_a_broker_is_503_and_marks_nothing(
    database_url: str, tmp_path: Path, letters: dict[str, str]
) -> None:
    app = create_app(make_settings(database_url, tmp_path, mqtt_url="mqtt://127.0.0.1:1"))
    client = app.test_client()
    login(client, "admin@wattline.example")
    response = _replay(client, 1)
    assert response.status_code == 503
    assert "not replayed" in response.get_data(as_text=True)
    assert all(letter.replayed_at is None for letter in _all_letters(database_url))
    app.extensions["wattline"]["engine"].dispose()


def _all_letters(database_url: str) -> list[models.DeadLetter]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(models.DeadLetter)))
    engine.dispose()
    return found
