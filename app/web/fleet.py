"""Fleet overview: meters by segment and utility, live counts over SSE, map and event feed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_login import login_required
from sqlalchemy.orm import Session, sessionmaker

from app.analytics.charts import fleet_load_figure
from app.db import live_queries, queries, roi_store
from app.domain.access import Scope
from app.domain.telemetry import format_time
from app.web.auth import user
from app.web.db import db
from simulator.fleet import SEGMENT_LABELS

bp = Blueprint("fleet", __name__)

# Module-level so tests can shorten them. One second of polling keeps the page within
# two seconds of the database; streams end after a while and EventSource reconnects,
# so a forgotten tab never pins a server thread for ever.
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
# Streams one process holds open at once: each holds a server thread for up to
# STREAM_SECONDS, and eight open fleet pages froze a portal of eight threads. A page past
# the limit gets one snapshot and reconnects after BUSY_RETRY_SECONDS (polling, in effect).
STREAM_SLOTS = 4
BUSY_RETRY_SECONDS = 15.0


def _view() -> tuple[Scope, str | None]:
    """Return the user's scope, cut down to `?utility=` when it names one the user may see."""
    scope = user().scope
    wanted = request.args.get("utility") or None
    found = roi_store.get_utility(db(), scope, wanted) if wanted else None
    # A utility outside the scope reads as no filter: the page never says whether it exists.
    if found is None:
        return scope, None
    return scope.narrowed_to(found.id, found.distributor_id), found.id


@bp.get("/")
@login_required
def overview() -> Any:
    """Render the fleet overview for the user's tenants, or for one of their utilities."""
    scope, utility_id = _view()
    now = datetime.now(UTC)
    rows = queries.fleet_overview(db(), scope, now)
    meters = queries.list_meters(db(), scope, limit=300)
    segments = {
        seg: {
            "label": label,
            "meters": sum(r.meters for r in rows if r.segment == seg),
            "online": sum(r.online for r in rows if r.segment == seg),
            "offline": sum(r.offline for r in rows if r.segment == seg),
            "readings": sum(r.readings_last_hour for r in rows if r.segment == seg),
        }
        for seg, label in SEGMENT_LABELS.items()
        if any(r.segment == seg for r in rows)
    }
    past = cast(queries.PastLoads, current_app.extensions["wattline"]["past_loads"])
    chart = fleet_load_figure(queries.fleet_load_by_segment(db(), scope, past=past))
    return render_template(
        "fleet.html",
        rows=rows,
        segments=segments,
        segment_labels=SEGMENT_LABELS,
        meters=meters,
        utility_id=utility_id,
        utility_name=rows[0].name if utility_id and rows else None,
        chart_json=chart.to_json(),
        snapshot=live_queries.live_snapshot(db(), scope, now, rows),
    )


@bp.get("/fleet/map")
@login_required
def map_points() -> Any:
    """Return the visible meters' positions and states for the fleet map (`?utility=`: one's)."""
    return jsonify(meters=live_queries.map_points(db(), _view()[0]))


@bp.get("/fleet/stream")
@login_required
def stream() -> Response:
    """Stream live fleet snapshots as Server-Sent Events, one whenever something changed."""
    extensions = current_app.extensions["wattline"]
    factory = cast(sessionmaker[Session], extensions["sessions"])
    slots = cast(
        threading.BoundedSemaphore,
        extensions.setdefault("stream_slots", threading.BoundedSemaphore(STREAM_SLOTS)),
    )
    response = Response(
        _snapshots(factory, _view()[0], slots),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    return response


def _snapshots(
    factory: sessionmaker[Session], scope: Scope, slots: threading.BoundedSemaphore
) -> Iterator[str]:
    # Runs after the request context is gone: its own short session per tick, so a long
    # stream never holds a connection or a transaction open between ticks. The slot is
    # taken here, not in the view: a generator never started never runs its `finally`.
    held = slots.acquire(blocking=False)
    try:
        if not held:
            yield f"retry: {int(BUSY_RETRY_SECONDS * 1000)}\nevent: busy\ndata: {{}}\n\n"
            yield _event(factory, scope, datetime.now(UTC))[1]
            return
        started = last_sent = time.monotonic()
        previous = None
        yield f"retry: {int(POLL_SECONDS * 1000)}\nevent: live\ndata: {{}}\n\n"
        while time.monotonic() - started < STREAM_SECONDS:
            body, message = _event(factory, scope, datetime.now(UTC))
            if body != previous:
                previous = body
                last_sent = time.monotonic()
                yield message
            elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                last_sent = time.monotonic()
                yield ": keepalive\n\n"
            time.sleep(POLL_SECONDS)
    finally:
        if held:
            slots.release()


def _event(factory: sessionmaker[Session], scope: Scope, now: datetime) -> tuple[str, str]:
    """Return (the snapshot's JSON without its time, the `fleet` event carrying it)."""
    with factory() as session:
        snapshot = live_queries.live_snapshot(session, scope, now)
    stamped = {**snapshot, "generated_at": format_time(now)}
    body = json.dumps(snapshot, separators=(",", ":"))
    return body, f"event: fleet\ndata: {json.dumps(stamped, separators=(',', ':'))}\n\n"
