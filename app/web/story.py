"""The presenter's one-click story: a banner that walks a prospect through a segment.

Start (POST, audited) remembers the story in the session; each step is a GET that
redirects to the real page (live fleet, meter, ROI), on which base.html shows the banner
with the step, the presenter's line and Back/Next. The choices live in app.domain.story.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, session, url_for
from flask_login import current_user, login_required

from app.db import live_queries, queries, roi_store
from app.domain import story as rules
from app.web.auth import PortalUser, user
from app.web.db import db, settings
from app.web.demo_control import PRESENTERS, audit, publish
from simulator.control import ControlError, encode_incident, preset
from simulator.weather import REGIONS

bp = Blueprint("story", __name__, url_prefix="/story")
SESSION_KEY = "story"
# Recent events searched for a meter the incident hit.
EVENTS_SEARCHED = 200
METERS_PER_UTILITY = 500


@bp.before_request
@login_required
def presenters_only() -> None:
    """Refuse everyone but the vendor's own staff; outside demo mode there is no story.

    A story's incident is published to the simulator's control topic: on a real fleet there
    is no simulator to drive, as there are no demo controls (demo_control.py).
    """
    if not settings().demo_mode:
        abort(404)
    if user().role not in PRESENTERS:
        abort(403, description="The demo story is for the vendor's sales engineers.")


def _story(segment: str) -> rules.Story:
    try:
        return rules.story_for(segment)
    except rules.StoryError as exc:
        abort(404, description=str(exc))


def _featured(found: rules.Story) -> rules.UtilityCandidate | None:
    scope = user().scope
    rows = queries.fleet_overview(db(), scope, datetime.now(UTC))
    best = rules.featured_utility(
        found, [rules.UtilityCandidate(r.id, r.segment, "", r.meters) for r in rows]
    )
    if best is None:
        return None
    row = roi_store.get_utility(db(), scope, best.id)
    return rules.UtilityCandidate(best.id, best.segment, row.region if row else "", best.meters)


def _state(segment: str) -> dict[str, Any]:
    state = session.get(SESSION_KEY)
    if not isinstance(state, dict) or state.get("segment") != segment:
        flash("Start the story from Demo controls first.", "error")
        abort(redirect(url_for("demo.index")))
    return state


@bp.post("/<segment>/start")
def start(segment: str) -> Any:
    """Start a segment's story: feature its biggest utility and go to step 1 (audited)."""
    found = _story(segment)
    featured = _featured(found)
    region = None
    if found.needs_region:
        region = featured.region if featured and featured.region in REGIONS else REGIONS[0]
    session[SESSION_KEY] = {
        "segment": segment,
        "step": 1,
        "utility": featured.id if featured else None,
        "region": region,
        "incident_at": None,
        "meter": None,
    }
    audit(
        "demo.story",
        found.label,
        {"segment": segment, "utility": featured.id if featured else None, "region": region},
    )
    db().commit()
    return redirect(url_for("story.step", segment=segment, number=1))


@bp.get("/<segment>/<int:number>")
def step(segment: str, number: int) -> Any:
    """Go to step `number` of the running story: the real page, with the banner on top."""
    found = _story(segment)
    state = _state(segment)
    try:
        current = found.step(number)
    except rules.StoryError as exc:
        abort(404, description=str(exc))
    state["step"] = number
    utility = state.get("utility")
    target = url_for("fleet.overview", utility=utility) if utility else url_for("fleet.overview")
    if current.key == "command":
        pick = _pick(found, state)
        if pick is None:
            flash(f"No {found.label} meter in your fleet to send a command to.", "error")
        else:
            target = url_for("meters.detail", meter_id=pick.meter_id) + "#commands"
    elif current.key == "roi":
        target = url_for("roi.page", segment=segment, utility=utility)
    session[SESSION_KEY] = state
    return redirect(target)


def _pick(found: rules.Story, state: dict[str, Any]) -> rules.MeterPick | None:
    # Once an affected meter is chosen it stays, so Back and Next land on the same meter.
    if state.get("meter") and state.get("meter_affected"):
        return rules.MeterPick(state["meter"], True, state.get("meter_reason", ""))
    scope = user().scope
    rows = queries.fleet_overview(db(), scope, datetime.now(UTC))
    meters = [
        rules.MeterCandidate(m.id, r.segment, m.status)
        for r in rows
        if r.segment == found.segment
        for m in queries.list_meters(db(), scope, utility_id=r.id, limit=METERS_PER_UTILITY)
    ]
    events = [
        rules.EventSeen(e.meter_id, e.type)
        for e in live_queries.event_feed(db(), scope, limit=EVENTS_SEARCHED)
    ]
    pick = rules.pick_meter(found, meters, events)
    if pick is not None:
        state.update(meter=pick.meter_id, meter_affected=pick.affected, meter_reason=pick.reason)
    return pick


@bp.post("/<segment>/incident")
def incident(segment: str) -> Any:
    """Start the story's incident in the simulator now (audited like Demo controls)."""
    found = _story(segment)
    state = _state(segment)
    try:
        spec = preset(found.incident, state.get("region"))
    except ControlError as exc:
        abort(400, description=str(exc))
    if publish(encode_incident(spec)):
        audit(
            "demo.incident",
            spec["name"],
            {"incident": found.incident, "region": state.get("region"), "story": segment},
        )
        db().commit()
        state.update(incident_at=datetime.now(UTC).strftime("%H:%M:%S"), meter=None)
        state["meter_affected"] = False
        session[SESSION_KEY] = state
        flash(f"{spec['name']} started; watch the feed and the map.", "ok")
    return redirect(url_for("story.step", segment=segment, number=2))


@bp.post("/exit")
def exit_story() -> Any:
    """End the story and return to Demo controls."""
    session.pop(SESSION_KEY, None)
    return redirect(url_for("demo.index"))


@bp.app_context_processor
def banner() -> dict[str, Any]:
    """Give base.html the running story's banner, for presenters only."""
    found: Any = current_user
    state = session.get(SESSION_KEY)
    if (
        not isinstance(found, PortalUser)
        or found.role not in PRESENTERS
        or not settings().demo_mode
    ):
        return {"story_banner": None, "stories": None}
    stories = rules.STORIES
    if not isinstance(state, dict) or state.get("segment") not in stories:
        return {"story_banner": None, "stories": stories}
    story = stories[state["segment"]]
    number = int(state.get("step", 1))
    return {
        "stories": stories,
        "story_banner": {
            "story": story,
            "step": story.step(max(1, min(number, rules.STEP_COUNT))),
            "count": rules.STEP_COUNT,
            "back": number - 1 if number > 1 else None,
            "next": number + 1 if number < rules.STEP_COUNT else None,
            "incident_at": state.get("incident_at"),
            "region": state.get("region"),
            "meter": state.get("meter"),
            "meter_reason": state.get("meter_reason"),
        },
    }
