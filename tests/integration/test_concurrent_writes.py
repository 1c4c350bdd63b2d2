"""Check-then-write requests racing each other: one answer each, nothing doubled, no 500."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app import create_app
from tests.factories import seed_database
from tests.integration.test_partners_api import bearer, deals
from tests.integration.test_portal import make_settings
from tests.integration.test_roi_api import NORTHGRID, small_iou

RACERS = 8


@pytest.fixture
def portal(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a database seeded with the fleet, demo logins and partner data."""
    seed_database(database_url, meters=7, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def race(app: Flask, request: Callable[[Any], TestResponse]) -> list[int]:
    """Send RACERS copies of a request at once, each from its own client; their statuses."""
    start = threading.Barrier(RACERS)
    statuses: list[int] = []

    def one() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(request(client).status_code)

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(statuses)


def test_a_partner_registering_one_utility_at_once_gets_one_deal(portal: Flask) -> None:
    client = portal.test_client()
    headers = bearer(client, "rep@northgrid.example")
    before = len(deals(client, headers))
    body = {"utility": "Racecondition Electric", "segment": "iou", "region": "US-MI"}
    statuses = race(portal, lambda c: c.post("/api/v1/deals", headers=headers, json=body))
    assert statuses == [201] + [409] * (RACERS - 1)
    mine = [d for d in deals(client, headers) if d["utility"] == "Racecondition Electric"]
    assert len(mine) == 1
    assert len(deals(client, headers)) == before + 1


def test_versions_saved_at_once_are_numbered_in_turn(portal: Flask) -> None:
    client = portal.test_client()
    headers = bearer(client, NORTHGRID)
    created = client.post(
        "/api/v1/roi/scenarios",
        headers=headers,
        json={
            "name": "race",
            "customer_name": "GLPL",
            "utility_id": "glpl",
            "document": small_iou(),
        },
    )
    assert created.status_code == 201
    sid = created.get_json()["id"]
    body = {"document": small_iou(), "note": "same time"}
    path = f"/api/v1/roi/scenarios/{sid}/versions"
    statuses = race(portal, lambda c: c.post(path, headers=headers, json=body))
    assert statuses == [201] * RACERS
    history = client.get(f"/api/v1/roi/scenarios/{sid}", headers=headers).get_json()
    assert history["latest_version"] == RACERS + 1
    assert sorted(v["version"] for v in history["versions"]) == list(range(1, RACERS + 2))
