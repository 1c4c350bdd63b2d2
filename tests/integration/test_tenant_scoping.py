"""Scoped queries a mutation review found untested: each tenant sees only its own rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, update

from app.db import live_queries, models, queries, roi_store
from app.db.segment_queries import security_events
from app.db.session import make_engine, make_sessionmaker
from app.domain.access import Scope
from simulator.fleet import Meter
from tests.factories import T0, seed_database

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
OWNER = {"glpl": "northgrid", "atlantic": "northgrid", "millbrook": "northgrid",
         "fedcenter": "northgrid", "cascade": "prairiemeter", "prec": "prairiemeter",
         "riverton": "prairiemeter"}  # fmt: skip
SCOPES = {
    "northgrid": Scope(distributor_id="northgrid"),
    "prairiemeter": Scope(distributor_id="prairiemeter"),
    "fedcenter": Scope(utility_id="fedcenter"),
    "riverton": Scope(utility_id="riverton"),
    "vendor": Scope(everything=True),
}


def allowed(name: str) -> set[str]:
    """The utilities a named scope may see, written out independently of the queries."""
    if name == "vendor":
        return set(OWNER)
    return {u for u, d in OWNER.items() if d == name} if name in OWNER.values() else {name}


@pytest.fixture
def fleet(database_url: str) -> Iterator[tuple[Engine, list[Meter]]]:
    """Twenty-one meters across the seven utilities; a tamper at every one."""
    meters = seed_database(database_url, meters=21, intervals=1)
    engine = make_engine(database_url)
    rows = [
        {"meter_id": m.id, "event_id": f"t-{m.id}", "type": "tamper", "severity": "alarm",
         "at": AT, "details": {}, "received_at": AT}
        for m in meters
    ]  # fmt: skip
    with make_sessionmaker(engine).begin() as session:
        session.execute(insert(models.Event), rows)
    yield engine, meters
    engine.dispose()


@pytest.mark.parametrize("name", list(SCOPES))
def test_security_events_and_roi_utilities_are_the_scopes_own(
    fleet: tuple[Engine, list[Meter]], name: str
) -> None:
    engine, meters = fleet
    utility_of = {m.id: m.utility_id for m in meters}
    secured = {"fedcenter", "riverton"} & allowed(name)
    with make_sessionmaker(engine)() as session:
        events = security_events(session, SCOPES[name])
        picker = roi_store.visible_utilities(session, SCOPES[name])
    assert {utility_of[e.meter_id] for e in events} == secured
    assert len(events) == sum(utility_of[m.id] in secured for m in meters)
    assert {u.id for u in picker} == allowed(name)


def test_a_tenants_status_signature_ignores_other_tenants(
    fleet: tuple[Engine, list[Meter]],
) -> None:
    """The live page redraws on the signature: another tenant's meters must not move it."""
    engine, meters = fleet
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        before = {n: live_queries.status_signature(session, s) for n, s in SCOPES.items()}
    cascade = [m.id for m in meters if m.utility_id == "cascade"]
    with sessions.begin() as session:
        session.execute(
            update(models.Meter)
            .where(models.Meter.id.in_(cascade))
            .values(status="offline", status_at=AT + timedelta(hours=1))
        )
    with sessions() as session:
        after = {n: live_queries.status_signature(session, s) for n, s in SCOPES.items()}
    moved = {n for n in SCOPES if after[n] != before[n]}
    assert moved == {"prairiemeter", "vendor"}


def test_a_tenants_load_chart_ends_at_its_own_newest_hour(database_url: str) -> None:
    """Another tenant's meters running days ahead must not move this tenant's window."""
    meters = seed_database(database_url, meters=21, intervals=96)  # one day from T0
    engine = make_engine(database_url)
    ahead = [m.id for m in meters if OWNER[m.utility_id] == "prairiemeter"]
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            update(models.Meter)
            .where(models.Meter.id.in_(ahead))
            .values(last_interval_start=T0 + timedelta(days=10))
        )
    with make_sessionmaker(engine)() as session:
        rows = queries.fleet_load_by_segment(session, SCOPES["northgrid"])
    engine.dispose()
    assert rows
    assert max(start for start, _, _ in rows) == T0 + timedelta(hours=23)
    assert {segment for _, segment, _ in rows} == {"iou", "service_bureau", "security"}
