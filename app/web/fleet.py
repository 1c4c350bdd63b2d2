"""Fleet overview: meters by segment and utility, online/offline, recent readings, fleet chart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import login_required

from app.analytics.charts import fleet_load_figure
from app.db import queries
from app.web.auth import user
from app.web.db import db
from simulator.fleet import SEGMENT_LABELS

bp = Blueprint("fleet", __name__)


@bp.get("/")
@login_required
def overview() -> Any:
    """Render the fleet overview for the user's tenants."""
    scope = user().scope
    rows = queries.fleet_overview(db(), scope, datetime.now(UTC))
    utility_id = request.args.get("utility") or None
    visible = {r.id for r in rows}
    if utility_id is not None and utility_id not in visible:
        utility_id = None
    meters = queries.list_meters(db(), scope, utility_id=utility_id, limit=300)
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
    chart = fleet_load_figure(queries.fleet_load_by_segment(db(), scope))
    return render_template(
        "fleet.html",
        rows=rows,
        segments=segments,
        segment_labels=SEGMENT_LABELS,
        meters=meters,
        utility_id=utility_id,
        chart_json=chart.to_json(),
    )
