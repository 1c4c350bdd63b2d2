"""Partner persistence on a real database: seed, scoped queries, registration and workflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import channel, models
from app.db.seed import PARTNER_PROFILES, PROSPECTS, SEED_DEALS, seed_partners
from app.db.session import make_engine, make_sessionmaker
from app.domain.access import Role, scope_for
from partners import kpis
from tests.factories import seed_database

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session on a database seeded with the fleet, demo logins and partner data."""
    seed_database(database_url, meters=7, intervals=1)
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def actor(s: Session, email: str) -> channel.Actor:
    """Build the acting user from a demo login."""
    u = s.scalars(select(models.User).where(models.User.email == email)).one()
    return channel.Actor(
        u.id, Role(u.role), scope_for(u.role, u.distributor_id, u.utility_id), u.distributor_id
    )


def test_seed_is_complete_and_idempotent(session: Session) -> None:
    def count(model: type[models.Base]) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    assert count(models.PartnerProfile) == len(PARTNER_PROFILES) == 12
    assert count(models.Prospect) == len(PROSPECTS)
    assert count(models.Deal) == len(SEED_DEALS)
    assert {d.status for d in session.scalars(select(models.Deal))} >= {
        "submitted", "approved", "roi_requested", "proposal", "won", "lost"
    }  # fmt: skip
    assert seed_partners(session, NOW) == 0
    session.commit()
    assert count(models.Deal) == len(SEED_DEALS)
    won = session.scalars(select(models.Deal).where(models.Deal.status == "won")).all()
    for deal in won:
        assert deal.roi_result is not None
        assert deal.created_at < deal.approved_at < deal.closed_at  # type: ignore[operator]
        assert deal.closed_at is not None
        assert deal.closed_at.tzinfo is not None
    # The uncovered prospect waits for the vendor; every other one has a partner.
    routed = {p.id: p.distributor_id for p in session.scalars(select(models.Prospect))}
    assert routed["railbelt"] is None
    assert routed["ohio-valley"] == "northgrid"


def test_scopes_keep_tenants_apart(session: Session) -> None:
    ng, pm = actor(session, "rep@northgrid.example"), actor(session, "rep@prairiemeter.example")
    viewer = actor(session, "ops@millbrook.example")
    admin = actor(session, "admin@wattline.example")
    all_deals = channel.list_deals(session, admin.scope)
    assert {d.distributor_id for d in channel.list_deals(session, ng.scope)} == {"northgrid"}
    assert {d.distributor_id for d in channel.list_deals(session, pm.scope)} == {"prairiemeter"}
    assert channel.list_deals(session, viewer.scope) == []
    assert channel.visible_prospects(session, viewer.scope) == []
    assert len(all_deals) == len(SEED_DEALS)
    theirs = next(d for d in all_deals if d.distributor_id == "prairiemeter")
    assert channel.get_deal(session, ng.scope, theirs.id) is None
    assert channel.get_deal(session, admin.scope, theirs.id) is theirs


def test_seeded_double_registration_is_a_conflict(session: Session) -> None:
    deals = list(channel.list_deals(session, actor(session, "se@wattline.example").scope))
    ontario = sorted(
        (d for d in deals if d.prospect_id == "ontario-east"), key=lambda d: d.created_at
    )
    views = channel.conflicts(session, ontario, NOW)
    first, second = ontario
    assert views[first.id].conflict
    assert views[first.id].protected
    assert views[second.id].conflict
    assert views[second.id].protected_by == first.id


def test_register_approve_roi_and_deliver(session: Session) -> None:
    rep, se = actor(session, "rep@northgrid.example"), actor(session, "se@wattline.example")
    deal = channel.register_deal(
        session, rep, {"utility": "Elm Falls Light & Water, Village of", "segment": "service_bureau", "region": "us-wi"}, NOW
    )  # fmt: skip
    assert (deal.status, deal.region, deal.distributor_id) == ("submitted", "US-WI", "northgrid")
    with pytest.raises(channel.ChannelError) as refused:
        channel.transition(session, rep, deal, "approved", NOW)
    assert (refused.value.field, refused.value.status) == ("status", 409)
    channel.transition(session, se, deal, "approved", NOW + timedelta(hours=5))
    assert deal.first_response_at == NOW + timedelta(hours=5)
    with pytest.raises(channel.ChannelError, match=r"roi_inputs\.inputs\.meters"):
        channel.request_roi(session, rep, deal, {"inputs": {"meters": -3}}, NOW)
    channel.request_roi(session, rep, deal, {"inputs": {"meters": 200}}, NOW + timedelta(days=1))
    assert deal.status == "roi_requested"
    with pytest.raises(channel.ChannelError) as not_vendor:
        channel.deliver_roi(session, rep, deal, NOW)
    assert not_vendor.value.status == 403
    result = channel.deliver_roi(session, se, deal, NOW + timedelta(days=3))
    assert deal.roi_result == result
    assert result["segment"] == "service_bureau"
    assert deal.roi_delivered_at == NOW + timedelta(days=3)
    channel.transition(session, rep, deal, "proposal", NOW + timedelta(days=4))
    session.commit()
    actions = [e.action for e in channel.deal_events(session, deal.id)]
    assert actions == [
        "registered", "approved", "roi_questionnaire", "roi_requested", "roi_delivered", "proposal"
    ]  # fmt: skip
    assert all(e.at is not None for e in channel.deal_events(session, deal.id))


def test_registration_refuses_outside_territory_and_other_tenants(session: Session) -> None:
    rep = actor(session, "rep@prairiemeter.example")
    with pytest.raises(channel.ChannelError) as outside:
        channel.register_deal(
            session, rep, {"utility": "X", "segment": "iou", "region": "US-FL"}, NOW
        )
    assert (outside.value.field, outside.value.status) == ("region", 422)
    assert "outside Prairie Meter & Supply's territory" in outside.value.problem
    with pytest.raises(channel.ChannelError, match="outside North America"):
        channel.register_deal(session, rep, {"utility": "X", "segment": "iou", "region": "GB"}, NOW)
    with pytest.raises(channel.ChannelError) as other:
        channel.register_deal(
            session,
            rep,
            {"utility": "X", "segment": "iou", "region": "US-NE", "partner": "northgrid"},
            NOW,
        )
    assert other.value.status == 403
    with pytest.raises(channel.ChannelError) as lead:
        channel.register_deal(
            session, rep, {"utility": "X", "segment": "iou", "prospect": "ohio-valley"}, NOW
        )
    assert lead.value.status == 404
    viewer = actor(session, "facilities@fedcenter.example")
    with pytest.raises(channel.ChannelError) as customer:
        channel.register_deal(
            session, viewer, {"utility": "X", "segment": "iou", "region": "US-DC"}, NOW
        )
    assert customer.value.status == 403
    assert session.scalar(select(func.count()).select_from(models.Deal)) == len(SEED_DEALS)


def _kpis(session: Session, email: str) -> kpis.Kpis:
    return kpis.compute(channel.deal_facts(session, actor(session, email).scope))


def test_vendor_registered_deals_do_not_time_a_response(session: Session) -> None:
    """The response KPI times the vendor's answer to a partner; its own deals have none."""
    admin = actor(session, "admin@wattline.example")
    before = _kpis(session, "admin@wattline.example").median_response_hours
    assert before is not None
    assert before > 0
    for n in range(6):
        deal = channel.register_deal(
            session, admin,
            {"utility": f"Vendor Deal {n}", "segment": "iou", "region": "US-MI",
             "partner": "northgrid"},
            NOW,
        )  # fmt: skip
        channel.transition(session, admin, deal, "approved", NOW)
    session.flush()
    assert _kpis(session, "admin@wattline.example").median_response_hours == before


def test_the_same_questionnaire_again_keeps_the_delivered_roi(session: Session) -> None:
    """Saving the form twice neither clears the model nor lowers 'ROI reports delivered'."""
    rep, se = actor(session, "rep@northgrid.example"), actor(session, "se@wattline.example")
    deal = channel.register_deal(
        session, rep, {"utility": "Elm Falls Light & Water", "segment": "service_bureau", "region": "US-WI"}, NOW
    )  # fmt: skip
    channel.transition(session, se, deal, "approved", NOW)
    channel.request_roi(session, rep, deal, {"inputs": {"meters": 200}}, NOW)
    delivered = _kpis(session, "se@wattline.example").roi_reports_delivered
    channel.deliver_roi(session, se, deal, NOW + timedelta(days=1))
    session.flush()
    assert _kpis(session, "se@wattline.example").roi_reports_delivered == delivered + 1
    channel.request_roi(session, rep, deal, {"inputs": {"meters": 200}}, NOW + timedelta(days=2))
    assert deal.roi_delivered_at == NOW + timedelta(days=1)
    assert deal.roi_result is not None
    # New answers clear the model for the vendor to rebuild; the report already sent counts.
    channel.request_roi(session, rep, deal, {"inputs": {"meters": 300}}, NOW + timedelta(days=3))
    session.flush()
    cleared = session.get(models.Deal, deal.id)
    assert cleared is not None
    assert (cleared.roi_result, cleared.roi_delivered_at) == (None, None)
    assert _kpis(session, "se@wattline.example").roi_reports_delivered == delivered + 1


def test_a_partner_registers_a_utility_once_while_its_deal_is_open(session: Session) -> None:
    """Re-registering would restart the partner's protection; withdrawing releases it."""
    rep, manager = (
        actor(session, "rep@northgrid.example"),
        actor(session, "manager@northgrid.example"),
    )
    body = {"utility": "Elm Falls Light & Water", "segment": "service_bureau", "region": "US-WI"}
    first = channel.register_deal(session, rep, body, NOW)
    session.flush()
    with pytest.raises(channel.ChannelError, match=f"deal #{first.id}") as again:
        channel.register_deal(
            session, manager, {**body, "utility": "Elm Falls Light and Water Co."}, NOW
        )
    assert (again.value.field, again.value.status) == ("utility", 409)
    # Another town of the same name is another customer.
    channel.register_deal(session, rep, {**body, "region": "US-IL"}, NOW)
    channel.transition(session, rep, first, "lost", NOW + timedelta(days=1))
    second = channel.register_deal(session, manager, body, NOW + timedelta(days=2))
    session.flush()
    assert second.status == "submitted"
