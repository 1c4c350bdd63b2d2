"""Demo mode off: the published demo logins and the demo controls are gone; real logins work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from app.db import models
from app.db.seed import DEMO_LOGINS
from app.db.session import make_engine, make_sessionmaker
from app.manage import cli
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

REAL = "ops.lead@utility.example.com"
REAL_PASSWORD = "correct horse battery staple"


@pytest.fixture
def apps(database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    """The same seeded database served in demo mode and, with the same secret, outside it."""
    seed_database(database_url, meters=7, intervals=1)
    demo = create_app(make_settings(database_url, tmp_path))
    real = create_app(make_settings(database_url, tmp_path, demo_mode=False))
    yield demo, real
    for app in (demo, real):
        app.extensions["wattline"]["engine"].dispose()


def create_user(database_url: str, *args: str, password: str = REAL_PASSWORD) -> tuple[int, str]:
    """Run `app.manage create-user`; return its exit code and output."""
    result = CliRunner().invoke(
        cli,
        ["create-user", *args],
        env={"DATABASE_URL": database_url, "WATTLINE_USER_PASSWORD": password},
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("demo_login", DEMO_LOGINS, ids=lambda d: d.email)
def test_demo_logins_work_only_in_demo_mode(apps: tuple[Flask, Flask], demo_login: object) -> None:
    demo, real = apps
    email = demo_login.email  # type: ignore[attr-defined]
    assert login(demo.test_client(), email) == 302
    refused = real.test_client()
    assert login(refused, email) == 401  # the form again, with its error
    assert refused.get("/api/v1/meters").status_code == 401
    body = {"email": email, "password": PASSWORD}
    assert real.test_client().post("/api/v1/auth/token", json=body).status_code == 401
    # A session and a token from the demo are no good once the mode is off (same secret).
    carried = demo.test_client()
    assert login(carried, email) == 302
    cookie = carried.get_cookie("session")
    assert cookie is not None
    token = demo.test_client().post("/api/v1/auth/token", json=body).get_json()["token"]
    stale = real.test_client()
    stale.set_cookie("session", cookie.value)
    assert stale.get("/api/v1/meters").status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    assert real.test_client().get("/api/v1/meters", headers=headers).status_code == 401


def test_demo_controls_exist_only_in_demo_mode(
    apps: tuple[Flask, Flask], database_url: str
) -> None:
    """'Reset demo' deletes events, alarms and dead letters: a real fleet must not have it."""
    demo, real = apps
    code, output = create_user(
        database_url, "--email", REAL, "--name", "Ops Lead", "--role", "vendor_admin"
    )
    assert (code, output.strip()) == (0, f"created {REAL} (vendor_admin)")
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        session.add(
            models.DeadLetter(topic="t", payload=b"x", reason="test", received_at=datetime.now(UTC))
        )
    client = real.test_client()
    assert login(client, REAL, REAL_PASSWORD) == 302
    assert 'href="/demo' not in client.get("/").get_data(as_text=True)
    assert client.get("/demo/").status_code == 404
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/demo/reset", data={"csrf_token": token}).status_code == 404
    # Nor the story, whose incident step drives the simulator over its control topic.
    assert client.post("/presenter/toggle", data={"csrf_token": token}).status_code == 302
    assert "Tell the story" not in client.get("/").get_data(as_text=True)
    for path in ("/story/iou/start", "/story/iou/incident"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    assert client.get("/story/iou/1").status_code == 404
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(models.DeadLetter)) == 1
    engine.dispose()
    presenter = demo.test_client()
    assert login(presenter, REAL, REAL_PASSWORD) == 302
    assert presenter.get("/demo/").status_code == 200
    assert 'href="/demo' in presenter.get("/").get_data(as_text=True)
    token = csrf_from(presenter.get("/login").get_data(as_text=True))
    assert presenter.post("/presenter/toggle", data={"csrf_token": token}).status_code == 302
    assert "Tell the story" in presenter.get("/").get_data(as_text=True)
    assert presenter.post("/story/iou/start", data={"csrf_token": token}).status_code == 302


def test_create_user_makes_a_scoped_login_and_resets_it(
    apps: tuple[Flask, Flask], database_url: str
) -> None:
    _, real = apps
    args = ["--email", REAL, "--name", "Rep", "--role", "distributor_rep"]
    assert create_user(database_url, *args, "--distributor", "northgrid")[0] == 0
    client = real.test_client()
    assert login(client, REAL, REAL_PASSWORD) == 302
    utilities = {m["utility_id"] for m in client.get("/api/v1/meters").get_json()["meters"]}
    assert utilities
    assert utilities <= {"glpl", "atlantic", "millbrook", "fedcenter"}  # NorthGrid's
    token = real.test_client().post(
        "/api/v1/auth/token", json={"email": REAL, "password": REAL_PASSWORD}
    )
    bearer = {"Authorization": f"Bearer {token.get_json()['token']}"}
    assert real.test_client().get("/api/v1/meters", headers=bearer).status_code == 200
    # Again with a new password: the same login, updated, and what the old one opened ends.
    again = create_user(database_url, *args, "--distributor", "northgrid", password="x" * 12)
    assert again == (
        0,
        f"updated {REAL} (distributor_rep)\nended its 2 open logins (sessions and tokens)\n",
    )
    assert client.get("/api/v1/meters").status_code == 401
    assert real.test_client().get("/api/v1/meters", headers=bearer).status_code == 401
    assert login(real.test_client(), REAL, REAL_PASSWORD) == 401
    assert login(real.test_client(), REAL, "x" * 12) == 302


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--email", "not-an-address", "--role", "vendor_se"], REAL_PASSWORD, "--email"),
        (["--email", "admin@wattline.example", "--role", "vendor_se"], REAL_PASSWORD, "demo login"),
        (["--email", REAL, "--role", "vendor_se"], "short", "at least 12"),
        (["--email", REAL, "--role", "distributor_rep"], REAL_PASSWORD, "needs a distributor"),
        (["--email", REAL, "--role", "distributor_rep", "--distributor", "nobody"], REAL_PASSWORD,
         "no distributor 'nobody'"),
        (["--email", REAL, "--role", "vendor_se", "--utility", "glpl"], REAL_PASSWORD,
         "drop --utility"),
        (["--email", REAL, "--role", "building_manager", "--utility", "atlantis"], REAL_PASSWORD,
         "no utility 'atlantis'"),
    ],
)  # fmt: skip
def test_create_user_refuses_what_would_not_work(
    database_url: str, args: list[str], password: str, message: str
) -> None:
    seed_database(database_url, meters=7, intervals=1)
    code, output = create_user(database_url, *args, "--name", "X", password=password)
    assert code == 2
    assert message in output
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(models.User).where(models.User.email == REAL)) is None
    engine.dispose()


def test_create_user_stores_the_address_in_lower_case_and_finds_it_in_any_case(
    apps: tuple[Flask, Flask], database_url: str
) -> None:
    """Ann@X and ann@x are one login: stored once, in lower case, updated by either."""
    _, real = apps
    mixed = REAL[0].upper() + REAL[1:-7] + REAL[-7:].upper()
    args = ["--name", "Rep", "--role", "vendor_se"]
    assert create_user(database_url, "--email", mixed, *args)[0] == 0
    assert create_user(database_url, "--email", REAL, *args, password="y" * 12)[1].startswith(
        f"updated {REAL} "
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        emails = session.scalars(select(models.User.email)).all()
    assert [e for e in emails if e.lower() == REAL] == [REAL]
    engine.dispose()
    assert login(real.test_client(), mixed, "y" * 12) == 302
