"""Channel security: access matrix (every role x every partner page and endpoint) and attacks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app
from app.db import channel, models
from app.db.session import make_sessionmaker
from app.domain.access import Role, scope_for
from tests.factories import PASSWORD, seed_database
from tests.integration.test_portal import csrf_from, login, make_settings

EMAILS = (
    None,
    "admin@wattline.example",
    "se@wattline.example",
    "manager@northgrid.example",
    "rep@northgrid.example",
    "rep@prairiemeter.example",
    "ops@millbrook.example",
    "facilities@fedcenter.example",
)


@dataclass(frozen=True)
class Ids:
    """Ids of one NorthGrid and one Prairie object of each kind."""

    ng_deal: int
    pm_deal: int
    ng_rfx: int
    pm_rfx: int
    ng_req: int
    pm_req: int


@pytest.fixture
def portal(database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Ids]]:
    """A seeded portal plus one RFx document per distributor."""
    seed_database(database_url, meters=7, intervals=1)
    flask_app = create_app(make_settings(database_url, tmp_path))
    engine = flask_app.extensions["wattline"]["engine"]
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as s:
        docs = {}
        for email in ("rep@northgrid.example", "rep@prairiemeter.example"):
            u = s.scalars(select(models.User).where(models.User.email == email)).one()
            who = channel.Actor(
                u.id,
                Role(u.role),
                scope_for(u.role, u.distributor_id, u.utility_id),
                u.distributor_id,
            )
            docs[u.distributor_id] = channel.create_rfx(
                s, who, title=f"RFI {u.distributor_id}", text="Encrypted?\nBuffered?",
                partner=None, deal_id=None, now=now,
            )  # fmt: skip
        s.flush()

        def first(model: type[models.Base], column: object, value: object) -> int:
            return int(s.scalar(select(func.min(model.id)).where(column == value)))  # type: ignore[attr-defined]

        def open_deal(partner: str, status: str) -> int:
            return int(
                s.scalar(
                    select(func.min(models.Deal.id)).where(
                        models.Deal.distributor_id == partner, models.Deal.status == status
                    )
                )
            )

        ids = Ids(
            # A submitted NorthGrid deal and an approved Prairie one: the moves below differ.
            ng_deal=open_deal("northgrid", "submitted"),
            pm_deal=open_deal("prairiemeter", "approved"),
            ng_rfx=docs["northgrid"].id,
            pm_rfx=docs["prairiemeter"].id,
            ng_req=first(models.RfxRequirement, models.RfxRequirement.rfx_id, docs["northgrid"].id),
            pm_req=first(
                models.RfxRequirement, models.RfxRequirement.rfx_id, docs["prairiemeter"].id
            ),
        )
    yield flask_app, ids
    engine.dispose()


def client_for(app: Flask, email: str | None) -> FlaskClient:
    """Return a client logged in as `email` (None: anonymous)."""
    client = app.test_client()
    if email is not None:
        assert login(client, email) == 302
    return client


def side(email: str | None) -> str:
    """Return who the caller is for the matrix: anon, vendor, ng, pm or customer."""
    if email is None:
        return "anon"
    if email.endswith("@wattline.example"):
        return "vendor"
    if email.endswith("@northgrid.example"):
        return "ng"
    if email.endswith("@prairiemeter.example"):
        return "pm"
    return "customer"


# Every GET page and endpoint of the workspace, with the status each kind of caller gets.
# Columns: vendor, ng (NorthGrid staff), pm (Prairie staff). Anonymous callers are sent
# to the login page (API: 401) and customers always get 403.
READS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("/partners/", (302, 302, 302)),
    ("/partners/deals", (200, 200, 200)),
    ("/partners/deals/{ng_deal}", (200, 200, 404)),
    ("/partners/deals/{pm_deal}", (200, 404, 200)),
    ("/partners/prospects", (200, 200, 200)),
    ("/partners/registry", (200, 403, 403)),
    ("/partners/rfx", (200, 200, 200)),
    ("/partners/rfx/{ng_rfx}", (200, 200, 404)),
    ("/partners/rfx/{pm_rfx}", (200, 404, 200)),
    ("/partners/rfx/{ng_rfx}/matrix.csv", (200, 200, 404)),
    ("/partners/rfx/{pm_rfx}/matrix.xlsx", (200, 404, 200)),
    ("/partners/prices", (200, 200, 200)),
    ("/partners/kpis", (200, 200, 200)),
    ("/partners/kpis.csv", (200, 200, 200)),
    ("/partners/kpis?partner=northgrid", (200, 200, 404)),
    ("/api/v1/deals", (200, 200, 200)),
    ("/api/v1/deals/{ng_deal}", (200, 200, 404)),
    ("/api/v1/deals/{pm_deal}", (200, 404, 200)),
)


def expected(email: str | None, path: str, statuses: tuple[int, int, int]) -> int:
    """Return the status the access rules demand."""
    who = side(email)
    if who == "anon":
        return 401 if path.startswith("/api/") else 302
    if who == "customer":
        return 403
    return statuses[("vendor", "ng", "pm").index(who)]


@pytest.mark.parametrize("email", EMAILS)
def test_read_access_matrix(portal: tuple[Flask, Ids], email: str | None) -> None:
    app, ids = portal
    client = client_for(app, email)
    for template, statuses in READS:
        path = template.format(**ids.__dict__)
        response = client.get(path)
        assert response.status_code == expected(email, path, statuses), path
        if side(email) == "anon" and not path.startswith("/api/"):
            assert "/login" in response.headers["Location"]


def writes(ids: Ids) -> list[tuple[str, str, dict[str, str], tuple[int, int, int]]]:
    """Every state-changing form and API call, with the status per caller (CSRF included)."""
    reg = {"utility": "Harbor Test Utility", "segment": "iou", "region": "US-MI"}
    return [
        # method, path, data, (vendor, ng, pm)
        ("POST", "/partners/deals", reg, (400, 302, 422)),  # vendor must name a partner
        ("POST", f"/partners/deals/{ids.ng_deal}/status", {"status": "proposal"}, (409, 409, 404)),
        ("POST", f"/partners/deals/{ids.pm_deal}/status", {"status": "lost"}, (302, 404, 302)),
        ("POST", f"/partners/deals/{ids.ng_deal}/roi", {"in.endpoints": "5"}, (409, 409, 404)),
        ("POST", f"/partners/deals/{ids.pm_deal}/roi/evaluate", {}, (409, 404, 403)),
        ("POST", "/partners/rfx", {"title": "T", "requirements": "R1"}, (400, 302, 302)),
        (
            "POST",
            f"/partners/rfx/{ids.ng_rfx}/requirements/{ids.ng_req}",
            {"answer": "Yes", "compliance": "compliant"},
            (302, 403, 404),
        ),
        (
            "POST",
            f"/partners/rfx/{ids.pm_rfx}/requirements/{ids.pm_req}",
            {"answer": "Yes", "compliance": "compliant"},
            (302, 404, 403),
        ),
        (
            "POST",
            "/partners/prospects",
            {"name": "Lead", "segment": "iou", "region": "US-OH"},
            (302, 403, 403),
        ),
        ("API-POST", "/api/v1/deals", {**reg, "utility": "Harbor Second"}, (400, 201, 422)),
        ("PATCH", f"/api/v1/deals/{ids.ng_deal}", {"note": "n"}, (200, 200, 404)),
        ("PATCH", f"/api/v1/deals/{ids.pm_deal}", {"note": "n"}, (200, 404, 200)),
    ]


@pytest.mark.parametrize("email", EMAILS)
def test_write_access_matrix(portal: tuple[Flask, Ids], email: str | None) -> None:
    app, ids = portal
    client = client_for(app, email)
    who = side(email)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for method, path, data, statuses in writes(ids):
        if method == "POST":
            response = client.post(path, data={**data, "csrf_token": token})
        else:
            verb = client.post if method == "API-POST" else client.patch
            response = verb(path, json=data, headers={"X-CSRFToken": token})
        if who == "anon":
            want = 401 if path.startswith("/api/") else 302
        elif who == "customer":
            want = 403
        else:
            want = statuses[("vendor", "ng", "pm").index(who)]
        assert response.status_code == want, (method, path, response.get_data(as_text=True)[:300])


def count(app: Flask, model: type[models.Base]) -> int:
    """Count rows of a table."""
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_guessing_ids_reveals_only_own_objects(portal: tuple[Flask, Ids]) -> None:
    app, ids = portal
    client = client_for(app, "rep@northgrid.example")
    token = csrf_from(client.get("/partners/deals").get_data(as_text=True))
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as s:
        owners = {d.id: d.distributor_id for d in s.scalars(select(models.Deal))}
        statuses = {d.id: d.status for d in s.scalars(select(models.Deal))}
    for deal_id in range(1, max(owners) + 4):
        want = 200 if owners.get(deal_id) == "northgrid" else 404
        assert client.get(f"/partners/deals/{deal_id}").status_code == want
        assert client.get(f"/api/v1/deals/{deal_id}").status_code == want
        if want == 404:
            assert (
                client.patch(
                    f"/api/v1/deals/{deal_id}",
                    json={"status": "lost"},
                    headers={"X-CSRFToken": token},
                ).status_code
                == 404
            )
            assert (
                client.post(
                    f"/partners/deals/{deal_id}/status",
                    data={"status": "lost", "csrf_token": token},
                ).status_code
                == 404
            )
    # Another tenant's requirement id under one's own document is still not found.
    assert (
        client.post(
            f"/partners/rfx/{ids.ng_rfx}/requirements/{ids.pm_req}",
            data={"answer": "x", "compliance": "no", "csrf_token": token},
        ).status_code
        == 404
    )
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as s:
        assert {d.id: d.status for d in s.scalars(select(models.Deal))} == statuses
    pm = client_for(app, "rep@prairiemeter.example").get(f"/api/v1/deals/{ids.pm_deal}").get_json()
    assert pm["note"] == ""


def test_changing_the_tenant_id_in_forms_and_json_is_refused(portal: tuple[Flask, Ids]) -> None:
    app, ids = portal
    client = client_for(app, "rep@northgrid.example")
    token = csrf_from(client.get("/partners/deals").get_data(as_text=True))
    deals_before, rfx_before = count(app, models.Deal), count(app, models.RfxDocument)
    form = {
        "utility": "Harbor Test",
        "segment": "iou",
        "region": "US-NE",
        "partner": "prairiemeter",
    }
    assert client.post("/partners/deals", data={**form, "csrf_token": token}).status_code == 403
    api = client.post("/api/v1/deals", json=form, headers={"X-CSRFToken": token})
    assert (api.status_code, api.get_json()["field"]) == (403, "partner")
    moved = client.patch(
        f"/api/v1/deals/{ids.ng_deal}",
        json={"partner": "prairiemeter"},
        headers={"X-CSRFToken": token},
    )
    assert (moved.status_code, moved.get_json()["field"]) == (403, "partner")
    assert (
        client.post(
            "/partners/rfx",
            data={
                "title": "T",
                "requirements": "R",
                "partner": "prairiemeter",
                "csrf_token": token,
            },
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/partners/rfx",
            data={"title": "T", "requirements": "R", "deal": str(ids.pm_deal), "csrf_token": token},
        ).status_code
        == 404
    )
    lead = client.post(
        "/api/v1/deals",
        json={
            "utility": "Kearney Public Power",
            "segment": "service_bureau",
            "prospect": "kearney",
        },
        headers={"X-CSRFToken": token},
    )
    assert lead.status_code == 404
    assert client.get("/partners/kpis.csv?partner=prairiemeter").status_code == 404
    assert client.get("/partners/prices?tier=silver").status_code == 403
    assert (count(app, models.Deal), count(app, models.RfxDocument)) == (deals_before, rfx_before)
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as s:
        assert s.get(models.Deal, ids.ng_deal).distributor_id == "northgrid"  # type: ignore[union-attr]


def test_state_changing_forms_need_a_csrf_token(portal: tuple[Flask, Ids]) -> None:
    app, ids = portal
    rep = client_for(app, "rep@northgrid.example")
    se = client_for(app, "se@wattline.example")
    before = (
        count(app, models.Deal),
        count(app, models.DealEvent),
        count(app, models.RfxDocument),
        count(app, models.Prospect),
    )
    attempts = [
        (rep, "/partners/deals", {"utility": "X", "segment": "iou", "region": "US-MI"}),
        (se, f"/partners/deals/{ids.ng_deal}/status", {"status": "lost"}),
        (rep, f"/partners/deals/{ids.ng_deal}/roi", {"in.endpoints": "5"}),
        (se, f"/partners/deals/{ids.ng_deal}/roi/evaluate", {}),
        (rep, "/partners/rfx", {"title": "T", "requirements": "R"}),
        (se, "/partners/prospects", {"name": "Lead", "segment": "iou", "region": "US-OH"}),
        (
            se,
            f"/partners/rfx/{ids.ng_rfx}/requirements/{ids.ng_req}",
            {"answer": "a", "compliance": "no"},
        ),
        (rep, "/logout", {}),
    ]
    for client, path, data in attempts:
        assert client.post(path, data=data).status_code == 400, path
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 400, path
    # Cookie-authenticated API writes need the header too.
    assert (
        rep.post(
            "/api/v1/deals", json={"utility": "X", "segment": "iou", "region": "US-MI"}
        ).status_code
        == 400
    )
    assert se.patch(f"/api/v1/deals/{ids.ng_deal}", json={"status": "lost"}).status_code == 400
    after = (
        count(app, models.Deal),
        count(app, models.DealEvent),
        count(app, models.RfxDocument),
        count(app, models.Prospect),
    )
    assert after == before
    with make_sessionmaker(app.extensions["wattline"]["engine"])() as s:
        assert s.get(models.RfxRequirement, ids.ng_req).answer == ""  # type: ignore[union-attr]


def test_customers_never_see_channel_data_even_with_a_bearer_token(
    portal: tuple[Flask, Ids],
) -> None:
    app, ids = portal
    client = app.test_client()
    for email in ("ops@millbrook.example", "facilities@fedcenter.example"):
        token = client.post(
            "/api/v1/auth/token", json={"email": email, "password": PASSWORD}
        ).get_json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        listing = client.get("/api/v1/deals", headers=headers)
        assert listing.status_code == 403
        assert "deals" not in listing.get_json()
        assert client.get(f"/api/v1/deals/{ids.ng_deal}", headers=headers).status_code == 403
        created = client.post(
            "/api/v1/deals",
            headers=headers,
            json={"utility": "X", "segment": "iou", "region": "US-DC"},
        )
        assert created.status_code == 403
