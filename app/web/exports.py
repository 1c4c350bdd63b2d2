"""Interval data out of the portal: readings as JSON or CSV, and Green Button feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from flask_login import login_required

from app.db import models, queries
from app.domain import telemetry
from app.domain.localtime import EARLIEST, LATEST, zone_for, zone_named
from app.domain.numbers import whole_number
from app.exports import csvio, greenbutton
from app.exports.series import MeterSeries, interval_from_row
from app.web.api import reading_json, visible_meter
from app.web.db import db

bp = Blueprint("exports", __name__, url_prefix="/api/v1")
MAX_RANGE = timedelta(days=31)
GREENBUTTON_DEFAULT_DAYS = 7
FORMATS = ("json", "csv")
ROLLUP_RANGE = {"hourly": timedelta(days=31), "daily": timedelta(days=366)}


@bp.get("/meters/<meter_id>/readings")
@login_required
def readings(meter_id: str) -> Any:
    """Return a meter's intervals in [start, end) as JSON or CSV; default: the newest 192."""
    found = visible_meter(meter_id)
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        abort(400, description=f"format must be one of {', '.join(FORMATS)}")
    tz = _zone_arg(found)
    start_raw, end_raw = request.args.get("start"), request.args.get("end")
    if start_raw is None and end_raw is None:
        rows = queries.recent_readings(db(), found.id)
    else:
        start, end = _range_args(start_raw, end_raw)
        rows = queries.readings_between(db(), found.id, start, end)
    if fmt == "csv":
        text = csvio.write_csv(found.id, [interval_from_row(r) for r in rows], tz)
        name = f"{found.id}-readings.csv"
        return Response(
            text,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return jsonify(meter_id=found.id, readings=[reading_json(r) for r in rows])


@bp.get("/meters/<meter_id>/greenbutton")
@login_required
def greenbutton_feed(meter_id: str) -> Any:
    """Return a meter's intervals in [start, end) as a Green Button (ESPI Atom) feed."""
    found = visible_meter(meter_id)
    tz = _zone_arg(found)
    start_raw, end_raw = request.args.get("start"), request.args.get("end")
    if start_raw is None and end_raw is None:
        # The last whole local days up to the newest stored interval.
        newest = found.last_interval_start or datetime.now(UTC)
        last_day = newest.astimezone(tz).date() + timedelta(days=1)
        end = greenbutton.local_midnight(last_day, tz)
        start = greenbutton.local_midnight(last_day - timedelta(days=GREENBUTTON_DEFAULT_DAYS), tz)
    else:
        start, end = _range_args(start_raw, end_raw)
    rows = queries.readings_between(db(), found.id, start, end)
    series = MeterSeries(
        meter_id=found.id,
        title=found.site_name,
        utility_id=found.utility_id,
        tz=tz,
        start=start,
        end=end,
        intervals=tuple(interval_from_row(r) for r in rows),
    )
    document = greenbutton.write_feed(series, now=datetime.now(UTC))
    name = f"{found.id}-greenbutton.xml"
    return Response(
        document,
        mimetype="application/atom+xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/meters/<meter_id>/rollups")
@login_required
def rollups(meter_id: str) -> Any:
    """Return hourly (UTC hours) or daily (local days) rollups over [start, end)."""
    found = visible_meter(meter_id)
    period = request.args.get("period", "daily")
    if period not in ROLLUP_RANGE:
        abort(400, description=f"period must be one of {', '.join(ROLLUP_RANGE)}")
    start, end = _range_args(
        request.args.get("start"), request.args.get("end"), ROLLUP_RANGE[period]
    )
    rows = queries.rollups_between(db(), found.id, period, start, end)
    return jsonify(
        meter_id=found.id,
        period=period,
        rollups=[
            {
                "start": telemetry.format_time(r.start),
                "kwh": r.kwh,
                "kvarh": r.kvarh,
                "peak_kw": r.peak_kw,
                "peak_at": telemetry.format_time(r.peak_at),
                "power_factor": r.power_factor,
                "intervals": r.intervals,
                "quality": {
                    "valid": r.valid,
                    "estimated": r.estimated,
                    "questionable": r.questionable,
                    "edited": r.edited,
                },
            }
            for r in rows
        ],
    )


AUDIT_LIMIT = 1000


@bp.get("/meters/<meter_id>/audit")
@login_required
def audit(meter_id: str) -> Any:
    """Return the audit trail of a meter's stored values, newest change first."""
    found = visible_meter(meter_id)
    start_raw, end_raw = request.args.get("start"), request.args.get("end")
    start = end = None
    if start_raw is not None or end_raw is not None:
        # The range is of interval starts; a trail is short, so a year is allowed.
        start, end = _range_args(start_raw, end_raw, timedelta(days=366))
    limit = whole_number(request.args.get("limit", "100"))
    if limit is None or not 1 <= limit <= AUDIT_LIMIT:
        abort(400, description=f"limit must be a whole number from 1 to {AUDIT_LIMIT}")
    rows = queries.reading_changes(db(), found.id, start=start, end=end, limit=limit)
    return jsonify(meter_id=found.id, changes=[change_json(r) for r in rows])


def change_json(row: models.ReadingAudit) -> dict[str, Any]:
    """Serialise one audited change of a stored interval."""
    return {
        "start": telemetry.format_time(row.start),
        "changed_at": telemetry.format_time(row.changed_at),
        "source": row.source,
        "old": {
            "kwh": row.old_kwh,
            "kvarh": row.old_kvarh,
            "demand_kw": row.old_demand_kw,
            "quality": row.old_quality,
        },
        "new": {
            "kwh": row.new_kwh,
            "kvarh": row.new_kvarh,
            "demand_kw": row.new_demand_kw,
            "quality": row.new_quality,
        },
    }


def _zone_arg(meter: models.Meter) -> tzinfo:
    raw = request.args.get("tz")
    if raw is None:
        return zone_for(meter.lon)
    try:
        return zone_named(raw)
    except ValueError:
        abort(400, description=f"tz {raw!r} is not an IANA time zone such as America/Chicago")


def _time_arg(name: str, raw: str | None) -> datetime:
    if raw is None:
        abort(400, description=f"{name} is required: give start and end together")
    if len(raw) == 10:  # YYYY-MM-DD: midnight UTC
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError:
            abort(400, description=f"{name} {raw!r} is not a date (YYYY-MM-DD)")
    try:
        return telemetry.parse_time(raw, name)
    except telemetry.ContractError as exc:
        abort(400, description=str(exc))


def _range_args(
    start_raw: str | None, end_raw: str | None, limit: timedelta = MAX_RANGE
) -> tuple[datetime, datetime]:
    start = _time_arg("start", start_raw)
    end = _time_arg("end", end_raw)
    for name, value in (("start", start), ("end", end)):
        # Local days and their zones are computed around the range: near year 1 or 9999
        # that overflows, and no meter has intervals there anyway.
        if not EARLIEST <= value <= LATEST:
            abort(400, description=f"{name} must be between {EARLIEST:%Y} and {LATEST:%Y}")
    if end <= start:
        abort(400, description="end must be after start")
    if end - start > limit:
        abort(400, description=f"end: the range is limited to {limit.days} days")
    return start, end
