"""Versioned JSON API under /api/v1: health, OpenAPI document, tokens, meters, fleet summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user, login_required
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from app.db import models, queries
from app.domain import telemetry
from app.domain.numbers import MAX_ID, whole_number
from app.web.auth import (
    TOKEN_MAX_AGE_S,
    LoginThrottled,
    authenticate,
    issue_token,
    load_user_from_bearer,
    refused,
    revoke_login,
    user,
)
from app.web.db import db
from app.web.openapi import build_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def csrf_for_cookie_writes() -> None:
    """Require a CSRF token on writes authenticated by the session cookie (bearer calls are exempt)."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    # Exempt only a token that authenticates: with a junk one Flask-Login falls back to the
    # session cookie, and the write would be a cookie write without its CSRF token.
    if load_user_from_bearer(request) is not None:
        return
    if current_user.is_authenticated:
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except ValidationError:
            abort(
                400,
                description="missing or invalid X-CSRFToken header for a cookie-authenticated write",
            )


def check_api_input() -> Any:
    """Refuse input the database cannot hold before any view passes it on.

    A number in any URL beyond a 32-bit INTEGER id answers 404 (PostgreSQL and SQLite drivers
    raise on it instead of finding no row), and a NUL character in a path, query, form field
    or JSON body string answers 400 (PostgreSQL text cannot hold NUL), as does a lone surrogate
    from a JSON escape (no driver encodes it); they were 500s before, on the pages' forms (an
    alarm note, a deal) as in the API.
    """
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and value > MAX_ID:
            abort(404, description=f"no {name} {value}")
    fields: list[tuple[str, Any]] = [
        *(request.view_args or {}).items(),
        *request.args.items(multi=True),
        *request.form.items(multi=True),
    ]
    try:
        # `silent` covers malformed JSON, not JSON nested past the interpreter's stack
        # (a 100 kB body of "[[[..." was a 500 on every API route, the token one too).
        if request.is_json:
            fields.append(("body", request.get_json(silent=True)))
        for name, value in fields:
            found = _bad_text_at(name, value)
            if found is not None:
                where, problem = found
                if request.path.startswith("/api/"):
                    # Named as the API's own field errors name it: "note", not "body.note".
                    field = where.removeprefix("body.") if where != "body" else where
                    message = f"{where}: {problem}"
                    return jsonify(
                        error="Bad Request", message=message, field=field, status=400
                    ), 400
                abort(400, description=f"{where}: {problem}")
    except RecursionError:
        abort(400, description="body: JSON nested too deeply")


def _bad_text_at(where: str, value: Any) -> tuple[str, str] | None:
    """Return (where, what is wrong) for the first string no database column can hold."""
    if isinstance(value, str):
        if "\x00" in value:
            return where, "must not contain NUL characters"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # JSON's "\ud800" escapes decode to a lone surrogate, which no driver encodes.
                return where, "must be valid Unicode text (a lone surrogate half was sent)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _bad_text_at(f"{where}.{key}", key) or _bad_text_at(f"{where}.{key}", item)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _bad_text_at(f"{where}[{i}]", item)
            if found is not None:
                return found
    return None


@bp.get("/health")
def health() -> Any:
    """Report liveness and counts; no login, no tenant data."""
    found = queries.health(db(), datetime.now(UTC))
    status = "ok" if found.broker_connected else "degraded"
    return jsonify(
        status=status,
        meters=found.meters,
        readings=found.readings,
        readings_exact=found.readings_exact,
        dead_letters=found.dead_letters,
        dead_letters_exact=found.dead_letters_exact,
        broker_connected=found.broker_connected,
        ingest_seen_at=telemetry.format_time(found.ingest_seen_at)
        if found.ingest_seen_at
        else None,
        vee_done_at=telemetry.format_time(found.vee_done_at) if found.vee_done_at else None,
    )


@bp.get("/openapi.json")
def openapi() -> Any:
    """Serve the OpenAPI 3.1 document of this API; no login, like the docs it describes."""
    return jsonify(build_document())


@bp.post("/auth/token")
def token() -> Any:
    """Exchange e-mail and password for a bearer token."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='send a JSON object {"email": ..., "password": ...}')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        abort(400, description="email and password must be non-empty strings")
    try:
        found = authenticate(email, password)
    except LoginThrottled as exc:
        body = jsonify(error="Too Many Requests", message=str(exc), status=429)
        return body, 429, {"Retry-After": str(exc.seconds)}
    if found is None:
        raise refused("unknown e-mail or wrong password")
    return jsonify(token=issue_token(found), token_type="Bearer", expires_in=TOKEN_MAX_AGE_S)  # noqa: S106 - a scheme name, not a secret


@bp.delete("/auth/token")
def revoke_token() -> Any:
    """Revoke the bearer token this request carries (a signed-out script's token dies now)."""
    found = load_user_from_bearer(request)
    if found is None:
        raise refused("send the bearer token to revoke in the Authorization header")
    revoke_login(found)
    return "", 204


def meter_json(meter: models.Meter) -> dict[str, Any]:
    """Serialise a meter for the API."""

    def when(value: datetime | None) -> str | None:
        return telemetry.format_time(value) if value else None

    return {
        "id": meter.id,
        "utility_id": meter.utility_id,
        "site_name": meter.site_name,
        "building_type": meter.building_type,
        "network": meter.network,
        "peak_kw": meter.peak_kw,
        "status": meter.status,
        "status_at": when(meter.status_at),
        "last_interval_start": when(meter.last_interval_start),
        "last_seen_at": when(meter.last_seen_at),
        "lat": meter.lat,
        "lon": meter.lon,
    }


def reading_json(r: models.Reading) -> dict[str, Any]:
    """Serialise a stored reading with the same field names as the telemetry contract."""
    return {
        "start": telemetry.format_time(r.start),
        "seconds": telemetry.INTERVAL_SECONDS,
        "kwh": r.kwh,
        "kvarh": r.kvarh,
        "demand_kw": r.demand_kw,
        "voltage": [v for v in (r.voltage_a, r.voltage_b, r.voltage_c) if v is not None],
        "flags": [f for f in r.flags.split(",") if f],
        "quality": r.quality,
    }


@bp.get("/meters")
@login_required
def meters() -> Any:
    """List the caller's meters (optionally `?utility=`), paged with `limit` and `offset`."""
    limit = _int_arg("limit", 100, 1, 1000)
    offset = _int_arg("offset", 0, 0, 10_000_000)
    rows = queries.list_meters(
        db(),
        user().scope,
        utility_id=request.args.get("utility") or None,
        limit=limit,
        offset=offset,
    )
    return jsonify(meters=[meter_json(m) for m in rows], limit=limit, offset=offset)


@bp.get("/meters/<meter_id>")
@login_required
def meter(meter_id: str) -> Any:
    """Return one meter; another tenant's meter answers 404."""
    return jsonify(meter_json(visible_meter(meter_id)))


@bp.get("/fleet/summary")
@login_required
def fleet_summary() -> Any:
    """Per-utility counts for the live fleet page."""
    rows = queries.fleet_overview(db(), user().scope, datetime.now(UTC))
    return jsonify(
        generated_at=telemetry.format_time(datetime.now(UTC)),
        utilities=[
            {
                "id": r.id,
                "name": r.name,
                "segment": r.segment,
                "meters": r.meters,
                "online": r.online,
                "offline": r.offline,
                "readings_last_hour": r.readings_last_hour,
            }
            for r in rows
        ],
    )


def visible_meter(meter_id: str) -> models.Meter:
    """Return a meter in the caller's tenants, or abort 404 (never 403: no existence leak)."""
    found = queries.get_meter(db(), user().scope, meter_id)
    if found is None:
        abort(404, description=f"no meter {meter_id!r} in your fleet")
    return found


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = whole_number(raw)  # not int(): it takes "1_000" and non-ASCII digits
    if value is None:
        abort(400, description=f"{name} must be an integer")
    if not low <= value <= high:
        abort(400, description=f"{name} must be between {low} and {high}")
    return value
