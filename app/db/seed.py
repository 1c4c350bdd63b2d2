"""Load the simulated fleet and the demo logins into the database (idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import models
from app.db.logins import close_all
from app.domain.access import Role
from simulator import fleet


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A demo account printed by `make demo`."""

    email: str
    name: str
    role: Role
    distributor_id: str | None = None
    utility_id: str | None = None


DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("admin@wattline.example", "Avery Admin", Role.VENDOR_ADMIN),
    DemoLogin("se@wattline.example", "Sam Sales-Engineer", Role.VENDOR_SE),
    DemoLogin(
        "manager@northgrid.example", "Morgan NorthGrid", Role.DISTRIBUTOR_MANAGER, "northgrid"
    ),
    DemoLogin("rep@northgrid.example", "Riley NorthGrid", Role.DISTRIBUTOR_REP, "northgrid"),
    DemoLogin("rep@prairiemeter.example", "Parker Prairie", Role.DISTRIBUTOR_REP, "prairiemeter"),
    DemoLogin("ops@millbrook.example", "Mo Millbrook", Role.UTILITY_VIEWER, utility_id="millbrook"),
    DemoLogin(
        "facilities@fedcenter.example",
        "Fran Facilities",
        Role.BUILDING_MANAGER,
        utility_id="fedcenter",
    ),
)
# They log in only while WATTLINE_DEMO is on (app.web.auth): their password is published.
DEMO_EMAILS: frozenset[str] = frozenset(d.email for d in DEMO_LOGINS)


def seed_fleet(session: Session, meters: Sequence[fleet.Meter]) -> int:
    """Insert distributors, utilities and any missing meters; return how many meters were added."""
    for d in fleet.DISTRIBUTORS:
        session.merge(models.Distributor(id=d.id, name=d.name, territory=d.territory))
    for u in fleet.UTILITIES:
        session.merge(
            models.Utility(
                id=u.id,
                name=u.name,
                segment=u.segment,
                distributor_id=u.distributor_id,
                region=u.region,
                c_and_i_customers=u.c_and_i_customers,
                modem_lines=u.modem_lines,
            )
        )
    session.flush()
    existing = set(session.scalars(select(models.Meter.id)))
    added = [
        models.Meter(
            id=m.id,
            utility_id=m.utility_id,
            site_name=m.site_name,
            building_type=m.building_type,
            network=m.network,
            peak_kw=m.peak_kw,
            phase_volts=m.phase_volts,
            lat=m.lat,
            lon=m.lon,
        )
        for m in meters
        if m.id not in existing
    ]
    session.add_all(added)
    return len(added)


def seed_users(session: Session, password: str, logins: Sequence[DemoLogin] = DEMO_LOGINS) -> None:
    """Create (or reset the password of) the demo logins."""
    by_email = {u.email: u for u in session.scalars(select(models.User))}
    # One scrypt hash for all: they share the published demo password anyway, and it
    # keeps seeding fast (each hash costs ~0.1 s by design).
    password_hash = generate_password_hash(password)
    still_valid: dict[str, bool] = {}
    for login in logins:
        user = by_email.get(login.email) or models.User(email=login.email)
        user.name = login.name
        user.role = login.role.value
        user.distributor_id = login.distributor_id
        user.utility_id = login.utility_id
        user.active = True
        old = user.password_hash
        if old and user.id is not None:
            if old not in still_valid:
                still_valid[old] = check_password_hash(old, password)
            if still_valid[old]:
                continue  # the same password: its sessions (`make demo` restarted) stay
            # A new demo password ends the sessions and tokens the old one opened.
            close_all(session, user.id)
        user.password_hash = password_hash
        session.add(user)


# --- Channel workspace (partners issue) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SeedDeal:
    partner: str
    rep: str
    prospect: str
    status: str
    age_days: int
    endpoints: int
    # Days after registration of each step reached: response, approve, roi, roi done, proposal, close.
    steps: tuple[int | None, ...] = ()


# Twelve partners and candidates; the two signed ones are the demo tenants.
PARTNER_PROFILES: tuple[dict[str, object], ...] = (
    {
        "id": "northgrid",
        "name": "NorthGrid Supply",
        "partner_type": "distributor",
        "tier": "gold",
        "status": "signed",
        "distributor_id": "northgrid",
        "territory": [
            "US-MI", "US-OH", "US-IN", "US-IL", "US-WI", "US-PA", "US-NY", "US-NJ",
            "US-NH", "US-VT", "US-MA", "US-CT", "US-DC", "US-MD", "US-VA", "CA-ON",
        ],
        "segments": ["iou", "service_bureau", "security"],
        "utility_customers": 1450, "sales_reps": 38, "avg_rep_tenure_years": 7.5,
        "compensation_plan": "Base + 6 % commission on first-year revenue, quota on endpoints",
        "compensation_alignment": 4.0, "network_fit": 4.0, "mdm_fit": 5.0, "vendor_neutrality": 4.0,
    },
    {
        "id": "prairiemeter",
        "name": "Prairie Meter & Supply",
        "partner_type": "distributor",
        "tier": "silver",
        "status": "signed",
        "distributor_id": "prairiemeter",
        "territory": [
            "US-NE", "US-KS", "US-OK", "US-CO", "US-WY", "US-MT", "US-OR", "US-WA",
            "US-ID", "US-TX", "US-SD", "US-ND", "CA",
        ],
        "segments": ["iou", "service_bureau", "security"],
        "utility_customers": 820, "sales_reps": 21, "avg_rep_tenure_years": 9.0,
        "compensation_plan": "Commission on margin, paid on install",
        "compensation_alignment": 3.5, "network_fit": 5.0, "mdm_fit": 3.0, "vendor_neutrality": 4.0,
    },
    {
        "id": "meridian", "name": "Meridian Metering Co.", "partner_type": "meter_manufacturer",
        "tier": "silver", "territory": ["US"], "segments": ["iou"],
        "utility_customers": 2100, "sales_reps": 55, "avg_rep_tenure_years": 6.0,
        "compensation_plan": "Commission on meter hardware only",
        "compensation_alignment": 2.0, "network_fit": 3.0, "mdm_fit": 2.0, "vendor_neutrality": 1.0,
    },
    {
        "id": "clearwave", "name": "ClearWave Telecom", "partner_type": "telecom",
        "tier": "bronze", "territory": ["US", "CA"], "segments": ["iou", "security"],
        "utility_customers": 300, "sales_reps": 120, "avg_rep_tenure_years": 2.5,
        "compensation_plan": "Per-SIM activation bonus",
        "compensation_alignment": 3.0, "network_fit": 5.0, "mdm_fit": 1.0, "vendor_neutrality": 5.0,
    },
    {
        "id": "gridsoft", "name": "GridSoft Analytics", "partner_type": "software",
        "tier": "bronze", "territory": ["US"], "segments": ["iou", "service_bureau"],
        "utility_customers": 640, "sales_reps": 14, "avg_rep_tenure_years": 4.0,
        "compensation_plan": "Annual subscription quota",
        "compensation_alignment": 4.0, "network_fit": 2.0, "mdm_fit": 5.0, "vendor_neutrality": 5.0,
    },
    {
        "id": "atlas", "name": "Atlas Utility Supply", "partner_type": "distributor",
        "tier": "silver", "territory": ["US-GA", "US-FL", "US-AL", "US-SC", "US-NC", "US-TN"],
        "segments": ["iou", "service_bureau", "security"],
        "utility_customers": 1100, "sales_reps": 30, "avg_rep_tenure_years": 8.0,
        "compensation_plan": "Base + commission on gross margin",
        "compensation_alignment": 4.0, "network_fit": 3.0, "mdm_fit": 3.0, "vendor_neutrality": 3.0,
    },
    {
        "id": "northernlights", "name": "Northern Lights Distribution", "partner_type": "distributor",
        "tier": "bronze", "territory": ["CA-ON", "CA-QC", "CA-MB"],
        "segments": ["iou", "service_bureau"],
        "utility_customers": 260, "sales_reps": 9, "avg_rep_tenure_years": 11.0,
        "compensation_plan": "Salary, team bonus",
        "compensation_alignment": 3.0, "network_fit": 4.0, "mdm_fit": 3.0, "vendor_neutrality": 4.0,
    },
    {
        "id": "lonestar", "name": "Lone Star Utility Sales", "partner_type": "distributor",
        "tier": "bronze", "territory": ["US-TX", "US-OK", "US-LA", "US-NM"],
        "segments": ["iou", "service_bureau"],
        "utility_customers": 480, "sales_reps": 16, "avg_rep_tenure_years": 5.0,
        "compensation_plan": "Commission on list price",
        "compensation_alignment": 3.0, "network_fit": 4.0, "mdm_fit": 2.0, "vendor_neutrality": 4.0,
    },
    {
        "id": "pacificmeter", "name": "Pacific Meter Services", "partner_type": "distributor",
        "tier": "bronze", "territory": ["US-CA", "US-OR", "US-WA", "US-NV", "US-AZ"],
        "segments": ["iou", "security"],
        "utility_customers": 540, "sales_reps": 19, "avg_rep_tenure_years": 3.5,
        "compensation_plan": "Commission on bookings",
        "compensation_alignment": 2.5, "network_fit": 3.0, "mdm_fit": 3.0, "vendor_neutrality": 3.0,
    },
    {
        "id": "keystone", "name": "Keystone Electric Supply", "partner_type": "distributor",
        "tier": "bronze", "territory": ["US-PA", "US-NJ", "US-DE", "US-MD"],
        "segments": ["service_bureau", "security"],
        "utility_customers": 350, "sales_reps": 12, "avg_rep_tenure_years": 12.0,
        "compensation_plan": "Salary + profit share",
        "compensation_alignment": 4.5, "network_fit": 2.0, "mdm_fit": 3.0, "vendor_neutrality": 4.0,
    },
    {
        "id": "bajio", "name": "Bajío Energía Distribución", "partner_type": "distributor",
        "tier": "bronze", "territory": ["MX"], "segments": ["iou", "service_bureau"],
        "utility_customers": 190, "sales_reps": 11, "avg_rep_tenure_years": 6.5,
        "compensation_plan": "Commission on collected revenue",
        "compensation_alignment": 3.5, "network_fit": 4.0, "mdm_fit": 2.0, "vendor_neutrality": 5.0,
    },
    {
        "id": "summit", "name": "Summit Telemetry Partners", "partner_type": "telecom",
        "tier": "bronze", "territory": ["US-CO", "US-UT", "US-WY", "US-MT", "US-ID"],
        "segments": ["service_bureau", "security"],
        "utility_customers": 150, "sales_reps": 7, "avg_rep_tenure_years": 4.5,
        "compensation_plan": "Revenue share on subscriptions",
        "compensation_alignment": 5.0, "network_fit": 5.0, "mdm_fit": 2.0, "vendor_neutrality": 3.0,
    },
)  # fmt: skip

# (id, name, segment, region, C&I customers, modem lines, buildings, meter readers)
PROSPECTS: tuple[tuple[str, str, str, str, int, int, int, int], ...] = (
    ("ohio-valley", "Ohio Valley Electric", "iou", "US-OH", 22_400, 7_400, 0, 0),
    ("empire-state", "Empire State Power", "iou", "US-NY", 31_000, 9_800, 0, 0),
    ("ontario-east", "Ontario Hydro-Electric East", "iou", "CA-ON", 12_800, 3_100, 0, 0),
    ("lonestar-ed", "Lone Star Electric Delivery", "iou", "US-TX", 27_500, 5_200, 0, 0),
    ("inland-power", "Inland Empire Power", "iou", "US-WA", 9_300, 1_900, 0, 0),
    ("elm-falls", "Village of Elm Falls Light & Water", "service_bureau", "US-WI", 420, 55, 0, 0),
    ("green-mountain", "Green Mountain Electric Co-op", "service_bureau", "US-VT", 610, 90, 0, 0),
    ("kearney", "Kearney Public Power", "service_bureau", "US-NE", 780, 120, 0, 0),
    ("sandhills", "Sandhills Electric Co-op", "service_bureau", "US-KS", 350, 40, 0, 0),
    ("harrisburg", "City of Harrisburg Facilities", "security", "US-PA", 0, 18, 26, 3),
    ("fort-meade", "Fort Meade Support Buildings", "security", "US-MD", 0, 40, 64, 6),
    ("va-denver", "VA Medical Campus Denver", "security", "US-CO", 0, 22, 31, 4),
    ("railbelt", "Railbelt Electric Co-op", "service_bureau", "US-AK", 900, 150, 0, 0),
)

# Steps: days after registration of (first response, approved, ROI requested, ROI
# delivered, proposal, closed); the cycle lengths sit around the 6-9 month norm.
SEED_DEALS: tuple[_SeedDeal, ...] = (
    _SeedDeal("northgrid", "rep@northgrid.example", "ohio-valley", "won", 330, 900,
              (1, 3, 20, 31, 70, 245)),
    _SeedDeal("northgrid", "manager@northgrid.example", "green-mountain", "proposal", 120, 180,
              (2, 4, 15, 24, 50)),
    _SeedDeal("northgrid", "rep@northgrid.example", "harrisburg", "roi_requested", 25, 40,
              (1, 2, 9)),
    _SeedDeal("northgrid", "rep@northgrid.example", "empire-state", "submitted", 3, 1500, (1,)),
    _SeedDeal("northgrid", "rep@northgrid.example", "ontario-east", "submitted", 6, 700, (2,)),
    _SeedDeal("prairiemeter", "rep@prairiemeter.example", "kearney", "won", 400, 220,
              (3, 6, 25, 40, 90, 310)),
    _SeedDeal("prairiemeter", "rep@prairiemeter.example", "lonestar-ed", "approved", 40, 1200,
              (2, 5)),
    _SeedDeal("prairiemeter", "rep@prairiemeter.example", "va-denver", "lost", 260, 60,
              (4, 7, 30, 45, 80, 200)),
    _SeedDeal("prairiemeter", "rep@prairiemeter.example", "ontario-east", "submitted", 2, 650,
              (1,)),
)  # fmt: skip

LIBRARY: tuple[tuple[str, str, str], ...] = (
    (
        "Does the endpoint deliver 15-minute interval data?",
        "Yes. Every endpoint reports 15-minute intervals (96 per day per channel): kWh, "
        "kVARh, demand kW, voltage per phase and power factor.",
        "compliant",
    ),
    (
        "Is meter data encrypted in transit?",
        "Yes. Endpoints connect over TLS 1.2 or later on MQTT; the private narrowband option "
        "uses AES-128 link encryption plus TLS at the head end.",
        "compliant",
    ),
    (
        "Are intervals buffered when communication is lost?",
        "Yes. Store-and-forward keeps at least 60 days of intervals on the endpoint and uploads "
        "them on reconnect; nothing is lost.",
        "compliant",
    ),
    (
        "Does the solution support remote connect and disconnect?",
        "Supported on meters with an integrated service switch; the result is returned "
        "asynchronously. Meters without a switch are not supported.",
        "partial",
    ),
    (
        "Can the system export Green Button (ESPI) data?",
        "Yes: Green Button Atom XML per usage point, and plain CSV with UTC and local time.",
        "compliant",
    ),
    (
        "Is an on-premises head end available?",
        "No. The head end is hosted by the vendor or by the distributor's service bureau.",
        "no",
    ),
    (
        "What happens when the cellular network is sunset?",
        "Endpoints use LTE-M with NB-IoT fallback; the price book includes a replacement plan "
        "and the ROI model shows the sunset risk explicitly.",
        "compliant",
    ),
)


def seed_partners(session: Session, now: datetime) -> int:
    """Insert the partner registry, prospects, answer library and demo deals; return deals added.

    Deals are seeded only into an empty deals table so a re-run never duplicates them;
    their dates are relative to `now` so the demo pipeline always looks current.
    """
    from partners import prospects as prospect_rules
    from partners.deals import utility_key

    for profile in PARTNER_PROFILES:
        session.merge(models.PartnerProfile(**profile))
    session.flush()
    coverage = [
        prospect_rules.PartnerCoverage(
            p.distributor_id, p.name, p.tier, frozenset(p.territory), frozenset(p.segments)
        )
        for p in session.scalars(select(models.PartnerProfile))
        if p.distributor_id is not None
    ]
    for pid, name, segment, region, cni, lines, buildings, readers in PROSPECTS:
        route = prospect_rules.route_lead(segment, region, coverage)
        session.merge(
            models.Prospect(
                id=pid,
                name=name,
                segment=segment,
                region=region,
                c_and_i_customers=cni,
                modem_lines=lines,
                buildings=buildings,
                meter_readers=readers,
                distributor_id=route.distributor_id,
                routing_reason=route.reason,
                created_at=now - timedelta(days=420),
            )
        )
    if session.scalar(select(models.LibraryAnswer.id).limit(1)) is None:
        session.add_all(
            models.LibraryAnswer(question=q, answer=a, compliance=c, updated_at=now)
            for q, a, c in LIBRARY
        )
    session.flush()
    if session.scalar(select(models.Deal.id).limit(1)) is not None:
        return 0
    users = {u.email: u.id for u in session.scalars(select(models.User))}
    vendor_se = users.get("se@wattline.example")
    prospects_by_id = {p[0]: p for p in PROSPECTS}
    for spec in SEED_DEALS:
        pid, name, segment, region, _cni, lines, buildings, _readers = prospects_by_id[
            spec.prospect
        ]
        created = now - timedelta(days=spec.age_days, hours=3)
        stamps = [created + timedelta(days=d) if d is not None else None for d in spec.steps]
        stamps += [None] * (6 - len(stamps))
        response, approved, roi_req, roi_done, proposal, closed = stamps
        deal = models.Deal(
            distributor_id=spec.partner,
            rep_id=users.get(spec.rep),
            prospect_id=pid,
            utility_name=name,
            utility_key=utility_key(name),
            segment=segment,
            region=region,
            endpoints=spec.endpoints,
            term_months=36,
            status=spec.status,
            created_at=created,
            updated_at=max(s for s in stamps if s is not None),
            first_response_at=response,
            approved_at=approved,
            roi_requested_at=roi_req,
            roi_delivered_at=roi_done,
            proposal_at=proposal,
            closed_at=closed if spec.status in {"won", "lost"} else None,
        )
        if roi_req is not None:
            document = _seed_roi_document(segment, spec.endpoints, lines, buildings)
            deal.roi_inputs = document
            deal.roi_requested_by = users.get(spec.rep)
            if roi_done is not None:
                import roi

                deal.roi_result = roi.evaluate_document(document)
                deal.roi_evaluated_by = vendor_se
        session.add(deal)
        session.flush()
        labels = [
            ("registered", created),
            ("first_response", response),
            ("approved", approved),
            ("roi_requested", roi_req),
            ("roi_delivered", roi_done),
            ("proposal", proposal),
            (spec.status if spec.status in {"won", "lost"} else "closed", closed),
        ]
        session.add_all(
            models.DealEvent(deal_id=deal.id, at=at, action=action, detail="seeded demo history")
            for action, at in labels
            if at is not None
        )
    return len(SEED_DEALS)


def _seed_roi_document(
    segment: str, endpoints: int, lines: int, buildings: int
) -> dict[str, object]:
    inputs: dict[str, object]
    if segment == "iou":
        inputs = {"endpoints": endpoints, "modem_lines": min(lines, endpoints)}
    elif segment == "service_bureau":
        inputs = {"meters": endpoints, "modem_lines": min(lines, endpoints)}
    else:
        inputs = {"endpoints": endpoints, "site_visits_per_year": 12 * max(buildings, 1)}
    return {"segment": segment, "inputs": inputs}
