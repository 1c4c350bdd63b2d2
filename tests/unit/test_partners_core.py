"""Pure partner rules: evaluation, territory, deal workflow and conflicts, prices, routing, KPIs, RFx."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from partners import evaluation as ev
from partners import kpis, pricing, prospects, rfx
from partners.deals import (
    KEY_LENGTH,
    PROTECTION_WINDOW,
    Registration,
    Status,
    WorkflowError,
    check_transition,
    conflict_view,
    next_states,
    own_open_registration,
    parse_status,
    utility_key,
)
from partners.territory import TerritoryError, check_deal_territory, parse_place

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def make_candidate(cid: str, **overrides: object) -> ev.Candidate:
    """Build a middling candidate; keyword overrides change fields."""
    fields: dict[str, object] = {
        "id": cid,
        "name": cid.title(),
        "partner_type": "distributor",
        "tier": "silver",
        "utility_customers": 100,
        "sales_reps": 10,
        "avg_rep_tenure_years": 5.0,
        "compensation_alignment": 3.0,
        "network_fit": 3.0,
        "mdm_fit": 3.0,
        "vendor_neutrality": 3.0,
    }
    fields.update(overrides)
    return ev.Candidate(**fields)  # type: ignore[arg-type]


# --- evaluation -------------------------------------------------------------------------


def test_scores_normalise_counts_to_the_best_candidate_and_ratings_to_0_1() -> None:
    big = make_candidate("big", utility_customers=400, mdm_fit=5.0)
    small = make_candidate("small", utility_customers=100, mdm_fit=1.0)
    ranked = ev.rank([small, big], ev.DEFAULT_WEIGHTS)
    assert [s.candidate.id for s in ranked] == ["big", "small"]
    assert ranked[0].criteria["utility_customers"] == 1.0
    assert ranked[1].criteria["utility_customers"] == 0.25
    assert ranked[0].criteria["mdm_fit"] == 1.0
    assert ranked[1].criteria["mdm_fit"] == 0.0
    # Weighted mean by hand with only utility_customers weighted: 100 and 25.
    only = dict.fromkeys(ev.CRITERION_KEYS, 0.0) | {"utility_customers": 2.0}
    by_hand = ev.rank([small, big], only)
    assert [round(s.total, 6) for s in by_hand] == [100.0, 25.0]
    assert by_hand[0].distribution == pytest.approx(100.0)
    assert by_hand[0].synergy == 0.0


def test_weights_change_the_ranking() -> None:
    reach = make_candidate("reach", utility_customers=900, sales_reps=60, network_fit=1.0)
    fit = make_candidate("fit", utility_customers=200, network_fit=5.0, mdm_fit=5.0)
    distribution_heavy = ev.validate_weights(
        {"network_fit": 0, "mdm_fit": 0, "vendor_neutrality": 0}
    )
    synergy_heavy = ev.validate_weights(
        {"utility_customers": 0, "sales_reps": 0, "avg_rep_tenure_years": 0}
    )
    assert ev.rank([reach, fit], distribution_heavy)[0].candidate.id == "reach"
    assert ev.rank([reach, fit], synergy_heavy)[0].candidate.id == "fit"


def test_ties_break_by_name_whatever_the_input_order() -> None:
    a, b = make_candidate("b-co", name="Alpha"), make_candidate("a-co", name="Beta")
    assert [s.candidate.name for s in ev.rank([b, a], ev.DEFAULT_WEIGHTS)] == ["Alpha", "Beta"]
    assert [s.rank for s in ev.rank([a, b], ev.DEFAULT_WEIGHTS)] == [1, 2]


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        ({"nope": 1}, "weights.nope"),
        ({"mdm_fit": -1}, "weights.mdm_fit"),
        ({"mdm_fit": "x"}, "weights.mdm_fit"),
        ({"mdm_fit": True}, "weights.mdm_fit"),
        ({"mdm_fit": float("nan")}, "weights.mdm_fit"),
        (dict.fromkeys(ev.CRITERION_KEYS, 0), "weights"),
    ],
)
def test_bad_weights_name_the_field(weights: dict[str, object], field: str) -> None:
    with pytest.raises(ev.EvaluationError) as info:
        ev.validate_weights(weights)
    assert info.value.field == field


def test_sensitivity_finds_the_weight_that_flips_the_leader() -> None:
    # Close race: reach leads on distribution, fit on network fit only.
    reach = make_candidate("reach", utility_customers=300, network_fit=2.0)
    fit = make_candidate("fit", utility_customers=240, network_fit=4.0)
    weights = ev.validate_weights({})
    base = ev.rank([reach, fit], weights)
    result = {s.criterion: s for s in ev.sensitivity([reach, fit], weights, factor=0.9)}
    flips = [k for k, s in result.items() if s.leader_changes]
    assert flips, "a close race must be sensitive to some weight"
    for key in flips:
        changed = dict(weights)
        changed[key] = result[key].low_weight
        low_leader = ev.rank([reach, fit], changed)[0].candidate.id
        changed[key] = result[key].high_weight
        high_leader = ev.rank([reach, fit], changed)[0].candidate.id
        assert {low_leader, high_leader} == {"reach", "fit"}
        assert base[0].candidate.id in {low_leader, high_leader}
    # Tenure is equal for both, so its weight cannot move anyone.
    assert result["avg_rep_tenure_years"].max_shift == 0


# --- territory --------------------------------------------------------------------------


def test_territory_north_america_first_and_partner_territory() -> None:
    territory = frozenset({"US-MI", "US-OH", "CA"})
    assert check_deal_territory("NorthGrid", territory, "US-MI").allowed
    assert check_deal_territory("NorthGrid", territory, "CA-ON").allowed  # country covers
    outside = check_deal_territory("NorthGrid", territory, "US-WA")
    assert not outside.allowed
    assert "outside NorthGrid's territory" in outside.reason
    abroad = check_deal_territory("NorthGrid", frozenset({"GB"}), "GB-LND")
    assert not abroad.allowed
    assert "outside North America" in abroad.reason


@pytest.mark.parametrize("raw", ["", "Michigan", "US_MI", 42, None, "USA-MI-X"])
def test_bad_place_codes_are_refused(raw: object) -> None:
    with pytest.raises(TerritoryError) as info:
        parse_place(raw, "region")
    assert info.value.field == "region"


def test_place_codes_are_normalised() -> None:
    assert parse_place(" us-mi ") == "US-MI"


# --- workflow ---------------------------------------------------------------------------


def test_happy_path_through_the_lifecycle() -> None:
    check_transition(Status.SUBMITTED, Status.APPROVED, "vendor")
    check_transition(Status.APPROVED, Status.ROI_REQUESTED, "distributor")
    check_transition(Status.ROI_REQUESTED, Status.PROPOSAL, "distributor", roi_delivered=True)
    check_transition(Status.PROPOSAL, Status.WON, "distributor")
    check_transition(Status.PROPOSAL, Status.LOST, "vendor")


@pytest.mark.parametrize(
    ("current", "target", "side", "message"),
    [
        (Status.SUBMITTED, Status.APPROVED, "distributor", "only the vendor"),
        (Status.SUBMITTED, Status.WON, "vendor", "cannot move"),
        (Status.WON, Status.LOST, "vendor", r"none \(closed\)"),
        (Status.LOST, Status.PROPOSAL, "distributor", "cannot move"),
        (Status.ROI_REQUESTED, Status.PROPOSAL, "distributor", "not delivered"),
        (Status.APPROVED, Status.APPROVED, "vendor", "already"),
    ],
)
def test_illegal_moves_are_refused_with_a_reason(
    current: Status, target: Status, side: str, message: str
) -> None:
    with pytest.raises(WorkflowError, match=message):
        check_transition(current, target, side)  # type: ignore[arg-type]


def test_next_states_depend_on_the_side() -> None:
    assert next_states(Status.SUBMITTED, "vendor") == [
        Status.APPROVED,
        Status.REJECTED,
        Status.LOST,
    ]
    # A partner may withdraw its pending registration (lost), releasing the utility.
    assert next_states(Status.SUBMITTED, "distributor") == [Status.LOST]
    assert Status.LOST in next_states(Status.APPROVED, "distributor")
    assert next_states(Status.WON, "vendor") == []


def test_parse_status_names_the_field() -> None:
    assert parse_status("won") is Status.WON
    with pytest.raises(WorkflowError, match=r"^status: must be one of"):
        parse_status("finished")
    with pytest.raises(WorkflowError, match=r"^status:"):
        parse_status(3)


# --- conflicts --------------------------------------------------------------------------


def reg(rid: int, **overrides: object) -> Registration:
    """Build a registration for 'great lakes power and light'; overrides change fields."""
    fields: dict[str, object] = {
        "id": rid,
        "utility_key": utility_key("Great Lakes Power & Light"),
        "distributor_id": "northgrid",
        "rep_id": 1,
        "status": Status.SUBMITTED,
        "registered_at": NOW - timedelta(days=10),
    }
    fields.update(overrides)
    return Registration(**fields)  # type: ignore[arg-type]


def test_utility_names_are_normalised_for_conflicts() -> None:
    assert utility_key("Great Lakes Power & Light, Inc.") == utility_key(
        "great lakes power and light"
    )
    assert utility_key("Cascade Energy") != utility_key("Cascade Power")
    assert utility_key("Riverton, City of") == utility_key("The City of Riverton")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Empire State Power", "Empire State Power Corporation"),
        ("Empire State Power", "Empire State Power, Incorporated"),
        ("Empire State Power", "\u0415mpire State Power"),  # Cyrillic IE for the E
        ("Empire State Power", "Empire\u200bState Power"),  # a zero-width space
        ("Empire State Power", "Em\u00adpire State Power"),  # a soft hyphen
        ("Toronto Hydro Corporation", "Toronto Hydro Corp."),
        ("Hydro Ltd", "Hydro Limited"),
        ("Prairie Electric Co-op", "Prairie Electric Cooperative"),
        ("Prairie Electric Co-op", "Prairie Electric Co-operative, Inc."),
        ("Prairie Electric Coop", "prairie electric co op"),
        ("Gro\u00dfstadt Werke", "GROSSSTADT WERKE"),
        ("\u00d8rsted", "Orsted"),
        ("\u0141\u00f3d\u017a Energia", "Lodz Energia"),
        ("Ayd\u0131n Elektrik", "AYDIN ELEKTRIK"),
    ],
)
def test_spelling_script_and_legal_form_variants_collide(one: str, other: str) -> None:
    assert utility_key(one) == utility_key(other)


def test_utility_keys_fit_their_column() -> None:
    """'&' and ligatures lengthen a 120-character name; the key stays within the column."""
    assert len(utility_key("Electric&Gas " * 10)) <= KEY_LENGTH
    assert len(utility_key("\ufb03" * 120)) == KEY_LENGTH  # each ligature is three letters


def test_first_registration_is_protected_and_second_is_flagged() -> None:
    first = reg(1)
    second = reg(2, distributor_id="prairiemeter", registered_at=NOW - timedelta(days=2))
    group = [first, second]
    v1, v2 = conflict_view(first, group, NOW), conflict_view(second, group, NOW)
    assert (v1.conflict, v1.protected, v1.protected_by) == (True, True, None)
    assert (v2.conflict, v2.protected, v2.protected_by) == (True, False, 1)
    assert v1.protected_until == first.registered_at + PROTECTION_WINDOW
    with pytest.raises(WorkflowError, match="deal #1 registered this utility first"):
        check_transition(Status.SUBMITTED, Status.APPROVED, "vendor", blocked_by=v2.protected_by)


def test_two_reps_of_one_partner_also_conflict() -> None:
    group = [reg(1, rep_id=1), reg(2, rep_id=2, registered_at=NOW - timedelta(days=1))]
    assert conflict_view(group[1], group, NOW).protected_by == 1


def test_protection_lapses_after_the_window() -> None:
    stale = reg(1, registered_at=NOW - PROTECTION_WINDOW - timedelta(days=1))
    fresh = reg(2, distributor_id="prairiemeter", registered_at=NOW - timedelta(days=1))
    view = conflict_view(fresh, [stale, fresh], NOW)
    assert view.conflict  # the stale one still exists
    assert view.protected
    assert view.protected_by is None


def test_rejected_or_lost_registrations_do_not_conflict_and_won_always_holds() -> None:
    fresh = reg(2, registered_at=NOW - timedelta(days=1))
    for status in (Status.REJECTED, Status.LOST):
        view = conflict_view(fresh, [reg(1, status=status), fresh], NOW)
        assert (view.conflict, view.protected) == (False, True)
    won = reg(1, status=Status.WON, registered_at=NOW - timedelta(days=900))
    view = conflict_view(fresh, [won, fresh], NOW)
    assert (view.conflict, view.protected_by, view.protected_until) == (True, 1, None)


def test_a_closed_registration_is_in_no_conflict_itself() -> None:
    """A lost or rejected deal beside an open one is history, not a conflict to decide."""
    open_one = reg(2, distributor_id="prairiemeter", registered_at=NOW - timedelta(days=1))
    for status in (Status.REJECTED, Status.LOST):
        closed = reg(1, status=status)
        assert not conflict_view(closed, [closed, open_one], NOW).conflict


def test_protection_ends_exactly_at_the_window() -> None:
    first = reg(1, registered_at=NOW - PROTECTION_WINDOW)
    second = reg(2, distributor_id="prairiemeter", registered_at=NOW - timedelta(days=1))
    assert conflict_view(second, [first, second], NOW).protected_by is None
    just_inside = reg(1, registered_at=NOW - PROTECTION_WINDOW + timedelta(seconds=1))
    assert conflict_view(second, [just_inside, second], NOW).protected_by == 1


def test_other_utilities_never_conflict() -> None:
    other = reg(3, utility_key=utility_key("Cascade Energy"))
    assert not conflict_view(reg(1), [reg(1), other], NOW).conflict


def test_one_name_in_two_regions_is_two_customers_unless_investor_owned() -> None:
    """Many towns share a name; an IOU serves several states under one."""
    illinois = reg(1, region="US-IL", segment="service_bureau")
    oregon = reg(2, distributor_id="prairiemeter", region="US-OR", segment="service_bureau")
    assert not conflict_view(oregon, [illinois, oregon], NOW).conflict
    iou_mn = reg(1, region="US-MN", segment="iou")
    iou_co = reg(2, distributor_id="prairiemeter", region="US-CO", segment="iou")
    assert conflict_view(iou_co, [iou_mn, iou_co], NOW).protected_by == 1


def test_a_partner_cannot_register_its_own_open_deal_again() -> None:
    """A second registration would restart its protection window; a closed one does not."""
    new = reg(9, registered_at=NOW)
    assert own_open_registration(new, [reg(1), new]) == reg(1)
    assert own_open_registration(new, [reg(1, rep_id=2)]) == reg(1, rep_id=2)
    assert own_open_registration(new, [reg(1, distributor_id="prairiemeter")]) is None
    for status in (Status.LOST, Status.REJECTED, Status.WON):
        assert own_open_registration(new, [reg(1, status=status)]) is None
    assert own_open_registration(new, [reg(1, region="US-OR")]) is None


# --- prices and margins -----------------------------------------------------------------

ON = date(2026, 11, 1)


def test_tier_price_margin_and_vendor_net_by_hand() -> None:
    book = pricing.DEFAULT_BOOK
    gold = pricing.tier_price(book, "gold", "EP-LTE", ON)
    assert gold.partner_price == round(1450.0 * 0.70, 2)
    assert gold.margin == pytest.approx(1450.0 * 0.30)
    quote = pricing.deal_quote(book, "gold", endpoints=100, term_months=36, on=ON)
    customer = 100 * 1450.0 + 100 * 36 * 9.0
    vendor = 100 * 1015.0 + 3600 * 6.3
    assert quote.customer_total == pytest.approx(customer)
    assert quote.vendor_net == pytest.approx(vendor)
    assert quote.distributor_margin == pytest.approx(customer - vendor)


def test_promotions_apply_to_the_whole_tier_and_only_while_active() -> None:
    book = pricing.DEFAULT_BOOK
    silver = pricing.tier_price(book, "silver", "EP-LTE", ON)
    assert silver.promotion is not None
    assert silver.discount == pytest.approx(0.24 + 0.05)
    later = pricing.tier_price(book, "silver", "EP-LTE", date(2027, 4, 1))
    assert later.promotion is None
    assert pricing.tier_price(book, "bronze", "EP-LTE", ON).promotion is None


def test_same_tier_same_prices_better_tier_better_prices() -> None:
    book = pricing.DEFAULT_BOOK
    sheets = {t: pricing.price_sheet(book, t, ON) for t in pricing.tiers(book)}
    assert list(sheets) == ["gold", "silver", "bronze"]
    # Pricing takes a tier, never a partner: two partners of a tier get the same sheet.
    assert pricing.price_sheet(book, "silver", ON) == sheets["silver"]
    for sku_index in range(len(book.items)):
        prices = [sheets[t][sku_index].partner_price for t in ("gold", "silver", "bronze")]
        assert prices == sorted(prices)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tier": "platinum"}, "tier"),
        ({"endpoints": -1}, "endpoints"),
        ({"term_months": 1.5}, "term_months"),
        ({"endpoint_sku": "NOPE"}, "sku"),
    ],
)
def test_bad_quotes_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"tier": "gold", "endpoints": 10, "term_months": 12, "on": ON}
    args.update(kwargs)
    tier = args.pop("tier")
    with pytest.raises(pricing.PricingError) as info:
        pricing.deal_quote(pricing.DEFAULT_BOOK, tier, **args)  # type: ignore[arg-type]
    assert info.value.field == field


# --- prospects and routing --------------------------------------------------------------


def test_demand_score_orders_prospects_within_a_segment() -> None:
    hot = prospects.Prospect("a", "A", "iou", "US-MI", c_and_i_customers=20_000, modem_lines=8000)
    cold = prospects.Prospect("b", "B", "iou", "US-MI", c_and_i_customers=2_000, modem_lines=50)
    assert 0 <= prospects.demand_score(cold) < prospects.demand_score(hot) <= 100
    bldg = prospects.Prospect("c", "C", "security", "US-DC", buildings=40, meter_readers=6)
    assert prospects.demand_score(bldg) > prospects.demand_score(replace(bldg, buildings=2))


def test_route_lead_by_segment_territory_tier_and_load() -> None:
    ng = prospects.PartnerCoverage(
        "northgrid", "NorthGrid", "gold", frozenset({"US-MI", "US-NY"}), frozenset({"iou"})
    )
    pm = prospects.PartnerCoverage(
        "prairiemeter", "Prairie", "silver", frozenset({"US"}), frozenset({"iou", "security"})
    )
    third = replace(pm, distributor_id="third", name="Third")
    assert prospects.route_lead("iou", "US-MI", [pm, ng]).distributor_id == "northgrid"
    assert prospects.route_lead("security", "US-MI", [pm, ng]).distributor_id == "prairiemeter"
    nobody = prospects.route_lead("service_bureau", "US-MI", [pm, ng])
    assert nobody.distributor_id is None
    assert "no partner covers" in nobody.reason
    busy = prospects.route_lead("iou", "US-TX", [pm, third], {"prairiemeter": 5, "third": 1})
    assert busy.distributor_id == "third"


# --- KPIs -------------------------------------------------------------------------------


def make_facts(did: int, status: Status, **overrides: object) -> kpis.DealFacts:
    """Build deal facts; keyword overrides change fields."""
    fields: dict[str, object] = {
        "id": did,
        "distributor_id": "northgrid",
        "segment": "iou",
        "status": status,
        "created_at": NOW - timedelta(days=300),
    }
    fields.update(overrides)
    return kpis.DealFacts(**fields)  # type: ignore[arg-type]


def test_kpis_by_hand() -> None:
    t0 = NOW - timedelta(days=400)
    deals = [
        make_facts(
            1,
            Status.WON,
            created_at=t0,
            closed_at=t0 + timedelta(days=7 * kpis.DAYS_PER_MONTH),
            endpoints=120,
            customer_total=1000.0,
            vendor_net=700.0,
            distributor_margin=300.0,
            first_response_at=t0 + timedelta(hours=4),
            roi_deliveries=1,
        ),
        make_facts(
            2,
            Status.WON,
            segment="security",
            created_at=t0,
            closed_at=t0 + timedelta(days=12 * kpis.DAYS_PER_MONTH),
            endpoints=30,
            vendor_net=100.0,
            distributor_margin=40.0,
            first_response_at=t0 + timedelta(hours=10),
        ),
        make_facts(3, Status.LOST, distributor_id="prairiemeter"),
        make_facts(4, Status.PROPOSAL, customer_total=500.0),
        make_facts(5, Status.REJECTED),
    ]
    k = kpis.compute(deals)
    assert k.won == 2
    assert k.lost == 1
    assert k.win_rate == pytest.approx(2 / 3)
    assert k.cycle_months == [7.0, 12.0]
    assert k.median_cycle_months == 9.5
    assert (k.within_norm, k.longer_than_norm) == (1, 1)
    assert k.meters_deployed == 150
    assert (k.vendor_revenue, k.distributor_revenue) == (800.0, 340.0)
    assert k.roi_reports_delivered == 1
    assert k.median_response_hours == 7.0
    assert k.pipeline["won"] == {"iou": 1, "security": 1}
    assert k.pipeline["proposal"]["iou"] == 1
    assert "rejected" not in k.pipeline
    assert k.open_pipeline_value == 500.0
    per = kpis.by_partner(deals)
    assert set(per) == {"northgrid", "prairiemeter"}
    assert per["prairiemeter"].win_rate == 0.0
    assert dict(k.rows())["Meters deployed"] == "150"


def test_kpis_of_nothing_are_empty_not_errors() -> None:
    k = kpis.compute([])
    assert (k.deals, k.win_rate, k.median_cycle_months, k.median_response_hours) == (
        0,
        None,
        None,
        None,
    )


# --- RFx --------------------------------------------------------------------------------


def test_requirements_from_pasted_list_and_csv() -> None:
    pasted = "1. Supports 15-minute interval data\n\n- Encrypts data in transit\n  * Works on LTE-M"
    assert rfx.parse_requirements(pasted) == [
        "Supports 15-minute interval data",
        "Encrypts data in transit",
        "Works on LTE-M",
    ]
    table = 'id,Requirement\nR1,"Remote disconnect, with result"\nR2,Green Button export\n'
    assert rfx.parse_requirements(table) == [
        "Remote disconnect, with result",
        "Green Button export",
    ]
    with pytest.raises(rfx.RfxError, match="requirements"):
        rfx.parse_requirements("  \n \n")
    with pytest.raises(rfx.RfxError, match="requirements: must not contain NUL"):
        rfx.parse_requirements("R1\nR\x002\n")
    # A CSV field past the csv module's limit is refused like any other bad input.
    with pytest.raises(rfx.RfxError, match="requirements: line 2: field larger"):
        rfx.parse_requirements("id,requirement\n1," + "x" * 200_000 + "\n")


def test_the_matrix_workbook_keeps_formula_like_text_as_text() -> None:
    from openpyxl import load_workbook

    title = '=HYPERLINK("http://evil.example","Open")'
    rows = [
        rfx.MatrixRow(1, "-40 C operation", "=1+1", "compliant"),
        rfx.MatrixRow(2, "@SUM(A1)", "", ""),
    ]
    sheet = load_workbook(io.BytesIO(rfx.matrix_xlsx(rows, title)))["Compliance matrix"]
    cells = [sheet["A1"], sheet["B3"], sheet["C3"], sheet["B4"]]
    assert [c.value for c in cells] == [title, "-40 C operation", "=1+1", "@SUM(A1)"]
    assert {c.data_type for c in cells} == {"s"}  # not "f": nothing is evaluated


def test_search_suggests_the_closest_previous_answer() -> None:
    library = [
        rfx.Answer(1, "Is data encrypted in transit?", "TLS 1.2+ on MQTT", "compliant"),
        rfx.Answer(2, "Interval length supported?", "15-minute intervals, 96 per day", "compliant"),
        rfx.Answer(3, "Remote disconnect?", "Yes, asynchronous result", "partial"),
    ]
    hits = rfx.search("Vendor shall encrypt all data in transit", library)
    assert hits[0].answer.id == 1
    assert hits[0].score > (hits[1].score if len(hits) > 1 else 0)
    assert rfx.search("intervals of 15 minutes", library)[0].answer.id == 2
    assert rfx.search("zebra", library) == []


def test_compliance_matrix_csv_and_xlsx_neutralise_formulas() -> None:
    from openpyxl import load_workbook

    rows = [
        rfx.MatrixRow(1, "=HYPERLINK(evil)", "Yes", "compliant"),
        rfx.MatrixRow(2, "Second", "", ""),
    ]
    parsed = list(csv.reader(io.StringIO(rfx.matrix_csv(rows))))
    assert parsed[0] == list(rfx.MATRIX_HEADER)
    assert parsed[1] == ["1", "'=HYPERLINK(evil)", "Yes", "compliant"]
    assert parsed[2][3] == "unanswered"
    book = load_workbook(io.BytesIO(rfx.matrix_xlsx(rows, "RFP 7")))
    sheet = book["Compliance matrix"]
    assert sheet["A1"].value == "RFP 7"
    assert [c.value for c in sheet[2]] == list(rfx.MATRIX_HEADER)
    assert (sheet["B3"].value, sheet["B3"].data_type) == ("=HYPERLINK(evil)", "s")
    assert len(book.worksheets) == 1
    assert rfx.parse_compliance(" Partial ") == "partial"
    with pytest.raises(rfx.RfxError):
        rfx.parse_compliance("maybe")
