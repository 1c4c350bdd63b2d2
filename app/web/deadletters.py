"""Dead letters: what the ingest refused, with the reason and the raw payload (ops roles)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.command_bus import CommandBus, CommandBusError
from app.config import Settings
from app.db import models, queries
from app.domain.access import Role
from app.domain.numbers import MAX_ID, whole_number
from app.ingest.replay import limits as replay_limits
from app.ingest.replay import refusal
from app.ingest.replay import replay as replay_letters
from app.web.auth import user
from app.web.db import db

bp = Blueprint("deadletters", __name__, url_prefix="/dead-letters")
# People who run or support the data feed; sales reps and building managers do not.
ROLES = frozenset(
    {Role.VENDOR_ADMIN, Role.VENDOR_SE, Role.DISTRIBUTOR_MANAGER, Role.UTILITY_VIEWER}
)
# Replaying publishes on a meter's topic: for those who run the feed, not those who watch it.
REPLAY_ROLES = frozenset({Role.VENDOR_ADMIN, Role.VENDOR_SE, Role.DISTRIBUTOR_MANAGER})
PAGE = 100
PAYLOAD_SHOWN = 4000


def may_see_dead_letters(role: Role) -> bool:
    """Return True if a role may open the dead-letter page."""
    return role in ROLES


@bp.app_context_processor
def nav_flag() -> dict[str, bool]:
    """Tell base.html whether to show the nav link."""
    found: Any = current_user
    return {
        "can_see_dead_letters": bool(found.is_authenticated) and may_see_dead_letters(found.role)
    }


@bp.get("/")
@login_required
def index() -> Any:
    """List the newest dead letters the user's tenants may see."""
    current = user()
    if not may_see_dead_letters(current.role):
        abort(403, description="Dead letters are for operations roles.")
    raw_before = request.args.get("before")
    before: int | None = None
    if raw_before is not None:
        before = whole_number(raw_before)
        if before is None or not 1 <= before <= MAX_ID:
            abort(400, description="before must be a dead-letter id (a positive integer)")
    rows = queries.dead_letters(db(), current.scope, limit=PAGE, before_id=before)
    may_replay = current.role in REPLAY_ROLES
    refused = _refuser()
    letters = [
        {
            "id": d.id,
            "received_at": d.received_at,
            "topic": d.topic,
            "meter_id": d.meter_id,
            "reason": d.reason,
            "payload": bytes(d.payload[:PAYLOAD_SHOWN]).decode("utf-8", errors="replace"),
            "truncated": len(d.payload) > PAYLOAD_SHOWN,
            "size": len(d.payload),
            "replayed_at": d.replayed_at,
            "replayable": may_replay and d.replayed_at is None and refused(d) is None,
        }
        for d in rows
    ]
    older = letters[-1]["id"] if len(letters) == PAGE else None
    return render_template("dead_letters.html", letters=letters, older=older)


def _refuser() -> Callable[[models.DeadLetter], str | None]:
    """Return the replay rule under this portal's settings (built once per request)."""
    settings = cast(Settings, current_app.extensions["wattline"]["settings"])
    rules = replay_limits(settings)
    return lambda letter: refusal(letter, settings.topic_prefix, rules)


@bp.post("/<int:letter_id>/replay")
@login_required
def replay(letter_id: int) -> Any:
    """Publish a dead letter again on its topic for the ingest (CSRF-protected form)."""
    current = user()
    if current.role not in REPLAY_ROLES:
        abort(403, description="Replaying dead letters is for the roles that run the feed.")
    letter = queries.dead_letter(db(), current.scope, letter_id)
    if letter is None:
        abort(404, description=f"No dead letter {letter_id} among your meters.")
    if letter.replayed_at is not None:
        abort(409, description=f"Dead letter {letter_id} was replayed at {letter.replayed_at}.")
    why = _refuser()(letter)
    if why is not None:
        abort(409, description=f"Dead letter {letter_id} is not replayed: {why}.")
    bus = cast(CommandBus, current_app.extensions["wattline"]["commands"])
    try:
        replay_letters([letter], bus.publish, datetime.now(UTC))
    except CommandBusError as exc:
        abort(503, description=f"Dead letter {letter_id} was not replayed: {exc}")
    db().commit()
    flash(
        f"Dead letter {letter_id} published again on {letter.topic}: the broker holds it for "
        "the ingest, which stores it exactly once.",
        "ok",
    )
    return redirect(url_for("deadletters.index"))
