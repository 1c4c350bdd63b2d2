"""The OpenAPI document: valid, covering every /api/v1 route both ways, and true (schemathesis)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.db.session import make_engine, make_sessionmaker
from app.domain import telemetry
from app.ingest.store import MeterDirectory, write_batch
from app.web.openapi import API_PREFIX, build_document
from simulator.fleet import Meter
from tests.factories import PASSWORD, T0, seed_database
from tests.integration.test_alarms import accepted
from tests.integration.test_portal import make_settings

VENDOR = "admin@wattline.example"
EXAMPLE_METER = "glpl-00000"  # the document's example meter; it gets the tamper alarm
# Enough generated requests per operation to exercise each parameter and body field's edge
# cases, few enough that the whole file runs in well under two minutes on two cores.
MAX_EXAMPLES = 20


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail on a 5xx, except a 503 the operation documents (the broker is not wired in here)."""
    if response.status_code == 503 and "503" in case.operation.definition.raw["responses"]:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def app_operations(app: Flask) -> set[tuple[str, str]]:
    """Return (METHOD, OpenAPI path) for every /api/v1 rule of the app."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(API_PREFIX))
        found.update((m, path) for m in rule.methods or () if m not in {"HEAD", "OPTIONS"})
    return found


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Return (METHOD, path) for every operation in the document."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@pytest.fixture
def bare_app(tmp_path: Path) -> Iterator[Flask]:
    """A portal on an empty SQLite file: enough to read its routes and serve the document."""
    (tmp_path / "routes.db").touch()
    flask_app = create_app(make_settings(f"sqlite:///{tmp_path / 'routes.db'}", tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


def test_document_is_valid_openapi_3_1() -> None:
    document = build_document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_document_is_served_without_login(bare_app: Flask) -> None:
    response = bare_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == build_document()


def test_every_route_is_documented_and_every_documented_route_exists(bare_app: Flask) -> None:
    in_app = app_operations(bare_app)
    documented = documented_operations(build_document())
    assert in_app - documented == set(), "routes missing from app/web/openapi.py"
    assert documented - in_app == set(), "documented routes the app lacks"


def test_route_coverage_notices_an_undocumented_endpoint(bare_app: Flask) -> None:
    bare_app.add_url_rule("/api/v1/surprise/<int:n>", "surprise", lambda n: "", methods=["PUT"])
    missing = app_operations(bare_app) - documented_operations(build_document())
    assert missing == {("PUT", "/surprise/{n}")}


def test_every_operation_documents_errors_in_the_json_error_shape() -> None:
    document = build_document()
    error_codes = {"400", "401", "403", "404", "409", "413", "422"}
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert "400" in op["responses"], (method, path)
            if op.get("security") != []:
                assert "401" in op["responses"], (method, path)
            if "requestBody" in op:
                assert "413" in op["responses"], (method, path)
            for code, response in op["responses"].items():
                if code in error_codes:
                    assert response == {"$ref": f"#/components/responses/Error{code}"}
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message", "status"]
    assert "field" in error["properties"]


# --- Schemathesis against the running app --------------------------------------------------


@pytest.fixture
def fleet(database_url: str) -> list[Meter]:
    """Seed the fleet, the demo logins, a day of readings per meter and a tamper alarm."""
    fleet = seed_database(database_url)
    meter = next(m for m in fleet if m.id == EXAMPLE_METER)
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        event = telemetry.EventMessage(
            meter.id, "t1", "tamper", T0 + timedelta(hours=5), "critical"
        )
        write_batch(session, [accepted(meter, event)], MeterDirectory())
    engine.dispose()
    return fleet


@pytest.fixture
def app(database_url: str, tmp_path: Path, fleet: list[Meter]) -> Iterator[Flask]:
    """A portal on the seeded database."""
    flask_app = create_app(make_settings(database_url, tmp_path))
    yield flask_app
    flask_app.extensions["wattline"]["engine"].dispose()


@pytest.fixture
def bearer(app: Flask) -> dict[str, str]:
    """An Authorization header for a vendor admin, with scenario 1 saved so its paths answer."""
    client = app.test_client()
    response = client.post("/api/v1/auth/token", json={"email": VENDOR, "password": PASSWORD})
    assert response.status_code == 200
    headers = {"Authorization": f"Bearer {response.get_json()['token']}"}
    saved = client.post(
        "/api/v1/roi/scenarios",
        headers=headers,
        json={"name": "Pilot", "customer_name": "GLPL", "document": {"segment": "iou"}},
    )
    assert (saved.status_code, saved.get_json()["id"]) == (201, 1)
    return headers


def operations() -> list[Any]:
    """Return the schemathesis operations to run: every documented one."""
    loaded = schemathesis.openapi.from_dict(build_document())
    return [result.ok() for result in loaded.get_all_operations()]


def test_api_matches_its_document(app: Flask, bearer: dict[str, str]) -> None:
    # One seeded database for every operation: seeding per operation would cost minutes.
    # (schemathesis' pytest loaders need either a function-scoped fixture per operation or,
    # for `schemathesis.pytest.from_fixture`, pytest's private `Function._nodeid`, gone in 9.2.)
    failures: dict[str, str] = {}
    for operation in operations():
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
            *operation.get_strategies_from_examples(),
        )

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: Any) -> None:
            case.call_and_validate(app=app, headers=bearer, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:
            # Keep going: one run reports every operation that disagrees with the document.
            failures[operation.label] = str(exc)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        (
            "POST",
            "/api/v1/auth/token",
            {"email": "a\x00@b.example", "password": "x"},
            400,
            "body.email: ",
        ),
        ("GET", "/api/v1/meters?utility=glpl%00", None, 400, "utility: "),
        ("GET", "/api/v1/meters/glpl-00000%00", None, 400, "meter_id: "),
        ("POST", "/api/v1/roi/scenarios", {"name": ["ok", "n\x00"]}, 400, "body.name[1]: "),
        ("GET", f"/api/v1/roi/scenarios/{2**31}", None, 404, "no scenario_id "),
        ("GET", f"/api/v1/roi/scenarios/1/versions/{10**30}/report?format=csv", None, 404, "no "),
    ],
)
def test_input_the_database_cannot_hold_is_refused_by_name(
    app: Flask, bearer: dict[str, str], method: str, url: str, body: Any, status: int, message: str
) -> None:
    # NUL (PostgreSQL text cannot hold it) and ids past 32 bits (the drivers raise) reached
    # the database and answered 500 before app.web.api.check_api_input.
    response = app.test_client().open(url, method=method, json=body, headers=bearer)
    assert response.status_code == status
    assert response.get_json()["message"].startswith(message)


@pytest.mark.parametrize("url", ["/api/v1/auth/token", "/api/v1/roi"])
def test_json_nested_past_the_stack_is_a_400(app: Flask, url: str) -> None:
    # Valid JSON, but deeper than the parser's recursion allows: a 500 on every API route
    # (the token one without a login) before check_api_input caught it.
    deep = "[" * 50_000 + "]" * 50_000
    response = app.test_client().post(url, data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"] == "body: JSON nested too deeply"
