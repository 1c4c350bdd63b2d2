"""ROI: the interactive page, the JSON API, report downloads and saved, versioned scenarios.

Who may use it: vendor admins and sales engineers (every scenario) and distributor managers
and reps (their distributor's scenarios and utilities). Utility viewers and building
managers get 403: the ROI is the seller's tool, and its output reaches the customer as
the report the distributor hands over. A scenario or utility of another tenant answers 404.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from flask import Blueprint, Response, abort, jsonify, render_template, request
from flask_login import login_required

from app.db import models, roi_store
from app.db.locks import hold_row
from app.domain.access import Role
from app.web.api import csrf_for_cookie_writes
from app.web.auth import PortalUser, user
from app.web.db import db
from roi import report as roi_report
from roi.calibrate import calibrated_document
from roi.inputs import (
    DEFAULT_DISCOUNT_RATE,
    DEFAULT_HORIZON_YEARS,
    MODEL_VERSION,
    SEGMENTS,
    RoiInputError,
    RoiInputs,
    defaults,
    parse_inputs,
)
from roi.models import CATEGORY_LABELS, NetworkCosts, choose_networks, run
from roi.network import parse_network_request, sites_from_locations
from roi.pdf import build_pdf
from roi.scenarios import document_changes
from roi.workbook import build_workbook
from simulator.fleet import SEGMENT_LABELS

log = logging.getLogger(__name__)

bp = Blueprint("roi", __name__)
api_bp = Blueprint("roi_api", __name__, url_prefix="/api/v1/roi")
api_bp.before_request(csrf_for_cookie_writes)

ROI_ROLES: Final = frozenset(
    {Role.VENDOR_ADMIN, Role.VENDOR_SE, Role.DISTRIBUTOR_MANAGER, Role.DISTRIBUTOR_REP}
)
LOGO_DIR: Final = Path(__file__).resolve().parent / "static" / "logos"
VENDOR_LOGO: Final = "wattline"
REPORT_KEYS: Final = ("customer_name", "utility_id")
FORMATS: Final = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",  # Werkzeug adds "; charset=utf-8" to a text/ mimetype
}
MAX_NAME: Final = 120
MAX_NOTE: Final = 2_000


def ordered_json(body: Any, status: int = 200) -> Response:
    """Answer JSON keeping key order (jsonify sorts keys; inputs are in catalogue order)."""
    return Response(json.dumps(body, allow_nan=False), status=status, mimetype="application/json")


def roi_user() -> PortalUser:
    """Return the current user if their role may use ROI, else answer 403."""
    found = user()
    if found.role not in ROI_ROLES:
        abort(403, description="ROI models are for vendor and distributor staff")
    return found


# --- Errors --------------------------------------------------------------------------------


class FieldError(Exception):
    """A request field is missing or wrong; answered as JSON 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@api_bp.errorhandler(RoiInputError)
def roi_input_error(exc: RoiInputError) -> tuple[Response, int]:
    """Answer a bad input document with 400 and the offending field."""
    return jsonify(error="Bad Request", message=str(exc), field=exc.field, status=400), 400


@api_bp.errorhandler(FieldError)
def field_error(exc: FieldError) -> tuple[Response, int]:
    """Answer a bad request field with 400 and the field's name."""
    return jsonify(error="Bad Request", message=str(exc), field=exc.field, status=400), 400


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldError("document", "send a JSON object (Content-Type: application/json)")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool, limit: int = MAX_NAME) -> str | None:
    raw = body.get(key)
    if raw is None:
        if required:
            raise FieldError(key, "is required")
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise FieldError(key, "must be a non-empty string")
    if len(raw) > limit:
        raise FieldError(key, f"must be at most {limit} characters")
    return raw.strip()


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate report metadata (customer name, utility) from the input document."""
    meta: dict[str, Any] = {k: body[k] for k in REPORT_KEYS if k in body}
    document = {k: v for k, v in body.items() if k not in REPORT_KEYS}
    return document, meta


# --- Evaluation ------------------------------------------------------------------------------


def _analysis_json(analysis: roi_report.Analysis) -> dict[str, Any]:
    result = analysis.result.to_dict()
    result["tornado"] = analysis.tornado.to_dict()
    result["cases"] = {
        name: {
            "npv": case.npv,
            "irr": case.irr,
            "simple_payback_years": case.simple_payback_years,
            "discounted_payback_years": case.discounted_payback_years,
        }
        for name, case in analysis.cases.items()
    }
    result["monte_carlo"] = analysis.monte_carlo.to_dict()
    result["monte_carlo"]["seed"] = roi_report.REPORT_SEED
    result["labels"] = {
        "inputs": {name: roi_report.input_label(name) for name in analysis.inputs.inputs},
        "categories": CATEGORY_LABELS,
    }
    return result


@api_bp.get("/defaults")
@login_required
def defaults_view() -> Any:
    """Return the complete default input document of a segment."""
    roi_user()
    segment = request.args.get("segment", "")
    if segment not in SEGMENTS:
        raise FieldError("segment", f"must be one of {', '.join(SEGMENTS)}; got {segment!r}")
    return ordered_json(defaults(segment))


@api_bp.post("")
@login_required
def evaluate_view() -> Any:
    """Evaluate an input document: headline figures, cash flows, tornado, cases, Monte Carlo."""
    roi_user()
    document, _meta = _split(_body())
    return ordered_json(_analysis_json(roi_report.analyse(parse_inputs(document))))


@api_bp.get("/calibrate")
@login_required
def calibrate_view() -> Any:
    """Return an input document prefilled from a visible utility's fleet data."""
    roi_user()
    utility_id = request.args.get("utility", "")
    if not utility_id:
        raise FieldError("utility", "is required")
    found = _visible_utility(utility_id)
    profile = roi_store.fleet_profile(db(), found)
    return ordered_json(
        {
            "document": calibrated_document(profile),
            "customer_name": found.name,
            "utility_id": found.id,
            "profile": {
                "meters": profile.meters,
                "modem_lines": profile.modem_lines,
                "c_and_i_customers": profile.c_and_i_customers,
                "meters_by_network": dict(profile.meters_by_network),
                "read_success": profile.read_success,
                "segment": profile.segment,
            },
        }
    )


@api_bp.post("/network-mix")
@login_required
def network_mix_view() -> Any:
    """Choose public cellular or the private network per site to minimise present cost."""
    roi_user()
    return ordered_json(parse_network_request(_body()).to_dict())


@api_bp.get("/network-mix")
@login_required
def fleet_network_mix_view() -> Any:
    """Run the network choice over a visible utility's metered sites (urban near the centre)."""
    roi_user()
    utility_id = request.args.get("utility", "")
    if not utility_id:
        raise FieldError("utility", "is required")
    found = _visible_utility(utility_id)
    points = roi_store.site_locations(db(), found.id)
    if not points:
        abort(404, description=f"utility {utility_id!r} has no metered sites yet")
    mix = choose_networks(
        sites_from_locations(points), NetworkCosts(), DEFAULT_HORIZON_YEARS, DEFAULT_DISCOUNT_RATE
    )
    return ordered_json({"utility_id": found.id, "utility_name": found.name, **mix.to_dict()})


@api_bp.post("/report")
@login_required
def report_view() -> Any:
    """Return the PDF, workbook or CSV for an input document."""
    who = roi_user()
    fmt = _format()
    document, meta = _split(_body())
    inputs = parse_inputs(document)
    utility = None
    utility_id = _text(meta, "utility_id", required=False, limit=64)
    if utility_id is not None:
        utility = _visible_utility(utility_id)
    customer = _text(meta, "customer_name", required=False) or (
        utility.name if utility is not None else "Customer"
    )
    distributor_id = who.distributor_id or (utility.distributor_id if utility else None)
    context = report_context(customer, distributor_id, datetime.now(UTC).date(), who.name)
    return report_file(fmt, inputs, context)


def _format() -> str:
    fmt = request.args.get("format", "")
    if fmt not in FORMATS:
        raise FieldError("format", f"must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return fmt


def _visible_utility(utility_id: str) -> models.Utility:
    found = roi_store.get_utility(db(), user().scope, utility_id)
    if found is None:
        abort(404, description=f"no utility {utility_id!r} in your scope")
    return found


def _logo(name: str | None) -> bytes | None:
    # Logo files are named after the tenant id; an id is never a path.
    if name is None or not re.fullmatch(r"[a-z0-9_-]{1,40}", name):
        return None
    path = LOGO_DIR / f"{name}.png"
    return path.read_bytes() if path.is_file() else None


def report_context(
    customer: str,
    distributor_id: str | None,
    prepared_on: date,
    prepared_by: str | None,
    scenario_label: str | None = None,
) -> roi_report.ReportContext:
    """Build a co-branded report's context: vendor and the distributor's names and logos."""
    distributor = db().get(models.Distributor, distributor_id) if distributor_id else None
    return roi_report.ReportContext(
        customer_name=customer,
        prepared_on=prepared_on,
        distributor_name=distributor.name if distributor else None,
        vendor_logo=_logo(VENDOR_LOGO),
        distributor_logo=_logo(distributor.id) if distributor else None,
        prepared_by=prepared_by,
        scenario_label=scenario_label,
    )


def report_file(fmt: str, inputs: RoiInputs, context: roi_report.ReportContext) -> Response:
    """Build a report file (pdf, xlsx or csv) as a download response."""
    if fmt == "pdf":
        data = build_pdf(roi_report.analyse(inputs), context)
    elif fmt == "xlsx":
        data = build_workbook(inputs, run(inputs), context)
    else:
        data = roi_report.cash_flow_csv(run(inputs))
    slug = re.sub(r"[^a-z0-9]+", "-", context.customer_name.lower()).strip("-")[:40] or "customer"
    name = f"wattline-roi-{slug}-{context.prepared_on.isoformat()}.{fmt}"
    response = Response(data, mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- Scenarios -------------------------------------------------------------------------------


def _scenario_json(s: models.RoiScenario) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "customer_name": s.customer_name,
        "segment": s.segment,
        "distributor_id": s.distributor_id,
        "utility_id": s.utility_id,
        "latest_version": s.latest_version,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
    }


def _version_json(v: models.RoiScenarioVersion, author: str | None = None) -> dict[str, Any]:
    return {
        "version": v.version,
        "model_version": v.model_version,
        "created_at": v.created_at.isoformat(),
        "created_by": author,
        "note": v.note,
        "npv": v.npv,
        "changes": v.changes.get("changed", []),
    }


def _new_version(
    document: dict[str, Any], previous: dict[str, Any] | None, note: str | None
) -> roi_store.NewVersion:
    inputs = parse_inputs(document)
    full = inputs.to_dict()
    result = run(inputs)
    return roi_store.NewVersion(
        document=full,
        model_version=MODEL_VERSION,
        npv=result.npv,
        changes={"changed": document_changes(previous, full)},
        note=note or "",
    )


def _visible_scenario(scenario_id: int) -> models.RoiScenario:
    found = roi_store.get_scenario(db(), user().scope, scenario_id)
    if found is None:
        abort(404, description=f"no scenario {scenario_id} in your scope")
    return found


@api_bp.get("/scenarios")
@login_required
def scenarios_view() -> Any:
    """List the caller's tenant's saved scenarios."""
    who = roi_user()
    return jsonify(scenarios=[_scenario_json(s) for s in roi_store.list_scenarios(db(), who.scope)])


@api_bp.post("/scenarios")
@login_required
def create_scenario_view() -> Any:
    """Save a new scenario (version 1) from an input document."""
    who = roi_user()
    body = _body()
    name = _text(body, "name", required=True)
    customer = _text(body, "customer_name", required=True)
    note = _text(body, "note", required=False, limit=MAX_NOTE)
    utility_id = _text(body, "utility_id", required=False, limit=64)
    utility = _visible_utility(utility_id) if utility_id is not None else None
    document = body.get("document")
    if not isinstance(document, dict):
        raise FieldError("document", "must be an input document object")
    first = _new_version(document, None, note)
    # A distributor's scenario is its own; the vendor's follows the utility's distributor.
    distributor_id = who.distributor_id or (utility.distributor_id if utility else None)
    session = db()
    scenario = roi_store.create_scenario(
        session,
        name=name or "",
        customer_name=customer or "",
        segment=str(first.document["segment"]),
        distributor_id=distributor_id,
        utility_id=utility.id if utility else None,
        user_id=who.id,
        first=first,
        now=datetime.now(UTC),
    )
    session.commit()
    log.info("user %s saved ROI scenario %s", who.id, scenario.id)
    return jsonify(_scenario_json(scenario)), 201


@api_bp.get("/scenarios/<int:scenario_id>")
@login_required
def scenario_view(scenario_id: int) -> Any:
    """Return a scenario with its version history (who changed what, when)."""
    roi_user()
    scenario = _visible_scenario(scenario_id)
    history = roi_store.versions(db(), scenario.id)
    return jsonify(**_scenario_json(scenario), versions=[_version_json(v, a) for v, a in history])


@api_bp.post("/scenarios/<int:scenario_id>/versions")
@login_required
def add_version_view(scenario_id: int) -> Any:
    """Save an edited document as the scenario's next version."""
    who = roi_user()
    scenario = _visible_scenario(scenario_id)
    body = _body()
    document = body.get("document")
    if not isinstance(document, dict):
        raise FieldError("document", "must be an input document object")
    note = _text(body, "note", required=False, limit=MAX_NOTE)
    session = db()
    # Two saves at once both numbered theirs latest+1 (a 500 on the unique version); the
    # second now waits for the first and diffs against it.
    hold_row(session, models.RoiScenario.id, scenario.id)
    session.refresh(scenario, ["latest_version"])
    latest = roi_store.get_version(session, scenario.id, scenario.latest_version)
    if document.get("segment") != scenario.segment:
        raise FieldError("document.segment", f"must stay {scenario.segment!r} for this scenario")
    new = _new_version(document, latest.document if latest else None, note)
    row = roi_store.add_version(session, scenario, new, who.id, datetime.now(UTC))
    session.commit()
    return jsonify(_version_json(row, who.name)), 201


def _stored_version(scenario_id: int, version: int) -> tuple[models.RoiScenario, Any]:
    scenario = _visible_scenario(scenario_id)
    found = roi_store.get_version(db(), scenario.id, version)
    if found is None:
        abort(404, description=f"scenario {scenario_id} has no version {version}")
    return scenario, found


@api_bp.get("/scenarios/<int:scenario_id>/versions/<int:version>")
@login_required
def version_view(scenario_id: int, version: int) -> Any:
    """Return one stored version: its full input document and metadata."""
    roi_user()
    scenario, found = _stored_version(scenario_id, version)
    return ordered_json(
        {"scenario": _scenario_json(scenario), "document": found.document, **_version_json(found)}
    )


@api_bp.get("/scenarios/<int:scenario_id>/versions/<int:version>/report")
@login_required
def version_report_view(scenario_id: int, version: int) -> Any:
    """Rebuild a stored version's report exactly: same document, date and parties."""
    roi_user()
    fmt = _format()
    scenario, found = _stored_version(scenario_id, version)
    if found.model_version != MODEL_VERSION:
        abort(
            409,
            description=f"version {version} was made with model {found.model_version}; this "
            f"portal runs {MODEL_VERSION} and cannot reproduce it exactly",
        )
    author = db().get(models.User, found.created_by_id)
    context = report_context(
        scenario.customer_name,
        scenario.distributor_id,
        found.created_at.date(),
        author.name if author else None,
        f"scenario '{scenario.name}' v{found.version}",
    )
    return report_file(fmt, parse_inputs(found.document), context)


# --- Page ------------------------------------------------------------------------------------


@bp.get("/roi")
@login_required
def page() -> Any:
    """Render the interactive ROI page."""
    who = roi_user()
    utilities = roi_store.visible_utilities(db(), who.scope)
    # ?utility= (a visible one) prefills from its fleet, as the presenter's story does.
    chosen = next((u for u in utilities if u.id == request.args.get("utility")), None)
    segment = chosen.segment if chosen else request.args.get("segment", "")
    return render_template(
        "roi.html",
        segments=[(s, SEGMENT_LABELS[s]) for s in SEGMENTS],
        utilities=utilities,
        scenarios=roi_store.list_scenarios(db(), who.scope),
        selected_segment=segment if segment in SEGMENTS else None,
        selected_utility=chosen.id if chosen else None,
    )
