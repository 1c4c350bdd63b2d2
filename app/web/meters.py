"""Meter page: site, intervals with VEE quality, power quality, load profile, events, commands."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_login import login_required

from app.analytics.charts import meter_figure
from app.analytics.meter_charts import power_quality_figure, weekday_profile_figure
from app.db import queries
from app.domain.commands import allowed_commands
from app.domain.localtime import zone_for
from app.web.auth import user
from app.web.db import db
from simulator.fleet import BUILDING_TYPES, SEGMENT_LABELS

bp = Blueprint("meters", __name__, url_prefix="/meters")
CHANGES_SHOWN = 20  # the rest through /api/v1/meters/<id>/audit


@bp.get("/<meter_id>")
@login_required
def detail(meter_id: str) -> Any:
    """Render one meter, or 404 if it is not in the user's tenants."""
    meter = queries.get_meter(db(), user().scope, meter_id)
    if meter is None:
        abort(404, description=f"No meter {meter_id!r} in your fleet.")
    readings = queries.recent_readings(db(), meter.id)
    tz = zone_for(meter.lon)
    days = queries.recent_daily_rollups(db(), meter.id)
    hours = queries.recent_hourly_rollups(db(), meter)
    btype = BUILDING_TYPES.get(meter.building_type)
    return render_template(
        "meter.html",
        meter=meter,
        utility=meter.utility,
        segment_label=SEGMENT_LABELS.get(meter.utility.segment, meter.utility.segment),  # type: ignore[call-overload]
        building_label=btype.label if btype else meter.building_type,
        readings=readings,
        latest=readings[-1] if readings else None,
        chart_json=meter_figure(readings).to_json() if readings else None,
        quality_json=power_quality_figure(readings).to_json() if readings else None,
        profile_json=weekday_profile_figure(hours, tz).to_json() if hours else None,
        events=queries.meter_events(db(), meter.id),
        commands=allowed_commands(user().role),
        days=[(d, d.start.astimezone(tz), d.peak_at.astimezone(tz)) for d in days],
        changes=queries.reading_changes(db(), meter.id, limit=CHANGES_SHOWN),
        zone=tz,
    )
