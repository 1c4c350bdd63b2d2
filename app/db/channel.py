"""Channel workspace services: tenant-scoped deal, prospect, RFx and KPI queries and commands.

Every read goes through a scope (vendor staff: everything; a distributor: its own;
utility viewers and building managers: nothing). Commands take an `Actor` and `now`,
apply the pure rules in `partners/`, and record a timestamped `DealEvent` for every step.
Errors are `ChannelError`s that name the offending field and carry the HTTP status.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, false, func, select, true
from sqlalchemy.orm import Session

import roi
from app.db import models
from app.db.locks import hold_row
from app.domain.access import Role, Scope
from app.domain.numbers import whole_number
from partners import kpis, pricing, rfx
from partners.deals import (
    ConflictView,
    Registration,
    Side,
    Status,
    WorkflowError,
    check_transition,
    conflict_view,
    next_states,
    own_open_registration,
    parse_status,
    utility_key,
)
from partners.evaluation import Candidate
from partners.prospects import PartnerCoverage, route_lead
from partners.territory import TerritoryError, check_deal_territory, parse_place

logger = logging.getLogger(__name__)
SEGMENTS: Final = ("iou", "service_bureau", "security")
MAX_ENDPOINTS: Final = 1_000_000
MAX_TERM_MONTHS: Final = 120
MAX_NOTE: Final = 4000
_STAMP: Final[dict[Status, str]] = {
    Status.APPROVED: "approved_at",
    Status.ROI_REQUESTED: "roi_requested_at",
    Status.PROPOSAL: "proposal_at",
    Status.WON: "closed_at",
    Status.LOST: "closed_at",
    Status.REJECTED: "closed_at",
}


class ChannelError(ValueError):
    """Refuse a channel command; ``field`` names the input, ``status`` is the HTTP status."""

    def __init__(self, field: str, problem: str, status: int = 400) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.status = status


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: user id, role, scope and distributor."""

    user_id: int
    role: Role
    scope: Scope
    distributor_id: str | None

    @property
    def side(self) -> Side | None:
        """Return the side of the partnership, or None for customers (no channel access)."""
        if self.role in {Role.VENDOR_ADMIN, Role.VENDOR_SE}:
            return "vendor"
        if self.role in {Role.DISTRIBUTOR_MANAGER, Role.DISTRIBUTOR_REP}:
            return "distributor"
        return None


def side_of(role: Role) -> Side | None:
    """Return the partnership side of a role (None: utility viewers, building managers)."""
    return Actor(0, role, Scope(), None).side


def _tenant_clause(column: Any, scope: Scope) -> ColumnElement[bool]:
    # Utility-scoped users (viewers, building managers) never see channel data.
    if scope.everything:
        return true()
    if scope.distributor_id is not None and scope.utility_id is None:
        return column == scope.distributor_id  # type: ignore[no-any-return]
    return false()


# --- partners and prices ----------------------------------------------------------------


def candidates(session: Session) -> list[tuple[models.PartnerProfile, Candidate]]:
    """Return the whole partner registry with evaluation attributes (vendor only)."""
    rows = session.scalars(select(models.PartnerProfile).order_by(models.PartnerProfile.name))
    return [(p, to_candidate(p)) for p in rows]


def to_candidate(p: models.PartnerProfile) -> Candidate:
    """Convert a registry row to the evaluation matrix's candidate."""
    return Candidate(
        id=p.id,
        name=p.name,
        partner_type=p.partner_type,
        tier=p.tier,
        utility_customers=p.utility_customers,
        sales_reps=p.sales_reps,
        avg_rep_tenure_years=p.avg_rep_tenure_years,
        compensation_alignment=p.compensation_alignment,
        network_fit=p.network_fit,
        mdm_fit=p.mdm_fit,
        vendor_neutrality=p.vendor_neutrality,
    )


def partner_profile(session: Session, distributor_id: str) -> models.PartnerProfile | None:
    """Return the registry row of a signed partner."""
    return session.scalars(
        select(models.PartnerProfile).where(models.PartnerProfile.distributor_id == distributor_id)
    ).first()


def partner_tier(session: Session, distributor_id: str) -> str:
    """Return a signed partner's tier (bronze when it has no registry row yet)."""
    profile = partner_profile(session, distributor_id)
    return profile.tier if profile is not None else "bronze"


def visible_partners(session: Session, scope: Scope) -> list[models.Distributor]:
    """Return the distributors a scope may see in channel views."""
    return list(
        session.scalars(
            select(models.Distributor)
            .where(_tenant_clause(models.Distributor.id, scope))
            .order_by(models.Distributor.name)
        )
    )


# --- prospects --------------------------------------------------------------------------


def visible_prospects(session: Session, scope: Scope) -> list[models.Prospect]:
    """Return the prospects a scope may see (a distributor: the leads routed to it)."""
    return list(
        session.scalars(
            select(models.Prospect)
            .where(_tenant_clause(models.Prospect.distributor_id, scope))
            .order_by(models.Prospect.segment, models.Prospect.name)
        )
    )


PROSPECT_FIELDS: Final = frozenset(
    {"name", "segment", "region", "c_and_i_customers", "modem_lines", "buildings", "meter_readers"}
)


def coverage(session: Session) -> list[PartnerCoverage]:
    """Return what lead routing knows about every signed partner."""
    return [
        PartnerCoverage(
            p.distributor_id, p.name, p.tier, frozenset(p.territory), frozenset(p.segments)
        )
        for p in session.scalars(select(models.PartnerProfile).order_by(models.PartnerProfile.id))
        if p.distributor_id is not None
    ]


def add_prospect(
    session: Session, actor: Actor, body: Mapping[str, object], now: datetime
) -> models.Prospect:
    """Record a new lead (vendor) and route it to a partner by segment and territory."""
    if actor.side != "vendor":
        raise ChannelError("role", "new leads come in through the vendor, who routes them", 403)
    _unknown(body, PROSPECT_FIELDS)
    name = _text(body, "name", required=True, limit=120) or ""
    segment = _text(body, "segment", required=True, limit=20)
    if segment not in SEGMENTS:
        raise ChannelError("segment", f"must be one of {', '.join(SEGMENTS)}")
    try:
        region = parse_place(body.get("region"), "region")
    except TerritoryError as exc:
        raise ChannelError(exc.field, exc.problem) from None
    counts = {
        f: _int(body, f, 0, 0, 10_000_000)
        for f in ("c_and_i_customers", "modem_lines", "buildings", "meter_readers")
    }
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = "-".join(re.findall(r"[a-z0-9]+", folded))[:50].strip("-") or "lead"
    taken = set(
        session.scalars(select(models.Prospect.id).where(models.Prospect.id.like(f"{slug}%")))
    )
    pid, n = slug, 1
    while pid in taken:
        n += 1
        pid = f"{slug}-{n}"
    # Spread leads: among equal partners the one with fewer open leads gets the next one.
    load = {
        str(d): int(n)
        for d, n in session.execute(
            select(models.Prospect.distributor_id, func.count())
            .where(models.Prospect.distributor_id.is_not(None))
            .group_by(models.Prospect.distributor_id)
        )
    }
    route = route_lead(segment or "", region, coverage(session), load)
    prospect = models.Prospect(
        id=pid,
        name=name,
        segment=segment,
        region=region,
        distributor_id=route.distributor_id,
        routing_reason=route.reason,
        created_at=now,
        **counts,
    )
    session.add(prospect)
    logger.info("lead %s routed to %s", pid, route.distributor_id)
    return prospect


# --- deals ------------------------------------------------------------------------------


def scoped_deals(scope: Scope) -> Select[models.Deal]:
    """Select the deals a scope may see."""
    return select(models.Deal).where(_tenant_clause(models.Deal.distributor_id, scope))


def list_deals(session: Session, scope: Scope) -> list[models.Deal]:
    """List visible deals, newest first."""
    return list(
        session.scalars(
            scoped_deals(scope).order_by(models.Deal.created_at.desc(), models.Deal.id.desc())
        )
    )


def get_deal(session: Session, scope: Scope, deal_id: int) -> models.Deal | None:
    """Return a deal if the scope may see it (None means 404: ids never leak)."""
    return session.scalars(scoped_deals(scope).where(models.Deal.id == deal_id)).first()


def _registration(d: models.Deal) -> Registration:
    return Registration(
        d.id,
        d.utility_key,
        d.distributor_id,
        d.rep_id,
        Status(d.status),
        d.created_at,
        d.region,
        d.segment,
    )


def conflicts(
    session: Session, deals: Sequence[models.Deal], now: datetime
) -> dict[int, ConflictView]:
    """Compute each deal's conflict against every registration for its utility (all tenants)."""
    keys = {d.utility_key for d in deals}
    if not keys:
        return {}
    groups: dict[str, list[Registration]] = defaultdict(list)
    for other in session.scalars(select(models.Deal).where(models.Deal.utility_key.in_(keys))):
        groups[other.utility_key].append(_registration(other))
    return {d.id: conflict_view(_registration(d), groups[d.utility_key], now) for d in deals}


def deal_events(session: Session, deal_id: int) -> list[models.DealEvent]:
    """Return a deal's timestamped history, oldest first."""
    return list(
        session.scalars(
            select(models.DealEvent)
            .where(models.DealEvent.deal_id == deal_id)
            .order_by(models.DealEvent.at, models.DealEvent.id)
        )
    )


def partner_tiers(session: Session) -> dict[str, str]:
    """Return every signed partner's tier by distributor id (one query for a whole list)."""
    rows = session.execute(
        select(models.PartnerProfile.distributor_id, models.PartnerProfile.tier).where(
            models.PartnerProfile.distributor_id.is_not(None)
        )
    )
    return {str(d): str(t) for d, t in rows}


def quote(
    session: Session, deal: models.Deal, tiers: Mapping[str, str] | None = None
) -> pricing.Quote:
    """Price a deal at its partner's tier on its registration date."""
    tier = (
        tiers.get(deal.distributor_id, "bronze")
        if tiers is not None
        else partner_tier(session, deal.distributor_id)
    )
    return pricing.deal_quote(
        pricing.DEFAULT_BOOK,
        tier,
        endpoints=deal.endpoints,
        term_months=deal.term_months,
        on=deal.created_at.date(),
        subscription_sku=pricing.subscription_sku_for(deal.segment),
    )


def _event(
    session: Session, deal: models.Deal, actor: Actor, action: str, at: datetime, detail: str = ""
) -> None:
    session.add(
        models.DealEvent(
            deal_id=deal.id, at=at, actor_id=actor.user_id, action=action, detail=detail
        )
    )


def _require_side(actor: Actor) -> Side:
    side = actor.side
    if side is None:
        raise ChannelError("role", "channel data is for vendor and distributor staff", 403)
    return side


def _text(body: Mapping[str, object], field: str, *, required: bool, limit: int) -> str | None:
    raw = body.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ChannelError(field, "is required")
        return None
    if not isinstance(raw, str):
        raise ChannelError(field, "must be a string")
    text = raw.strip()
    if len(text) > limit:
        raise ChannelError(field, f"must be at most {limit} characters")
    return text


def _int(body: Mapping[str, object], field: str, default: int, low: int, high: int) -> int:
    raw = body.get(field, default)
    if isinstance(raw, str):  # form posts send text
        raw = whole_number(raw)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # JSON's 40.0 is the integer 40 (as JSON Schema has it)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ChannelError(field, "must be a whole number")
    if not low <= raw <= high:
        raise ChannelError(field, f"must be between {low} and {high}")
    return raw


REGISTER_FIELDS: Final = frozenset(
    {"utility", "segment", "region", "partner", "prospect", "endpoints", "term_months", "note"}
)
PATCH_FIELDS: Final = frozenset(
    {"status", "note", "endpoints", "term_months", "roi_inputs", "evaluate_roi", "partner"}
)


def _unknown(body: Mapping[str, object], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise ChannelError(str(key), f"unknown field; allowed: {', '.join(sorted(allowed))}")


def register_deal(
    session: Session, actor: Actor, body: Mapping[str, object], now: datetime
) -> models.Deal:
    """Register a deal from `utility` and `segment` (plus optional fields), checking territory."""
    side = _require_side(actor)
    _unknown(body, REGISTER_FIELDS)
    utility = _text(body, "utility", required=True, limit=120) or ""
    segment = _text(body, "segment", required=True, limit=20)
    if segment not in SEGMENTS:
        raise ChannelError("segment", f"must be one of {', '.join(SEGMENTS)}")
    partner = _text(body, "partner", required=side == "vendor", limit=40)
    if side == "distributor":
        # A distributor registers for itself only: naming another tenant is an attack, not a typo.
        if partner is not None and partner != actor.distributor_id:
            raise ChannelError("partner", "you can only register deals for your own company", 403)
        partner = actor.distributor_id
    if partner is None or session.get(models.Distributor, partner) is None:
        raise ChannelError("partner", "unknown partner")
    key = utility_key(utility)
    if not key:
        raise ChannelError("utility", "must contain letters or digits")

    prospect = _matching_prospect(session, actor.scope, body, key)
    region_raw = body.get("region")
    if region_raw is None or region_raw == "":
        if prospect is None:
            raise ChannelError(
                "region", "is required (e.g. 'US-MI') for a utility not in your prospect list"
            )
        region = prospect.region
    else:
        try:
            region = parse_place(region_raw, "region")
        except TerritoryError as exc:
            raise ChannelError(exc.field, exc.problem) from None

    profile = partner_profile(session, partner)
    if profile is None:
        raise ChannelError("partner", "has no territory on file; the vendor must sign it first")
    decision = check_deal_territory(profile.name, profile.territory, region)
    if not decision.allowed:
        raise ChannelError("region", f"refused: {decision.reason}", 422)

    deal = models.Deal(
        distributor_id=partner,
        rep_id=actor.user_id if side == "distributor" else None,
        prospect_id=prospect.id if prospect is not None else None,
        utility_name=utility,
        utility_key=key,
        segment=segment,
        region=region,
        endpoints=_int(body, "endpoints", _default_endpoints(prospect), 0, MAX_ENDPOINTS),
        term_months=_int(body, "term_months", 36, 1, MAX_TERM_MONTHS),
        status=Status.SUBMITTED.value,
        note=_text(body, "note", required=False, limit=MAX_NOTE) or "",
        created_at=now,
        updated_at=now,
    )
    # One registration of a partner's at a time: two at once both passed the check below
    # and left two open deals for one utility.
    hold_row(session, models.Distributor.id, partner)
    same = [
        _registration(d)
        for d in session.scalars(select(models.Deal).where(models.Deal.utility_key == key))
    ]
    own = own_open_registration(_registration(deal), same)
    if own is not None:
        # Registering again would restart the partner's own protection window.
        raise ChannelError(
            "utility",
            f"your company's deal #{own.id} for this utility is still open; update that one",
            409,
        )
    session.add(deal)
    session.flush()
    view = conflicts(session, [deal], now)[deal.id]
    detail = decision.reason
    if view.conflict:
        detail += "; conflict: another registration for this utility exists" + (
            "" if view.protected else ", flagged for the vendor to decide"
        )
    _event(session, deal, actor, "registered", now, detail)
    logger.info(
        "deal %s registered by user %s (conflict=%s)", deal.id, actor.user_id, view.conflict
    )
    return deal


def _matching_prospect(
    session: Session, scope: Scope, body: Mapping[str, object], key: str
) -> models.Prospect | None:
    pid = body.get("prospect")
    visible = {p.id: p for p in visible_prospects(session, scope)}
    if pid is not None and pid != "":
        if not isinstance(pid, str) or pid not in visible:
            # Someone else's lead answers like a missing one.
            raise ChannelError("prospect", "no such prospect in your list", 404)
        return visible[pid]
    return next((p for p in visible.values() if utility_key(p.name) == key), None)


def _default_endpoints(prospect: models.Prospect | None) -> int:
    if prospect is None:
        return 0
    return prospect.modem_lines


def _mark_response(deal: models.Deal, actor: Actor, now: datetime) -> None:
    # "Lead to first response" measures the vendor's reaction to a registration.
    if actor.side == "vendor" and deal.first_response_at is None:
        deal.first_response_at = now


def transition(
    session: Session, actor: Actor, deal: models.Deal, target_raw: object, now: datetime
) -> None:
    """Move a deal to another lifecycle state, enforcing sides, ROI delivery and protection."""
    side = _require_side(actor)
    try:
        target = parse_status(target_raw)
    except WorkflowError as exc:
        raise ChannelError("status", str(exc).removeprefix("status: ")) from None
    current = Status(deal.status)
    view = conflicts(session, [deal], now)[deal.id]
    if _needs_questionnaire(deal, target):
        raise ChannelError("roi_inputs", "fill the ROI questionnaire to request an ROI")
    try:
        _check_move(deal, target, side, view.protected_by)
    except WorkflowError as exc:
        raise ChannelError("status", str(exc).removeprefix("status: "), 409) from None
    deal.status = target.value
    setattr(deal, _STAMP[target], now)
    deal.updated_at = now
    _mark_response(deal, actor, now)
    _event(session, deal, actor, target.value, now, f"{current.value} -> {target.value}")


def request_roi(
    session: Session, actor: Actor, deal: models.Deal, document: object, now: datetime
) -> None:
    """Store the rep's ROI questionnaire (validated) and move an approved deal to ROI requested."""
    _require_side(actor)
    if Status(deal.status) not in {Status.APPROVED, Status.ROI_REQUESTED}:
        raise ChannelError(
            "status", f"an ROI can be requested on an approved deal, not a {deal.status} one", 409
        )
    if isinstance(document, Mapping) and "segment" not in document:
        document = {**document, "segment": deal.segment}
    try:
        parsed = roi.parse_inputs(document)
    except roi.RoiInputError as exc:
        raise ChannelError(f"roi_inputs.{exc.field}", exc.problem) from None
    if parsed.segment != deal.segment:
        raise ChannelError("roi_inputs.segment", f"must be the deal's segment {deal.segment}")
    if parsed.to_dict() == deal.roi_inputs and deal.roi_delivered_at is not None:
        # The same answers again (a form saved twice): the delivered model still holds.
        return
    deal.roi_inputs = parsed.to_dict()
    deal.roi_requested_by = actor.user_id
    deal.roi_result = None
    deal.roi_delivered_at = None
    deal.updated_at = now
    _event(session, deal, actor, "roi_questionnaire", now, "customer questionnaire filled")
    if Status(deal.status) == Status.APPROVED:
        transition(session, actor, deal, Status.ROI_REQUESTED.value, now)


def deliver_roi(
    session: Session,
    actor: Actor,
    deal: models.Deal,
    now: datetime,
    document: object | None = None,
) -> dict[str, Any]:
    """Evaluate the deal's ROI model (vendor engineer), store the result and timestamp it."""
    if actor.side != "vendor":
        raise ChannelError("evaluate_roi", "only the vendor's engineer builds the ROI model", 403)
    if Status(deal.status) != Status.ROI_REQUESTED:
        raise ChannelError("status", "the deal has no open ROI request", 409)
    source = document if document is not None else deal.roi_inputs
    if source is None:
        raise ChannelError("roi_inputs", "the rep has not filled the questionnaire")
    try:
        parsed = roi.parse_inputs(source)
    except roi.RoiInputError as exc:
        raise ChannelError(f"roi_inputs.{exc.field}", exc.problem) from None
    if parsed.segment != deal.segment:
        raise ChannelError("roi_inputs.segment", f"must be the deal's segment {deal.segment}")
    result = roi.run(parsed).to_dict()
    deal.roi_inputs = parsed.to_dict()
    deal.roi_result = result
    deal.roi_delivered_at = now
    deal.roi_evaluated_by = actor.user_id
    deal.updated_at = now
    _mark_response(deal, actor, now)
    _event(
        session,
        deal,
        actor,
        "roi_delivered",
        now,
        f"NPV {result['npv']:,.0f} USD over {result['horizon_years']} years",
    )
    return result


def patch_deal(
    session: Session, actor: Actor, deal: models.Deal, body: Mapping[str, object], now: datetime
) -> None:
    """Apply a PATCH: note, size, ROI questionnaire, ROI evaluation and/or a status change."""
    _require_side(actor)
    _unknown(body, PATCH_FIELDS)
    if "partner" in body and body["partner"] != deal.distributor_id:
        raise ChannelError("partner", "a deal cannot move to another partner", 403)
    if "note" in body:
        deal.note = _text(body, "note", required=False, limit=MAX_NOTE) or ""
        _event(session, deal, actor, "note", now, deal.note[:200])
    for field in ("endpoints", "term_months"):
        if field in body:
            if Status(deal.status) in {Status.WON, Status.LOST, Status.REJECTED}:
                raise ChannelError(field, "a closed deal cannot change size", 409)
            high = MAX_ENDPOINTS if field == "endpoints" else MAX_TERM_MONTHS
            setattr(deal, field, _int(body, field, 0, 0 if field == "endpoints" else 1, high))
            _event(session, deal, actor, field, now, str(getattr(deal, field)))
    if "roi_inputs" in body:
        request_roi(session, actor, deal, body["roi_inputs"], now)
    if body.get("evaluate_roi") is True:
        deliver_roi(session, actor, deal, now)
    elif "evaluate_roi" in body and body["evaluate_roi"] is not False:
        raise ChannelError("evaluate_roi", "must be true or false")
    if "status" in body and body["status"] != deal.status:
        transition(session, actor, deal, body["status"], now)
    deal.updated_at = now


def allowed_moves(actor: Actor, deal: models.Deal, protected_by: int | None) -> list[Status]:
    """Return the states the actor may move a deal to now (for buttons and the API's `next`).

    `protected_by` is the protected registration holding the deal's utility, if any.
    """
    side = actor.side
    if side is None:
        return []
    # Only moves that would be taken: the lifecycle's, less those a precondition refuses
    # (an ROI not delivered yet, a utility held by another registration, no questionnaire).
    moves = []
    for target in next_states(Status(deal.status), side):
        if _needs_questionnaire(deal, target):
            continue
        try:
            _check_move(deal, target, side, protected_by)
        except WorkflowError:
            continue
        moves.append(target)
    return moves


def _needs_questionnaire(deal: models.Deal, target: Status) -> bool:
    """Say whether moving to `target` waits for the rep's ROI questionnaire."""
    return target == Status.ROI_REQUESTED and deal.roi_inputs is None


def _check_move(deal: models.Deal, target: Status, side: Side, protected_by: int | None) -> None:
    """Apply the lifecycle's rules to moving this deal to `target` (WorkflowError if refused)."""
    check_transition(
        Status(deal.status),
        target,
        side,
        roi_delivered=deal.roi_delivered_at is not None,
        blocked_by=protected_by,
    )


# --- KPIs -------------------------------------------------------------------------------


def deal_facts(session: Session, scope: Scope) -> list[kpis.DealFacts]:
    """Return KPI facts for every visible deal, priced at its partner's tier."""
    out = []
    tiers = partner_tiers(session)
    deals = list_deals(session, scope)
    # Each delivery is a report the customer got, even if a new questionnaire has since
    # cleared the deal's current result.
    deliveries: dict[int, int] = dict(
        session.execute(
            select(models.DealEvent.deal_id, func.count())
            .where(
                models.DealEvent.action == "roi_delivered",
                models.DealEvent.deal_id.in_([d.id for d in deals]),
            )
            .group_by(models.DealEvent.deal_id)
        ).all()
    )
    for d in deals:
        q = quote(session, d, tiers)
        out.append(
            kpis.DealFacts(
                id=d.id,
                distributor_id=d.distributor_id,
                segment=d.segment,
                status=Status(d.status),
                created_at=d.created_at,
                endpoints=d.endpoints,
                customer_total=q.customer_total,
                vendor_net=q.vendor_net,
                distributor_margin=q.distributor_margin,
                # "Lead to first response" times the vendor's answer to a partner's
                # registration; a deal the vendor registered itself has none to time.
                first_response_at=d.first_response_at if d.rep_id is not None else None,
                closed_at=d.closed_at,
                roi_deliveries=deliveries.get(d.id, 0),
            )
        )
    return out


# --- RFx --------------------------------------------------------------------------------


def visible_rfx(session: Session, scope: Scope) -> list[models.RfxDocument]:
    """List the RFI/RFQ documents a scope may see."""
    return list(
        session.scalars(
            select(models.RfxDocument)
            .where(_tenant_clause(models.RfxDocument.distributor_id, scope))
            .order_by(models.RfxDocument.created_at.desc(), models.RfxDocument.id.desc())
        )
    )


def get_rfx(session: Session, scope: Scope, rfx_id: int) -> models.RfxDocument | None:
    """Return an RFx document if the scope may see it."""
    return session.scalars(
        select(models.RfxDocument).where(
            models.RfxDocument.id == rfx_id,
            _tenant_clause(models.RfxDocument.distributor_id, scope),
        )
    ).first()


def requirements(session: Session, rfx_id: int) -> list[models.RfxRequirement]:
    """Return an RFx document's requirements in order."""
    return list(
        session.scalars(
            select(models.RfxRequirement)
            .where(models.RfxRequirement.rfx_id == rfx_id)
            .order_by(models.RfxRequirement.position)
        )
    )


def create_rfx(
    session: Session,
    actor: Actor,
    *,
    title: str,
    text: str,
    partner: str | None,
    deal_id: int | None,
    now: datetime,
) -> models.RfxDocument:
    """Share a customer's requirements (pasted or uploaded text) as a new RFx document."""
    side = _require_side(actor)
    title = title.strip()
    if not title:
        raise ChannelError("title", "is required")
    if len(title) > 200:
        raise ChannelError("title", "must be at most 200 characters")
    if side == "distributor":
        if partner and partner != actor.distributor_id:
            raise ChannelError("partner", "you can only share requirements for your company", 403)
        partner = actor.distributor_id
    if not partner or session.get(models.Distributor, partner) is None:
        raise ChannelError("partner", "unknown partner")
    if deal_id is not None:
        deal = get_deal(session, actor.scope, deal_id)
        if deal is None or deal.distributor_id != partner:
            raise ChannelError("deal", "no such deal for this partner", 404)
    try:
        items = rfx.parse_requirements(text)
    except rfx.RfxError as exc:
        raise ChannelError(exc.field, exc.problem) from None
    doc = models.RfxDocument(
        distributor_id=partner,
        deal_id=deal_id,
        title=title,
        created_at=now,
        created_by=actor.user_id,
    )
    session.add(doc)
    session.flush()
    session.add_all(
        models.RfxRequirement(rfx_id=doc.id, position=i + 1, text=item)
        for i, item in enumerate(items)
    )
    return doc


def library(session: Session) -> list[rfx.Answer]:
    """Return the vendor's answer library."""
    return [
        rfx.Answer(a.id, a.question, a.answer, a.compliance)
        for a in session.scalars(select(models.LibraryAnswer).order_by(models.LibraryAnswer.id))
    ]


def answer_requirement(
    session: Session,
    actor: Actor,
    requirement: models.RfxRequirement,
    *,
    answer: str,
    compliance: str,
    save_to_library: bool,
    now: datetime,
) -> None:
    """Record the vendor's answer to a requirement, optionally adding it to the library."""
    if actor.side != "vendor":
        raise ChannelError("answer", "the vendor answers requirements", 403)
    text = answer.strip()
    if not text:
        raise ChannelError("answer", "is required")
    if len(text) > MAX_NOTE:
        raise ChannelError("answer", f"must be at most {MAX_NOTE} characters")
    try:
        level = rfx.parse_compliance(compliance)
    except rfx.RfxError as exc:
        raise ChannelError(exc.field, exc.problem) from None
    requirement.answer = text
    requirement.compliance = level
    requirement.answered_at = now
    requirement.answered_by = actor.user_id
    if save_to_library:
        session.add(
            models.LibraryAnswer(
                question=requirement.text, answer=text, compliance=level, updated_at=now
            )
        )


def matrix_rows(reqs: Iterable[models.RfxRequirement]) -> list[rfx.MatrixRow]:
    """Turn stored requirements into compliance matrix rows."""
    return [rfx.MatrixRow(r.position, r.text, r.answer, r.compliance) for r in reqs]


def counts_by_status(session: Session, scope: Scope) -> dict[str, int]:
    """Count visible deals per status (for the workspace header)."""
    rows = session.execute(
        select(models.Deal.status, func.count())
        .where(_tenant_clause(models.Deal.distributor_id, scope))
        .group_by(models.Deal.status)
    )
    return {str(status): int(n) for status, n in rows}
