"""Presenter controls for sales engineers: simulator speed, incidents now, reset the demo."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlalchemy import delete, select

from app.command_bus import CommandBusError
from app.db import models
from app.db.alarm_queries import acknowledge_standing
from app.domain.access import Role
from app.domain.story import STORIES
from app.web.auth import user
from app.web.commands import bus
from app.web.db import db, settings
from simulator.control import (
    MIN_SPEED,
    PRESETS,
    ControlError,
    control_topic,
    encode_incident,
    encode_speed,
    preset,
)
from simulator.scenario import MAX_SPEED
from simulator.weather import REGIONS

bp = Blueprint("demo", __name__, url_prefix="/demo")
PRESENTERS = frozenset({Role.VENDOR_ADMIN, Role.VENDOR_SE})
SPEEDS = (60, 900, 3600)
INCIDENT_LABELS = {
    "storm": "Storm outage across a region",
    "tamper": "Tamper at a federal building",
    "heat_wave": "Heat-wave demand peak in a region",
    "sunset": "3G network sunset",
}


@bp.before_request
@login_required
def presenters_only() -> None:
    """Send anonymous visitors to log in; refuse everyone but the vendor's own staff.

    Outside demo mode there is no demo to control, and "Reset demo" would delete a real
    fleet's events, alarms and dead letters: the pages do not exist there.
    """
    if not settings().demo_mode:
        abort(404)
    if user().role not in PRESENTERS:
        abort(403, description="Demo controls are for the vendor's sales engineers.")


def audit(action: str, target: str, details: dict[str, Any]) -> None:
    """Record a presenter action in the audit log (the caller commits)."""
    current = user()
    db().add(
        models.AuditEntry(
            at=datetime.now(UTC),
            user_id=current.id,
            actor=current.email,
            action=action,
            target=target,
            utility_id=None,
            details=details,
        )
    )


def publish(payload: bytes) -> bool:
    """Send a control message to the simulator; flash why and return False if it failed."""
    try:
        bus().publish(control_topic(settings().topic_prefix), payload)
    except CommandBusError as exc:
        flash(f"The simulator could not be reached: {exc}", "error")
        return False
    return True


@bp.get("/")
@login_required
def index() -> Any:
    """Show the presenter controls and what was done recently."""
    recent = db().scalars(
        select(models.AuditEntry)
        .where(models.AuditEntry.action.startswith("demo."))
        .order_by(models.AuditEntry.at.desc())
        .limit(15)
    )
    return render_template(
        "demo.html",
        speeds=SPEEDS,
        incidents=[(k, INCIDENT_LABELS[k], "{region}" in str(PRESETS[k])) for k in PRESETS],
        regions=REGIONS,
        recent=list(recent),
        min_speed=MIN_SPEED,
        max_speed=MAX_SPEED,
        stories=STORIES,
    )


@bp.post("/speed")
@login_required
def speed() -> Any:
    """Change the running simulator's speed."""
    try:
        value = float(request.form.get("speed", ""))
    except ValueError:
        abort(400, description="speed must be a number")
    if not MIN_SPEED <= value <= MAX_SPEED:
        abort(400, description=f"speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}")
    if publish(encode_speed(value)):
        audit("demo.speed", f"{value:g}x", {"speed": value})
        db().commit()
        flash(f"Simulator speed set to {value:g}x.", "ok")
    return redirect(url_for("demo.index"))


@bp.post("/incident")
@login_required
def incident() -> Any:
    """Start an incident in the simulator now."""
    name = request.form.get("incident", "")
    region = request.form.get("region") or None
    if region is not None and region not in REGIONS:
        abort(400, description=f"region must be one of {', '.join(REGIONS)}")
    try:
        spec = preset(name, region)
    except ControlError as exc:
        abort(400, description=str(exc))
    if publish(encode_incident(spec)):
        audit("demo.incident", spec["name"], {"incident": name, "region": region})
        db().commit()
        flash(f"{spec['name']} started; watch the fleet page.", "ok")
    return redirect(url_for("demo.index"))


@bp.post("/reset")
@login_required
def reset() -> Any:
    """Clear events, alarm acknowledgements, commands and dead letters (history stays)."""
    session = db()
    counts = {}
    for model in (models.AlarmAck, models.MeterCommand, models.Event, models.DeadLetter):
        result = session.execute(delete(model))
        counts[model.__tablename__] = int(getattr(result, "rowcount", 0) or 0)
    session.flush()
    # What the meters' state still raises (comms loss, low power factor) is marked seen, so
    # the next audience starts from a clean board and sees only what happens from now on.
    counts["standing_alarms_seen"] = acknowledge_standing(
        session, user().id, datetime.now(UTC), "standing when the demo was reset"
    )
    audit("demo.reset", "demo", counts)
    session.commit()
    flash(
        f"Demo reset: cleared {counts['events']} events, {counts['meter_commands']} commands, "
        f"{counts['dead_letters']} dead letters and {counts['alarm_acks']} alarm "
        f"acknowledgements; {counts['standing_alarms_seen']} standing alarms (comms loss, low "
        "power factor) marked as seen. Interval history kept.",
        "ok",
    )
    return redirect(url_for("demo.index"))
