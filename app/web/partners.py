"""Channel workspace: partner registry and evaluation, prospects, deals, ROI requests, RFx,
price book and KPIs (pages under /partners), and the deals API under /api/v1/deals.

Thin: parse input, call one service in app.db.channel, render. Utility viewers and
building managers get 403 on every channel page and endpoint.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.http import HTTP_STATUS_CODES

import roi
from app.analytics import partner_charts
from app.db import channel, models
from app.domain import telemetry
from app.domain.numbers import MAX_ID, whole_number
from app.web import api
from app.web.auth import user
from app.web.db import db
from app.web.roi import FORMATS, report_context, report_file
from partners import evaluation, kpis, pricing, rfx
from partners.deals import STATUS_LABELS, Status
from partners.prospects import Prospect, demand_score
from simulator.fleet import SEGMENT_LABELS

bp = Blueprint("partners", __name__, url_prefix="/partners")
api_bp = Blueprint("partners_api", __name__, url_prefix="/api/v1")
# Bearer writes skip CSRF; cookie writes need the X-CSRFToken header, as in app/web/api.py.
api_bp.before_request(api.csrf_for_cookie_writes)
MAX_UPLOAD_CHARS = 200_000
logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def actor() -> channel.Actor:
    """Return the acting user as the channel services see it."""
    u = user()
    return channel.Actor(u.id, u.role, u.scope, u.distributor_id)


def _channel_only() -> None:
    # Customers (utility viewers, building managers) never see channel data.
    if current_user.is_authenticated and channel.side_of(user().role) is None:
        abort(403, description="The channel workspace is for vendor and distributor staff.")


bp.before_request(_channel_only)
api_bp.before_request(_channel_only)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """Tell base.html whether to show the Channel link."""
    visible = current_user.is_authenticated and channel.side_of(user().role) is not None
    return {"channel_nav": visible}


def _vendor_only() -> None:
    if actor().side != "vendor":
        abort(403, description="Only vendor staff see the partner registry.")


def _when(value: datetime | None) -> str | None:
    return telemetry.format_time(value) if value is not None else None


# --- API --------------------------------------------------------------------------------


def deal_json(
    deal: models.Deal, view: Any, who: channel.Actor, tiers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Serialise a deal for the API (conflict details beyond the flag only for the vendor)."""
    q = channel.quote(db(), deal, tiers)
    body: dict[str, Any] = {
        "id": deal.id,
        "status": deal.status,
        "partner": deal.distributor_id,
        "conflict": view.conflict,
        "protected": view.protected,
        "utility": deal.utility_name,
        "segment": deal.segment,
        "region": deal.region,
        "prospect": deal.prospect_id,
        "endpoints": deal.endpoints,
        "term_months": deal.term_months,
        "rep_id": deal.rep_id,
        "note": deal.note,
        "created_at": _when(deal.created_at),
        "updated_at": _when(deal.updated_at),
        "first_response_at": _when(deal.first_response_at),
        "approved_at": _when(deal.approved_at),
        "roi_requested_at": _when(deal.roi_requested_at),
        "roi_delivered_at": _when(deal.roi_delivered_at),
        "proposal_at": _when(deal.proposal_at),
        "closed_at": _when(deal.closed_at),
        "value": {
            "tier": q.tier,
            "customer_total": q.customer_total,
            "distributor_margin": q.distributor_margin,
            "vendor_net": q.vendor_net,
        },
        "roi": None
        if deal.roi_result is None
        else {
            k: deal.roi_result.get(k)
            for k in (
                "npv",
                "irr",
                "simple_payback_years",
                "benefit_cost_ratio",
                "horizon_years",
                "discount_rate",
                "npv_convention",
            )
        },
        "roi_questionnaire": deal.roi_inputs is not None,
        "next": [s.value for s in channel.allowed_moves(who, deal, view.protected_by)],
    }
    if who.side == "vendor":
        body["conflict_with"] = list(view.others)
        body["protected_by"] = view.protected_by
    return body


def _api_error(exc: channel.ChannelError) -> tuple[Response, int]:
    db().rollback()
    return jsonify(
        error=HTTP_STATUS_CODES[exc.status],  # the name every other API error carries
        message=str(exc),
        field=exc.field,
        status=exc.status,
    ), exc.status


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="body: send a JSON object")
    return body


@api_bp.get("/deals")
@login_required
def api_deals() -> Any:
    """List the deals the caller may see."""
    rows = channel.list_deals(db(), user().scope)
    views = channel.conflicts(db(), rows, _now())
    who = actor()
    tiers = channel.partner_tiers(db())
    return jsonify(deals=[deal_json(d, views[d.id], who, tiers) for d in rows])


@api_bp.post("/deals")
@login_required
def api_register() -> Any:
    """Register a deal: at least `utility` and `segment`."""
    try:
        deal = channel.register_deal(db(), actor(), _json_body(), _now())
    except channel.ChannelError as exc:
        return _api_error(exc)
    db().commit()
    view = channel.conflicts(db(), [deal], _now())[deal.id]
    response = jsonify(deal_json(deal, view, actor()))
    response.status_code = 201
    response.headers["Location"] = url_for("partners_api.api_deal", deal_id=deal.id)
    return response


def _visible_deal(deal_id: int) -> models.Deal:
    found = channel.get_deal(db(), user().scope, deal_id)
    if found is None:
        abort(404, description=f"no deal {deal_id} among your deals")
    return found


@api_bp.get("/deals/<int:deal_id>")
@login_required
def api_deal(deal_id: int) -> Any:
    """Return one deal; another tenant's deal answers 404."""
    deal = _visible_deal(deal_id)
    view = channel.conflicts(db(), [deal], _now())[deal.id]
    return jsonify(deal_json(deal, view, actor()))


@api_bp.patch("/deals/<int:deal_id>")
@login_required
def api_patch(deal_id: int) -> Any:
    """Change a deal: status, note, size, ROI questionnaire (`roi_inputs`), `evaluate_roi`."""
    deal = _visible_deal(deal_id)
    try:
        channel.patch_deal(db(), actor(), deal, _json_body(), _now())
    except channel.ChannelError as exc:
        return _api_error(exc)
    db().commit()
    view = channel.conflicts(db(), [deal], _now())[deal.id]
    return jsonify(deal_json(deal, view, actor()))


# --- pages: registry and evaluation -----------------------------------------------------


@bp.get("/")
@login_required
def home() -> Any:
    """Send people to the deals list, the workspace's centre."""
    return redirect(url_for("partners.deals"))


def _weights_from_args() -> tuple[dict[str, float], str | None]:
    raw: dict[str, object] = {}
    for key in evaluation.CRITERION_KEYS:
        value = request.args.get(key)
        if value is None or value == "":
            continue
        try:
            raw[key] = float(value)
        except ValueError:
            raw[key] = value
    try:
        return evaluation.validate_weights(raw), None
    except evaluation.EvaluationError as exc:
        return dict(evaluation.DEFAULT_WEIGHTS), str(exc)


@bp.get("/registry")
@login_required
def registry() -> Any:
    """Show the partner registry and the evaluation matrix with editable weights (vendor)."""
    _vendor_only()
    weights, error = _weights_from_args()
    status = 400 if error else 200
    if error:
        flash(f"Weights not applied: {error}", "error")
    rows = channel.candidates(db())
    ranked = evaluation.rank([c for _, c in rows], weights)
    sens = evaluation.sensitivity([c for _, c in rows], weights)
    profiles = {p.id: p for p, _ in rows}
    return render_template(
        "partners/registry.html",
        ranked=ranked,
        profiles=profiles,
        weights=weights,
        criteria=evaluation.CRITERIA,
        sensitivity=sens,
        names={p.id: p.name for p, _ in rows},
        chart_json=partner_charts.ranking_figure(ranked).to_json(),
    ), status


# --- pages: prospects -------------------------------------------------------------------


@bp.get("/prospects")
@login_required
def prospects() -> Any:
    """Show prospects by segment with demand scores and the partner each lead is routed to."""
    return _prospects_page()


def _prospects_page(
    status: int = 200, form: dict[str, object] | None = None, invalid: str | None = None
) -> Any:
    rows = channel.visible_prospects(db(), user().scope)
    scored = [
        (
            p,
            demand_score(
                Prospect(
                    p.id,
                    p.name,
                    p.segment,
                    p.region,
                    p.c_and_i_customers,
                    p.modem_lines,
                    p.buildings,
                    p.meter_readers,
                )
            ),
        )
        for p in rows
    ]
    by_segment: dict[str, list[tuple[models.Prospect, float]]] = {}
    for p, score in sorted(scored, key=lambda x: -x[1]):
        by_segment.setdefault(p.segment, []).append((p, score))
    names = {d.id: d.name for d in channel.visible_partners(db(), user().scope)}
    return render_template(
        "partners/prospects.html",
        invalid=invalid,
        by_segment=by_segment,
        segment_labels=SEGMENT_LABELS,
        names=names,
        side=actor().side,
        form=form or {},
    ), status


@bp.post("/prospects")
@login_required
def add_prospect() -> Any:
    """Record a new lead and route it to a partner (vendor, CSRF-protected)."""
    body = _form_body(channel.PROSPECT_FIELDS)
    try:
        lead = channel.add_prospect(db(), actor(), body, _now())
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"Lead not added: {exc}", "error")
        return _prospects_page(exc.status, body, exc.field)
    db().commit()
    flash(f"{lead.name}: {lead.routing_reason}.", "info")
    return redirect(url_for("partners.prospects") + f"#segment-{lead.segment}")


# --- pages: deals -----------------------------------------------------------------------


def _form_body(fields: frozenset[str]) -> dict[str, object]:
    return {k: v.strip() for k, v in request.form.items() if k in fields and v.strip() != ""}


def _deals_page(
    status: int = 200, form: dict[str, object] | None = None, invalid: str | None = None
) -> Any:
    who = actor()
    rows = channel.list_deals(db(), who.scope)
    views = channel.conflicts(db(), rows, _now())
    leads = channel.visible_prospects(db(), who.scope)
    if form is None:
        # "Register deal" from the prospect list arrives with ?prospect=<id>: prefill it.
        lead = next((p for p in leads if p.id == request.args.get("prospect")), None)
        if lead is not None:
            form = {
                "prospect": lead.id,
                "utility": lead.name,
                "segment": lead.segment,
                "region": lead.region,
                "endpoints": str(lead.modem_lines),
            }
    return render_template(
        "partners/deals.html",
        invalid=invalid,
        deals=rows,
        views=views,
        labels=STATUS_LABELS,
        segment_labels=SEGMENT_LABELS,
        prospects=leads,
        partners=channel.visible_partners(db(), who.scope),
        side=who.side,
        form=form or {},
        counts=channel.counts_by_status(db(), who.scope),
    ), status


@bp.get("/deals")
@login_required
def deals() -> Any:
    """List the caller's deals with the registration form."""
    return _deals_page()


@bp.post("/deals")
@login_required
def register() -> Any:
    """Register a deal from the form (CSRF-protected)."""
    body = _form_body(channel.REGISTER_FIELDS)
    try:
        deal = channel.register_deal(db(), actor(), body, _now())
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"Not registered: {exc}", "error")
        return _deals_page(exc.status, body, exc.field)
    db().commit()
    flash(f"Deal #{deal.id} registered for {deal.utility_name}.", "info")
    return redirect(url_for("partners.deal", deal_id=deal.id))


def _questionnaire(deal: models.Deal) -> dict[str, Any]:
    # A stored document from an older model version, or a deal size the model refuses,
    # must not break the page: fall back to the segment's defaults for the form.
    for document in (deal.roi_inputs, _default_questionnaire(deal)):
        if document is None:
            continue
        try:
            return roi.parse_inputs(document).to_dict()
        except roi.RoiInputError:
            logger.info("deal %s: ROI questionnaire falls back to defaults", deal.id)
    return roi.defaults(deal.segment)


def _default_questionnaire(deal: models.Deal) -> dict[str, Any]:
    inputs: dict[str, object] = {}
    if deal.segment == "service_bureau":
        inputs["meters"] = deal.endpoints
    else:
        inputs["endpoints"] = deal.endpoints
    return {"segment": deal.segment, "inputs": inputs}


def _deal_page(deal: models.Deal, status: int = 200) -> Any:
    who = actor()
    view = channel.conflicts(db(), [deal], _now())[deal.id]
    events = channel.deal_events(db(), deal.id)
    user_ids = {e.actor_id for e in events} | {deal.roi_evaluated_by, deal.rep_id}
    users = {
        u.id: u.name
        for u in db().scalars(select(models.User).where(models.User.id.in_(user_ids - {None})))
    }
    return render_template(
        "partners/deal.html",
        deal=deal,
        view=view,
        side=who.side,
        labels=STATUS_LABELS,
        segment_labels=SEGMENT_LABELS,
        quote=channel.quote(db(), deal),
        events=events,
        users=users,
        moves=channel.allowed_moves(who, deal, view.protected_by),
        questionnaire=_questionnaire(deal),
        can_fill=Status(deal.status) in {Status.APPROVED, Status.ROI_REQUESTED},
        can_evaluate=who.side == "vendor" and deal.status == Status.ROI_REQUESTED.value,
        partner_name=deal.distributor.name,
    ), status


@bp.get("/deals/<int:deal_id>")
@login_required
def deal(deal_id: int) -> Any:
    """Show one deal: conflict, economics, history, lifecycle buttons, ROI request and result."""
    return _deal_page(_visible_deal(deal_id))


@bp.post("/deals/<int:deal_id>/status")
@login_required
def deal_status(deal_id: int) -> Any:
    """Move a deal to another state (CSRF-protected form)."""
    found = _visible_deal(deal_id)
    try:
        channel.transition(db(), actor(), found, request.form.get("status", ""), _now())
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"Not changed: {exc}", "error")
        return _deal_page(found, exc.status)
    db().commit()
    flash(f"Deal #{found.id} is now {STATUS_LABELS[Status(found.status)]}.", "info")
    return redirect(url_for("partners.deal", deal_id=found.id))


def _questionnaire_from_form(deal: models.Deal) -> dict[str, Any]:
    spec = roi.defaults(deal.segment)
    inputs: dict[str, float] = {}
    for name in spec["inputs"]:
        raw = request.form.get(f"in.{name}", "").strip()
        if raw == "":
            continue
        inputs[name] = _number(f"roi_inputs.inputs.{name}", raw)
    document: dict[str, Any] = {"segment": deal.segment, "inputs": inputs}
    for top in ("horizon_years", "discount_rate"):
        raw = request.form.get(top, "").strip()
        if raw:
            value = _number(f"roi_inputs.{top}", raw)
            document[top] = int(value) if top == "horizon_years" and value.is_integer() else value
    return document


def _number(field: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise channel.ChannelError(field, "must be a number") from None
    if not math.isfinite(value):
        raise channel.ChannelError(field, "must be a finite number")
    return value


@bp.post("/deals/<int:deal_id>/roi")
@login_required
def deal_roi(deal_id: int) -> Any:
    """Save the rep's ROI questionnaire and request the ROI model (CSRF-protected)."""
    found = _visible_deal(deal_id)
    try:
        channel.request_roi(db(), actor(), found, _questionnaire_from_form(found), _now())
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"ROI request not saved: {exc}", "error")
        return _deal_page(found, exc.status)
    db().commit()
    flash("ROI questionnaire saved; the vendor's engineer has been asked for the model.", "info")
    return redirect(url_for("partners.deal", deal_id=found.id))


@bp.post("/deals/<int:deal_id>/roi/evaluate")
@login_required
def deal_roi_evaluate(deal_id: int) -> Any:
    """Build the ROI model from the (reviewed) questionnaire and store it on the deal (vendor)."""
    found = _visible_deal(deal_id)
    try:
        document = _questionnaire_from_form(found) if request.form.get("edited") else None
        channel.deliver_roi(db(), actor(), found, _now(), document)
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"ROI not produced: {exc}", "error")
        return _deal_page(found, exc.status)
    db().commit()
    flash("ROI model produced and attached to the deal.", "info")
    return redirect(url_for("partners.deal", deal_id=found.id))


@bp.get("/deals/<int:deal_id>/roi/report.<fmt>")
@login_required
def deal_roi_report(deal_id: int, fmt: str) -> Any:
    """Download the deal's co-branded ROI report (PDF, workbook or CSV) once it is delivered."""
    found = _visible_deal(deal_id)
    if fmt not in FORMATS:
        abort(404, description=f"no {fmt!r} report; choose one of {', '.join(FORMATS)}")
    if found.roi_inputs is None or found.roi_delivered_at is None:
        abort(409, description="the vendor has not delivered this deal's ROI model yet")
    evaluator = db().get(models.User, found.roi_evaluated_by) if found.roi_evaluated_by else None
    # Dated by the delivery, not the download: the same deal always gives the same report.
    context = report_context(
        found.utility_name,
        found.distributor_id,
        found.roi_delivered_at.date(),
        evaluator.name if evaluator else None,
        scenario_label=f"Deal #{found.id}",
    )
    return report_file(fmt, roi.parse_inputs(found.roi_inputs), context)


# --- pages: RFx -------------------------------------------------------------------------


@bp.get("/rfx")
@login_required
def rfx_list() -> Any:
    """List shared RFIs/RFQs with the form to share a new one."""
    return _rfx_list_page()


def _rfx_list_page(
    status: int = 200, form: dict[str, str] | None = None, invalid: str | None = None
) -> Any:
    who = actor()
    return render_template(
        "partners/rfx_list.html",
        invalid=invalid,
        docs=channel.visible_rfx(db(), who.scope),
        partners=channel.visible_partners(db(), who.scope),
        deals=channel.list_deals(db(), who.scope),
        side=who.side,
        form=form or {},
    ), status


@bp.post("/rfx")
@login_required
def rfx_create() -> Any:
    """Share requirements pasted in the form or uploaded as a text/CSV file (CSRF-protected)."""
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    text = form.get("requirements", "")
    upload = request.files.get("file")
    try:
        if upload is not None and upload.filename:
            raw = upload.read(MAX_UPLOAD_CHARS + 1)
            if len(raw) > MAX_UPLOAD_CHARS:
                raise channel.ChannelError("file", "is too large (200 kB at most)", 413)
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise channel.ChannelError("file", "must be UTF-8 text or CSV") from None
        deal_raw = form.get("deal", "").strip()
        deal_id = whole_number(deal_raw)
        if deal_raw and (deal_id is None or not 1 <= deal_id <= MAX_ID):
            raise channel.ChannelError("deal", "must be a deal number")
        doc = channel.create_rfx(
            db(),
            actor(),
            title=form.get("title", ""),
            text=text,
            partner=form.get("partner") or None,
            deal_id=deal_id,
            now=_now(),
        )
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"Not shared: {exc}", "error")
        return _rfx_list_page(exc.status, form, exc.field)
    db().commit()
    return redirect(url_for("partners.rfx_detail", rfx_id=doc.id))


def _visible_rfx(rfx_id: int) -> models.RfxDocument:
    found = channel.get_rfx(db(), user().scope, rfx_id)
    if found is None:
        abort(404, description=f"No RFI/RFQ {rfx_id} among yours.")
    return found


def _rfx_page(doc: models.RfxDocument, status: int = 200) -> Any:
    who = actor()
    reqs = channel.requirements(db(), doc.id)
    library = channel.library(db()) if who.side == "vendor" else []
    query = request.args.get("q", "").strip()[:200]
    return render_template(
        "partners/rfx.html",
        doc=doc,
        reqs=reqs,
        side=who.side,
        suggestions={
            r.id: rfx.search(r.text, library, limit=3) for r in reqs if who.side == "vendor"
        },
        query=query,
        results=rfx.search(query, library, limit=10) if query else [],
        compliance=rfx.COMPLIANCE,
        answered=sum(1 for r in reqs if r.answer),
    ), status


@bp.get("/rfx/<int:rfx_id>")
@login_required
def rfx_detail(rfx_id: int) -> Any:
    """Show requirements and answers; the vendor answers with library suggestions."""
    return _rfx_page(_visible_rfx(rfx_id))


@bp.post("/rfx/<int:rfx_id>/requirements/<int:req_id>")
@login_required
def rfx_answer(rfx_id: int, req_id: int) -> Any:
    """Answer one requirement (vendor, CSRF-protected)."""
    doc = _visible_rfx(rfx_id)
    req = db().get(models.RfxRequirement, req_id)
    if req is None or req.rfx_id != doc.id:
        abort(404, description="No such requirement in this document.")
    try:
        channel.answer_requirement(
            db(),
            actor(),
            req,
            answer=request.form.get("answer", ""),
            compliance=request.form.get("compliance", ""),
            save_to_library=request.form.get("save") == "1",
            now=_now(),
        )
    except channel.ChannelError as exc:
        db().rollback()
        flash(f"Not answered: {exc}", "error")
        return _rfx_page(doc, exc.status)
    db().commit()
    return redirect(url_for("partners.rfx_detail", rfx_id=doc.id) + f"#req-{req.id}")


@bp.get("/rfx/<int:rfx_id>/matrix.<fmt>")
@login_required
def rfx_matrix(rfx_id: int, fmt: str) -> Any:
    """Export the compliance matrix as CSV or XLSX."""
    doc = _visible_rfx(rfx_id)
    rows = channel.matrix_rows(channel.requirements(db(), doc.id))
    name = f"compliance-matrix-{doc.id}"
    if fmt == "csv":
        return Response(
            rfx.matrix_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            rfx.matrix_xlsx(rows, doc.title),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    abort(404, description="Export as .csv or .xlsx.")


# --- pages: price book ------------------------------------------------------------------


@bp.get("/prices")
@login_required
def prices() -> Any:
    """Show the price book: every tier to the vendor, a distributor its own tier only."""
    who = actor()
    today = _now().date()
    book = pricing.DEFAULT_BOOK
    if who.side == "vendor":
        tiers = list(pricing.tiers(book))
    else:
        own = channel.partner_tier(db(), who.distributor_id or "")
        asked = request.args.get("tier")
        if asked and asked != own:
            abort(403, description=f"Your price sheet is the {own} tier's.")
        tiers = [own]
    endpoints = _arg_int("endpoints", 500, 0, channel.MAX_ENDPOINTS)
    term = _arg_int("term_months", 36, 1, channel.MAX_TERM_MONTHS)
    return render_template(
        "partners/prices.html",
        sheets={t: pricing.price_sheet(book, t, today) for t in tiers},
        promotions=[p for p in book.promotions if p.tier in tiers and p.active(today)],
        quotes={
            t: pricing.deal_quote(book, t, endpoints=endpoints, term_months=term, on=today)
            for t in tiers
        },
        endpoints=endpoints,
        term=term,
        side=who.side,
        today=today,
    )


def _arg_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    value = whole_number(raw)
    if value is None or not low <= value <= high:
        abort(400, description=f"{name} must be a whole number between {low} and {high}")
    return value


# --- pages: KPIs ------------------------------------------------------------------------


def _kpi_scope() -> tuple[list[kpis.DealFacts], dict[str, str], str | None]:
    who = actor()
    facts = channel.deal_facts(db(), who.scope)
    names = {d.id: d.name for d in channel.visible_partners(db(), who.scope)}
    partner = request.args.get("partner") or None
    if partner is not None:
        if partner not in names:
            abort(404, description=f"No partner {partner!r} among yours.")
        facts = [f for f in facts if f.distributor_id == partner]
    return facts, names, partner


@bp.get("/kpis")
@login_required
def kpi_dashboard() -> Any:
    """Show the partnership KPIs for the caller's side (the vendor: across partners)."""
    facts, names, partner = _kpi_scope()
    total = kpis.compute(facts)
    per = kpis.by_partner(facts)
    return render_template(
        "partners/kpis.html",
        total=total,
        per=per,
        names=names,
        partner=partner,
        side=actor().side,
        pipeline_json=partner_charts.pipeline_figure(total).to_json(),
        revenue_json=partner_charts.revenue_figure(per, names).to_json(),
        cycle_json=partner_charts.cycle_figure(total).to_json(),
        labels=STATUS_LABELS,
    )


@bp.get("/kpis.csv")
@login_required
def kpi_csv() -> Any:
    """Export the KPIs as CSV: one column for the whole scope and one per partner."""
    facts, names, _partner = _kpi_scope()
    total = kpis.compute(facts)
    per = kpis.by_partner(facts)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["KPI", "All", *(names.get(p, p) for p in per)])
    columns = [dict(total.rows()), *(dict(k.rows()) for k in per.values())]
    for label, _value in total.rows():
        writer.writerow([label, *(c[label] for c in columns)])
    for stage in total.pipeline:
        for segment in total.segments:
            writer.writerow(
                [
                    f"Pipeline {stage} / {segment} (deals)",
                    total.pipeline[stage][segment],
                    *(k.pipeline[stage].get(segment, 0) for k in per.values()),
                ]
            )
    return Response(
        buf.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="partnership-kpis.csv"'},
    )
