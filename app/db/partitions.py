"""Time partitions of `readings` on PostgreSQL: TimescaleDB chunks, or one partition a month.

A migration turns `readings` into a TimescaleDB hypertable when the extension is available,
otherwise into a table partitioned by month on `start` with a DEFAULT partition as a
safety net. Writers call `ensure` with the interval starts they are about to store, so the
month's partition exists first; old months can then be detached or dropped whole.
SQLite stores one plain table and every function here does nothing there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

PARENT = "readings"
DEFAULT = "readings_default"
_MONTHLY = re.compile(r"readings_p\d{6}")
# A one-off lock number for partition DDL, so two writers never create the same month.
_LOCK = 7_304_211


def is_partition(name: str) -> bool:
    """Return True for the name of a `readings` partition (not in the models on purpose)."""
    return name == DEFAULT or _MONTHLY.fullmatch(name) is not None


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: leave the partitions, which the models do not describe, alone."""
    return not (type_ == "table" and reflected and name is not None and is_partition(name))


def month_name(start: datetime) -> str:
    """Return the partition name for the month of `start` (UTC)."""
    at = start.astimezone(UTC)
    return f"readings_p{at.year:04d}{at.month:02d}"


def month_bounds(start: datetime) -> tuple[datetime, datetime]:
    """Return [first instant, first instant of the next month) in UTC for `start`'s month."""
    at = start.astimezone(UTC)
    low = datetime(at.year, at.month, 1, tzinfo=UTC)
    high = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return low, high


def layout(conn: Connection) -> str:
    """Return how `readings` is stored: 'plain', 'monthly' or 'timescaledb'."""
    if conn.dialect.name != "postgresql":
        return "plain"
    kind = conn.scalar(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT}
    )
    if kind == "p":
        return "monthly"
    hyper = conn.scalar(
        text(
            "SELECT count(*) FROM pg_extension e WHERE e.extname = 'timescaledb' AND "
            "EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = :t)"
        )
        if _has_timescale(conn)
        else text("SELECT 0"),
        {"t": PARENT},
    )
    return "timescaledb" if hyper else "plain"


def _has_timescale(conn: Connection) -> bool:
    return bool(
        conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
    )


class Months:
    """The monthly partitions known to exist, so a writer checks the catalogue once."""

    def __init__(self) -> None:
        """Start unknown; the first `ensure` reads the catalogue."""
        self._known: set[str] | None = None
        self._monthly = False

    def reset(self) -> None:
        """Forget what is known (after a rollback that may have undone a creation)."""
        self._known = None

    def ensure(self, conn: Connection, starts: Iterable[datetime]) -> list[str]:
        """Create the monthly partitions `starts` fall in that do not exist yet; return them."""
        if conn.dialect.name != "postgresql":
            return []
        # One local reference: the ingest's writer threads share this object, and another
        # writer's `reset` (after its batch failed) may set the attribute to None at any
        # moment; reading it twice raised AttributeError here and dead-lettered a valid
        # message (seen in CI: "'NoneType' object has no attribute 'add'").
        known = self._known
        if known is None:
            monthly = layout(conn) == "monthly"
            known = set(existing(conn)) if monthly else set()
            self._monthly = monthly
            self._known = known
        if not self._monthly:
            return []
        wanted = {month_name(s): s for s in starts}
        missing = [name for name in wanted if name not in known]
        created = []
        for name in sorted(missing):
            if create_month(conn, wanted[name]):
                created.append(name)
            known.add(name)
        return created


def existing(conn: Connection) -> list[str]:
    """Return the names of the partitions of `readings`."""
    return list(
        conn.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:t) ORDER BY 1"
            ),
            {"t": PARENT},
        )
    )


def create_month(conn: Connection, start: datetime) -> bool:
    """Create the partition for `start`'s month if missing; True if this call created it.

    Runs in a savepoint: if rows for that month already sit in the DEFAULT partition (a
    writer that did not call `ensure`), PostgreSQL refuses and they simply stay there.
    """
    name = month_name(start)
    low, high = month_bounds(start)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    if conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}):
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                text(
                    f"CREATE TABLE {name} PARTITION OF {PARENT} "
                    f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
                )
            )
    except DBAPIError as exc:
        log.warning("partition %s not created (%s); its rows stay in %s", name, exc.orig, DEFAULT)
        return False
    log.info("created partition %s", name)
    return True
