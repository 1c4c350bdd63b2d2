"""Segment views: IOU, service bureau and security, each scoped to the user's tenants."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_login import login_required

from app.analytics.segment_charts import (
    bureau_cost_figure,
    iou_lines_figure,
    security_visits_figure,
)
from app.db.segment_queries import security_events, utility_activity
from app.domain import segments as seg
from app.web.auth import user
from app.web.db import db

bp = Blueprint("segments", __name__, url_prefix="/segments")


def _require(segment: str) -> None:
    if not seg.may_view_segment(user().role, segment):
        abort(403, description="Your role does not include this segment's view.")


@bp.get("/iou")
@login_required
def iou() -> Any:
    """Render the IOU view: modem lines displaced, read success and line cost avoided."""
    _require("iou")
    prices = seg.Prices.from_roi_defaults()
    rows = [seg.iou_row(a, prices) for a in utility_activity(db(), user().scope, "iou")]
    return render_template(
        "segments/iou.html",
        rows=rows,
        prices=prices,
        modem_source=seg.MODEM_READ_SUCCESS_SOURCE,
        totals={
            "customers": sum(r.activity.c_and_i_customers for r in rows),
            "lines": sum(r.activity.modem_lines for r in rows),
            "displaced": sum(r.lines_displaced for r in rows),
            "monthly": sum(r.line_cost_avoided_monthly for r in rows),
            "to_date": sum(r.line_cost_avoided_to_date for r in rows),
        },
        chart_json=iou_lines_figure(rows).to_json() if rows else None,
    )


@bp.get("/service-bureau")
@login_required
def service_bureau() -> Any:
    """Render the hosted utilities: health, completeness, subscription vs running it in-house."""
    _require("service_bureau")
    prices = seg.Prices.from_roi_defaults()
    activity = utility_activity(db(), user().scope, "service_bureau")
    rows = [seg.bureau_row(a, prices) for a in activity]
    return render_template(
        "segments/service_bureau.html",
        rows=rows,
        prices=prices,
        chart_json=bureau_cost_figure(rows).to_json() if rows else None,
    )


@bp.get("/security")
@login_required
def security() -> Any:
    """Render secured sites: visits and escort hours avoided, tamper and access events."""
    _require("security")
    prices = seg.Prices.from_roi_defaults()
    rows = [seg.security_row(a, prices) for a in utility_activity(db(), user().scope, "security")]
    return render_template(
        "segments/security.html",
        rows=rows,
        prices=prices,
        reads_per_year=seg.READS_PER_METER_PER_YEAR,
        events=security_events(db(), user().scope),
        chart_json=security_visits_figure(rows).to_json() if rows else None,
    )
