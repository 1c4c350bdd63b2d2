"""Time partitions on PostgreSQL: TimescaleDB chunks, or one partition a month.

Migrations turn `readings` (on `start`) and `register_reads` (on `at`) into TimescaleDB
hypertables when the extension is available, otherwise into tables partitioned by month
with a DEFAULT partition as a safety net. Writers call `ensure` with the times they are
about to store, so the month's partition exists first; old months can then be detached or
dropped whole. SQLite stores plain tables and every function here does nothing there.
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
REGISTERS = "register_reads"
PARENTS = (PARENT, REGISTERS)
_PARTITION = re.compile(rf"(?P<parent>{'|'.join(PARENTS)})_(p\d{{6}}|default)")
# One-off lock numbers for partition DDL, one per table, so two writers never create the
# same month; per table, so a writer creating a month of one never waits on the other's.
_LOCKS = {PARENT: 7_304_211, REGISTERS: 7_304_212}


# check_violation: "updated partition constraint for default partition ... would be violated".
_ROWS_IN_DEFAULT = "23514"


def is_partition(name: str, parent: str = PARENT) -> bool:
    """Return True for the name of a partition of `parent` (the models describe none)."""
    found = _PARTITION.fullmatch(name)
    return found is not None and found["parent"] == parent


def is_any_partition(name: str) -> bool:
    """Return True for the name of a partition of any partitioned table."""
    return _PARTITION.fullmatch(name) is not None


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: leave the partitions, which the models do not describe, alone."""
    return not (type_ == "table" and reflected and name is not None and is_any_partition(name))


def month_name(start: datetime, parent: str = PARENT) -> str:
    """Return the name of `parent`'s partition for the month of `start` (UTC)."""
    at = start.astimezone(UTC)
    return f"{parent}_p{at.year:04d}{at.month:02d}"


def month_bounds(start: datetime) -> tuple[datetime, datetime]:
    """Return [first instant, first instant of the next month) in UTC for `start`'s month."""
    at = start.astimezone(UTC)
    low = datetime(at.year, at.month, 1, tzinfo=UTC)
    high = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return low, high


def layout(conn: Connection, parent: str = PARENT) -> str:
    """Return how `parent` is stored: 'plain', 'monthly' or 'timescaledb'."""
    if conn.dialect.name != "postgresql":
        return "plain"
    kind = conn.scalar(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": parent}
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
        {"t": parent},
    )
    return "timescaledb" if hyper else "plain"


def _has_timescale(conn: Connection) -> bool:
    return bool(
        conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
    )


class Months:
    """The monthly partitions of `parent` known to exist, so a writer checks the catalogue once."""

    def __init__(self, parent: str = PARENT) -> None:
        """Start unknown; the first `ensure` reads the catalogue."""
        self.parent = parent
        self._known: set[str] | None = None
        self._monthly = False

    def reset(self) -> None:
        """Forget what is known (after a rollback that may have undone a creation)."""
        self._known = None

    def ensure(
        self, conn: Connection, starts: Iterable[datetime], pending: set[str] | None = None
    ) -> list[str]:
        """Create the monthly partitions `starts` fall in that do not exist yet; return them.

        When other connections share this object, the caller passes `pending`: the months
        this transaction makes go there, not into the shared set, until it commits and calls
        `confirm`.
        """
        if conn.dialect.name != "postgresql":
            return []
        # One local reference: the ingest's writer threads share this object, and another
        # writer's `reset` (after its batch failed) may set the attribute to None at any
        # moment; reading it twice raised AttributeError here and dead-lettered a valid
        # message (seen in CI: "'NoneType' object has no attribute 'add'").
        known = self._known
        if known is None:
            monthly = layout(conn, self.parent) == "monthly"
            known = set(existing(conn, self.parent)) if monthly else set()
            # This transaction sees the months it made itself; they are not others' yet.
            known -= pending or set()
            self._monthly = monthly
            self._known = known
        if not self._monthly:
            return []
        wanted = {month_name(s, self.parent): s for s in starts}
        mine = pending if pending is not None else known
        missing = [name for name in wanted if name not in known and name not in mine]
        created = []
        for name in sorted(missing):
            if create_month(conn, wanted[name], self.parent):
                created.append(name)
                # Until this transaction commits, a rollback can undo the month: another
                # writer that trusted it would put that month's rows in the DEFAULT
                # partition, and the month could never be made after that. Not noted as
                # known, another writer takes the partition lock and waits for this one.
                mine.add(name)
            else:
                known.add(name)  # committed by another writer, or refused (rows in DEFAULT)
        return created

    def confirm(self, names: Iterable[str]) -> None:
        """Note that the partitions `names` (of any table) made by `ensure` are committed."""
        known = self._known
        if known is not None:
            known.update(name for name in names if is_partition(name, self.parent))


def existing(conn: Connection, parent: str = PARENT) -> list[str]:
    """Return the names of the partitions of `parent`."""
    return list(
        conn.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:t) ORDER BY 1"
            ),
            {"t": parent},
        )
    )


def create_month(conn: Connection, start: datetime, parent: str = PARENT) -> bool:
    """Create the partition for `start`'s month if missing; True if this call created it.

    Runs in a savepoint: if rows for that month already sit in the DEFAULT partition (a
    writer that did not call `ensure`), PostgreSQL refuses and they simply stay there. Any
    other failure (a deadlock, a lock timeout, the server going away) is raised: the batch
    is retried, and the month is not noted as made.
    """
    if parent not in PARENTS:  # interpolated into DDL below: only our own tables
        raise ValueError(f"{parent!r} is not a partitioned table")
    name = month_name(start, parent)
    low, high = month_bounds(start)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCKS[parent]})
    if conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}):
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                text(
                    f"CREATE TABLE {name} PARTITION OF {parent} "
                    f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
                )
            )
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _ROWS_IN_DEFAULT:
            raise
        log.warning(
            "partition %s not created (%s); its rows stay in %s_default", name, exc.orig, parent
        )
        return False
    log.info("created partition %s", name)
    return True
