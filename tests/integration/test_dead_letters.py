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
from app.db import models, queries
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.domain.access import Scope
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
    for before in ("x", "\u00b2", "9" * 30):
        bad = client.get("/dead-letters/", query_string={"before": before})
        assert bad.status_code == 400
        assert "before" in bad.get_data(as_text=True)
    assert "bad glpl" not in client.get("/dead-letters/", query_string={"before": "1"}).get_data(
        as_text=True
    )


def _replay(client: FlaskClient, letter_id: int) -> TestResponse:
    page = client.get("/dead-letters/").get_data(as_text=True)
    return client.post(f"/dead-letters/{letter_id}/replay", data={"csrf_token": csrf_from(page)})


def _failed_write(database_url: str) -> int:
    """Add a dead letter a failed write left for a millbrook meter; return its id."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        meter = session.scalars(
            select(models.Meter).where(models.Meter.utility_id == "millbrook")
        ).first()
        assert meter is not None
        message = telemetry.IntervalMessage(meter.id, (make_reading(T0),))
        letter = models.DeadLetter(
            topic=f"{PREFIX}/millbrook/{meter.id}/interval",
            payload=telemetry.encode_interval(message),
            reason="ingest error RuntimeError: simulated",
            received_at=T0,
            meter_id=meter.id,
        )
        session.add(letter)
        session.flush()
        letter_id = letter.id
    engine.dispose()
    return letter_id


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("ops@millbrook.example", 403),  # sees dead letters, does not run the feed
        ("rep@northgrid.example", 403),
        ("manager@northgrid.example", 503),  # allowed; the broker URL goes nowhere
    ],
)
def test_replay_is_for_feed_roles_and_their_own_letters(
    database_url: str, tmp_path: Path, letters: dict[str, str], email: str, status: int
) -> None:
    """Roles and tenants are checked before anything is published, and nothing is marked."""
    failed = _failed_write(database_url)
    app = create_app(make_settings(database_url, tmp_path, mqtt_url="mqtt://127.0.0.1:1"))
    client = app.test_client()
    login(client, email)
    ghost = 3  # the third letter of the fixture: an unknown meter's, vendor staff only
    assert _replay(client, ghost).status_code == (403 if status == 403 else 404)
    assert _replay(client, failed).status_code == status
    html = client.get("/dead-letters/").get_data(as_text=True)
    # The one replayable letter is the failed write: the fixture's own were refused for
    # what their payloads hold, and the ghost's is not theirs.
    assert html.count("Replay dead letter") == (1 if status == 503 else 0)
    assert all(letter.replayed_at is None for letter in _all_letters(database_url))
    app.extensions["wattline"]["engine"].dispose()


def test_a_letter_refused_for_its_payload_is_not_replayed(
    database_url: str, tmp_path: Path, letters: dict[str, str]
) -> None:
    """Bad JSON, a wrong schema, an impossible value: 409 with the reason, nothing published."""
    app = create_app(make_settings(database_url, tmp_path, mqtt_url="mqtt://127.0.0.1:1"))
    client = app.test_client()
    login(client, "admin@wattline.example")
    for letter_id in (1, 2, 4, 5):  # glpl, millbrook, odd topic, impossible value
        response = _replay(client, letter_id)
        assert response.status_code == 409, letter_id
        assert "not replayed" in response.get_data(as_text=True)
    assert "Replay dead letter" not in client.get("/dead-letters/").get_data(as_text=True)
    app.extensions["wattline"]["engine"].dispose()


def test_replay_without_a_broker_is_503_and_marks_nothing(
    database_url: str, tmp_path: Path, letters: dict[str, str]
) -> None:
    failed = _failed_write(database_url)
    app = create_app(make_settings(database_url, tmp_path, mqtt_url="mqtt://127.0.0.1:1"))
    client = app.test_client()
    login(client, "admin@wattline.example")
    response = _replay(client, failed)
    assert response.status_code == 503
    assert "not replayed" in response.get_data(as_text=True)
    assert all(letter.replayed_at is None for letter in _all_letters(database_url))
    app.extensions["wattline"]["engine"].dispose()


def test_one_tenants_letter_is_not_found_for_another(
    database_url: str, letters: dict[str, str]
) -> None:
    failed = _failed_write(database_url)  # a millbrook (northgrid) meter's
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert queries.dead_letter(session, Scope(distributor_id="northgrid"), failed)
        assert queries.dead_letter(session, Scope(utility_id="millbrook"), failed)
        assert queries.dead_letter(session, Scope(distributor_id="prairiemeter"), failed) is None
        assert queries.dead_letter(session, Scope(utility_id="glpl"), failed) is None
        assert queries.dead_letter(session, Scope(distributor_id="northgrid"), 3) is None
    engine.dispose()


def _all_letters(database_url: str) -> list[models.DeadLetter]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(models.DeadLetter)))
    engine.dispose()
    return found
