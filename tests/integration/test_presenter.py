"""Presenter mode through Flask's test client: toggled by a CSRF-protected form, no open redirect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from tests.factories import seed_database
from tests.integration.test_portal import csrf_from, login, make_settings


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A portal on a seeded database."""
    seed_database(database_url, meters=7, intervals=4)
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def test_presenter_mode_toggles_and_returns_to_the_page(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "se@wattline.example") == 302
    page = client.get("/segments/iou").get_data(as_text=True)
    assert '<body class="presenter">' not in page
    token = csrf_from(page)
    assert client.post("/presenter/toggle", data={"next": "/segments/iou"}).status_code == 400
    response = client.post("/presenter/toggle", data={"next": "/segments/iou", "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/segments/iou"
    assert '<body class="presenter">' in client.get("/").get_data(as_text=True)
    client.post("/presenter/toggle", data={"next": "/", "csrf_token": token})
    assert '<body class="presenter">' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:x"])
def test_presenter_toggle_never_redirects_off_site(app: Flask, target: str) -> None:
    client = app.test_client()
    assert login(client, "rep@northgrid.example") == 302
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post("/presenter/toggle", data={"next": target, "csrf_token": token})
    assert response.headers["Location"] == "/"
