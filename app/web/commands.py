"""Two-way commands: send one to a meter over MQTT, then follow it until the meter replies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from flask_login import login_required
from sqlalchemy import select

from app.command_bus import CommandBus, CommandBusError
from app.db import models, queries
from app.domain import commands as rules
from app.domain import telemetry
from app.web.api import csrf_for_cookie_writes, visible_meter
from app.web.auth import user
from app.web.db import db

api_bp = Blueprint("commands_api", __name__, url_prefix="/api/v1")
api_bp.before_request(csrf_for_cookie_writes)
HISTORY = 20


def bus() -> CommandBus:
    """Return the process's command bus."""
    return cast(CommandBus, current_app.extensions["wattline"]["commands"])


def command_json(row: models.MeterCommand, now: datetime) -> dict[str, Any]:
    """Serialise a command with the status a client should act on."""
    return {
        "id": row.id,
        "meter_id": row.meter_id,
        "command": row.command,
        "args": row.args,
        "status": rules.effective_status(row.status, row.requested_at, now),
        "result": row.result,
        "requested_at": telemetry.format_time(row.requested_at),
        "replied_at": telemetry.format_time(row.replied_at) if row.replied_at else None,
        "url": url_for("commands_api.get_command", command_id=row.id),
    }


@api_bp.post("/meters/<meter_id>/commands")
@login_required
def send(meter_id: str) -> Any:
    """Send {"command", "args"} to a meter; 202 with the command's id and URL to follow."""
    meter = visible_meter(meter_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='send a JSON object, e.g. {"command": "ping", "args": {}}')
    current = user()
    try:
        command, args = rules.validate(body.get("command"), body.get("args"), current.role)
    except rules.CommandArgsError as exc:
        return jsonify(error="Bad Request", field=exc.field, message=str(exc), status=400), 400
    except PermissionError as exc:
        abort(403, description=str(exc))
    now = datetime.now(UTC)
    row = models.MeterCommand(
        id=uuid.uuid4().hex,
        meter_id=meter.id,
        command=command,
        args=args,
        status="pending",
        result=None,
        requested_by=current.id,
        requested_at=now,
    )
    session = db()
    session.add(row)
    session.add(
        models.AuditEntry(
            at=now,
            user_id=current.id,
            actor=current.email,
            action="command.send",
            target=f"{meter.id}:{command}",
            utility_id=meter.utility_id,
            details={"command_id": row.id, "args": args},
        )
    )
    # Stored before it is sent: a fast meter's reply must find the row to update.
    session.commit()
    try:
        bus().send(meter.utility_id, meter.id, telemetry.Command(row.id, command, args))
    except CommandBusError as exc:
        row.status, row.result = "error", {"error": str(exc)}
        session.commit()
        return jsonify(command_json(row, now) | {"message": str(exc)}), 503
    return jsonify(command_json(row, now)), 202


@api_bp.get("/commands/<command_id>")
@login_required
def get_command(command_id: str) -> Any:
    """Return a command's status (pending, accepted, ok, error or timeout) and result."""
    row = db().get(models.MeterCommand, command_id)
    if row is None or queries.get_meter(db(), user().scope, row.meter_id) is None:
        abort(404, description=f"no command {command_id!r} in your fleet")
    return jsonify(command_json(row, datetime.now(UTC)))


@api_bp.get("/meters/<meter_id>/commands")
@login_required
def history(meter_id: str) -> Any:
    """Return a meter's most recent commands, newest first."""
    meter = visible_meter(meter_id)
    rows = db().scalars(
        select(models.MeterCommand)
        .where(models.MeterCommand.meter_id == meter.id)
        .order_by(models.MeterCommand.requested_at.desc())
        .limit(HISTORY)
    )
    now = datetime.now(UTC)
    return jsonify(commands=[command_json(r, now) for r in rows])
