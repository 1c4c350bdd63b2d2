"""Alarms: outage, tamper, low power factor and comms loss, with role-gated acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import login_required

from app.db import alarm_queries
from app.domain import alarms as rules
from app.domain.telemetry import format_time
from app.web.api import csrf_for_cookie_writes
from app.web.auth import user
from app.web.db import db

bp = Blueprint("alarms", __name__, url_prefix="/alarms")
api_bp = Blueprint("alarms_api", __name__, url_prefix="/api/v1/alarms")
api_bp.before_request(csrf_for_cookie_writes)
MAX_NOTE = 500


@bp.get("/")
@login_required
def index() -> Any:
    """List open and acknowledged alarms and the audit of who did what."""
    found = alarm_queries.list_alarms(db(), user().scope)
    return render_template(
        "alarms.html",
        open_alarms=[a for a in found if a.acknowledged_by is None],
        acknowledged=[a for a in found if a.acknowledged_by is not None],
        audit=alarm_queries.audit_entries(db(), user().scope),
        may_ack=rules.may_acknowledge(user().role),
        max_note=MAX_NOTE,
    )


def _acknowledge(key: str, note: str) -> rules.Alarm:
    if not rules.may_acknowledge(user().role):
        abort(403, description="Your role may view alarms but not acknowledge them.")
    if len(note) > MAX_NOTE:
        abort(400, description=f"note is limited to {MAX_NOTE} characters")
    current = user()
    alarm = alarm_queries.acknowledge(
        db(), current.scope, key, current.id, current.email, datetime.now(UTC), note
    )
    if alarm is None:
        abort(404, description=f"No alarm {key!r} in your fleet.")
    db().commit()
    return alarm


@bp.post("/acknowledge")
@login_required
def acknowledge() -> Any:
    """Acknowledge one alarm from the alarms page (CSRF-protected form)."""
    key = request.form.get("key", "")
    alarm = _acknowledge(key, request.form.get("note", "").strip())
    flash(f"{alarm.label} at {alarm.site_name} acknowledged.", "ok")
    return redirect(url_for("alarms.index"))


def alarm_json(alarm: rules.Alarm) -> dict[str, Any]:
    """Serialise an alarm for the API."""
    return {
        "key": alarm.key,
        "kind": alarm.kind,
        "severity": alarm.severity,
        "meter_id": alarm.meter_id,
        "site_name": alarm.site_name,
        "utility": alarm.utility,
        "raised_at": format_time(alarm.raised_at),
        "summary": alarm.summary,
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": format_time(alarm.acknowledged_at) if alarm.acknowledged_at else None,
    }


@api_bp.get("")
@login_required
def list_api() -> Any:
    """List visible alarms; `state` = open, acknowledged or all (default open)."""
    state = request.args.get("state", "open")
    if state not in {"open", "acknowledged", "all"}:
        abort(400, description="state must be open, acknowledged or all")
    found = alarm_queries.list_alarms(db(), user().scope)
    if state != "all":
        found = [a for a in found if (a.acknowledged_by is None) == (state == "open")]
    return jsonify(alarms=[alarm_json(a) for a in found])


@api_bp.post("/<path:key>/acknowledge")
@login_required
def acknowledge_api(key: str) -> Any:
    """Acknowledge an alarm; body {"note": "..."} is optional."""
    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        abort(400, description='send a JSON object, e.g. {"note": "crew dispatched"}')
    note = body.get("note", "")
    if not isinstance(note, str):
        abort(400, description="note must be a string")
    return jsonify(alarm_json(_acknowledge(key, note.strip())))
