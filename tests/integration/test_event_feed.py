"""The live event feed: newest visible events first, and bounded work for a quiet tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.dialects import postgresql

from app.db import live_queries, models
from app.db.session import make_engine, make_sessionmaker
from app.domain.access import Scope
from simulator.fleet import Meter
from tests.factories import seed_database

END = datetime(2026, 3, 2, 12, tzinfo=UTC)
BUSY = "glpl"  # a NorthGrid utility with thousands of events
QUIET_METER_EVENTS = 20  # one Millbrook meter has more than the feed shows
SCOPES = {
    "vendor": Scope(everything=True),
    "northgrid": Scope(distributor_id="northgrid"),
    "millbrook": Scope(utility_id="millbrook"),
    "prairiemeter": Scope(distributor_id="prairiemeter"),  # no events at all
    "glpl": Scope(utility_id="glpl"),
}
DISTRIBUTOR = {"glpl": "northgrid", "atlantic": "northgrid", "millbrook": "northgrid",
               "fedcenter": "northgrid", "cascade": "prairiemeter", "prec": "prairiemeter",
               "riverton": "prairiemeter"}  # fmt: skip


Seeded = tuple[Engine, list[dict[str, Any]], list[Meter]]


@pytest.fixture
def events(database_url: str) -> Iterator[Seeded]:
    """The crowded fleet on SQLite and PostgreSQL."""
    yield from crowded(database_url)


@pytest.fixture
def pg_events(empty_postgres_url: str) -> Iterator[Seeded]:
    """The crowded fleet on PostgreSQL only (its plans)."""
    yield from crowded(empty_postgres_url)


def crowded(database_url: str) -> Iterator[Seeded]:
    """A fleet whose events crowd one utility, a few at Millbrook, none at Prairie Meter."""
    fleet = seed_database(database_url, meters=21, intervals=1)
    busy = [m.id for m in fleet if m.utility_id == BUSY]
    quiet = [m.id for m in fleet if m.utility_id == "millbrook"]
    rows = [event(busy[k % len(busy)], f"b{k}", END - timedelta(seconds=k)) for k in range(20_000)]
    # Millbrook's are older than every busy one, two of them arriving at the same instant.
    old = END - timedelta(days=2)
    rows += [
        event(quiet[0], f"q{k}", old - timedelta(minutes=k // 2)) for k in range(QUIET_METER_EVENTS)
    ]
    rows.append(event(quiet[1], "q-other", old - timedelta(minutes=3, seconds=30)))
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        for lo in range(0, len(rows), 5_000):
            session.execute(insert(models.Event), rows[lo : lo + 5_000])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE events"))
    yield engine, rows, fleet
    engine.dispose()


def event(meter_id: str, event_id: str, received_at: datetime) -> dict[str, Any]:
    """An event row arriving at `received_at`."""
    return {"meter_id": meter_id, "event_id": event_id, "type": "tamper", "severity": "alarm",
            "at": received_at, "details": {}, "received_at": received_at}  # fmt: skip


@pytest.mark.parametrize("name", list(SCOPES))
def test_the_feed_is_the_newest_visible_events(events: Seeded, name: str) -> None:
    engine, rows, fleet = events
    utility_of = {m.id: m.utility_id for m in fleet}
    scope = SCOPES[name]

    def visible(meter_id: str) -> bool:
        utility = utility_of[meter_id]
        if scope.utility_id is not None:
            return utility == scope.utility_id
        return scope.everything or DISTRIBUTOR[utility] == scope.distributor_id

    # Ids follow insertion order; ties in arrival go to the later id.
    numbered = [(r["received_at"], i + 1, r) for i, r in enumerate(rows) if visible(r["meter_id"])]
    expected = [
        (i, r["meter_id"])
        for _, i, r in sorted(numbered, key=lambda t: t[:2], reverse=True)[
            : live_queries.FEED_LENGTH
        ]
    ]
    with make_sessionmaker(engine)() as session:
        feed = live_queries.event_feed(session, scope)
    assert [(e.id, e.meter_id) for e in feed] == expected
    assert len(feed) == {"prairiemeter": 0, "millbrook": 15}.get(name, live_queries.FEED_LENGTH)


@pytest.mark.postgres
def test_a_quiet_tenants_feed_reads_only_its_own_meters_events(pg_events: Seeded) -> None:
    """It walked every event of the fleet newest first: 0.6-1.1 s a tick at 300,000."""
    engine = pg_events[0]
    for name, meters in (("millbrook", 3), ("prairiemeter", 9)):
        statement = live_queries.feed_query(SCOPES[name], live_queries.FEED_LENGTH, "postgresql")
        sql = str(
            statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        with engine.connect() as conn:
            plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        read = sum(
            node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
            for node in nodes(plan[0]["Plan"])
            if node.get("Relation Name") == "events"
        )
        assert read <= meters * live_queries.FEED_LENGTH, (name, read)
    with make_sessionmaker(engine)() as session:
        assert len(live_queries.event_feed(session, SCOPES["millbrook"])) == 15


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN JSON plan."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)
