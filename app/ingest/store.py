"""Write decoded telemetry to the database idempotently, one batch per transaction."""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from itertools import repeat
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Insert, Table, bindparam, case, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import models, partitions
from app.db.locks import hold_meters
from app.domain import rollups as domain_rollups
from app.domain import telemetry, vee
from app.domain.localtime import zone_for
from app.ingest import bulk, columnar, rollups


class Accepted(NamedTuple):
    """A message that passed the contract, with its topic and broker message id."""

    # NamedTuples, not frozen dataclasses: one is built per message on paho's thread.

    topic: telemetry.Topic
    message: telemetry.Message
    payload: bytes
    received_at: datetime
    mid: int = 0
    connection: int = 0


class Rejected(NamedTuple):
    """A message that broke the contract: kept raw with the reason for the dead-letter table."""

    topic: str
    payload: bytes
    reason: str
    received_at: datetime
    mid: int = 0
    connection: int = 0


Inbound = Accepted | Rejected


@dataclass
class BatchResult:
    """What one batch did, for counters and tests."""

    readings_offered: int = 0
    events_offered: int = 0
    statuses: int = 0
    replies: int = 0
    dead_letters: int = 0
    estimates_replaced: int = 0
    reasons: list[str] = field(default_factory=list)
    # Partitions this batch made: the caller confirms them to the MeterDirectory on commit.
    new_partitions: set[str] = field(default_factory=set)


def _insert_ignore(session: Session, table: Table) -> Insert:
    # ON CONFLICT DO NOTHING is the idempotency: a redelivered reading changes nothing.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect}")


_READINGS: Table = models.Reading.__table__  # type: ignore[assignment]

READING_COLUMNS: tuple[str, ...] = (
    "meter_id",
    "start",
    "kwh",
    "kvarh",
    "demand_kw",
    "voltage_a",
    "voltage_b",
    "voltage_c",
    "flags",
    "quality",
    "received_at",
)
# (meter_id, start, kWh, kVArh, kW, quality) out of a row in READING_COLUMNS order.
ROLLUP_FIELDS = operator.itemgetter(0, 1, 2, 3, 4, 9)
_START = operator.itemgetter(1)


_STORED_IS_ESTIMATE = text(
    "readings.quality IN ({})".format(", ".join(f"'{q}'" for q in sorted(vee.ESTIMATED)))
)


def upsert_readings(session: Session) -> Insert:
    """Insert readings; on conflict replace the stored row only if it is an estimate.

    A redelivered actual therefore changes nothing (exactly once), while an actual
    arriving after VEE estimated its slot takes the estimate's place.
    """
    dialect = session.get_bind().dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(_READINGS)
    elif dialect == "sqlite":
        stmt = sqlite.insert(_READINGS)
    else:
        raise RuntimeError(f"unsupported database dialect {dialect}")
    keys = {"meter_id", "start"}
    return stmt.on_conflict_do_update(
        index_elements=[_READINGS.c.meter_id, _READINGS.c.start],
        set_={c.name: stmt.excluded[c.name] for c in _READINGS.columns if c.name not in keys},
        # Literal SQL: an expanding IN parameter cannot go through executemany.
        where=_STORED_IS_ESTIMATE,
    )


class Stored(NamedTuple):
    """The values of a stored interval that the audit trail keeps."""

    kwh: float
    kvarh: float
    demand_kw: float
    quality: str

    def differs(self, new: Mapping[str, Any]) -> bool:
        """Return True if the row `new` would change any of these values."""
        return self != (new["kwh"], new["kvarh"], new["demand_kw"], new["quality"])


STORED_COLUMNS = (
    models.Reading.kwh,
    models.Reading.kvarh,
    models.Reading.demand_kw,
    models.Reading.quality,
)


def stored_estimates(
    session: Session, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Stored]:
    """Return the stored values of the estimates among `keys` (partial index)."""
    if not keys:
        return {}
    meters = sorted({m for m, _ in keys})
    starts = [s for _, s in keys]
    rows = session.execute(
        select(models.Reading.meter_id, models.Reading.start, *STORED_COLUMNS).where(
            # The partial index's own predicate, as literal SQL, so PostgreSQL can prove
            # the index applies even to a generic (prepared) plan.
            _STORED_IS_ESTIMATE,
            models.Reading.meter_id.in_(meters),
            models.Reading.start >= min(starts),
            models.Reading.start <= max(starts),
        )
    )
    wanted = set(keys)
    return {(r[0], r[1]): Stored(*r[2:]) for r in rows if (r[0], r[1]) in wanted}


def audit_rows(
    replaced: Mapping[tuple[str, datetime], Stored | None],
    new: dict[tuple[str, datetime], dict[str, Any]],
    source: str,
    at: datetime,
) -> list[dict[str, Any]]:
    """Build audit-trail rows for stored values that `new` replaces (None: nothing was)."""
    return [
        {
            "meter_id": key[0],
            "start": key[1],
            "changed_at": at,
            "source": source,
            "old_kwh": None if old is None else old.kwh,
            "old_kvarh": None if old is None else old.kvarh,
            "old_demand_kw": None if old is None else old.demand_kw,
            "old_quality": None if old is None else old.quality,
            "new_kwh": new[key]["kwh"],
            "new_kvarh": new[key]["kvarh"],
            "new_demand_kw": new[key]["demand_kw"],
            "new_quality": new[key]["quality"],
        }
        for key, old in replaced.items()
        if key in new
    ]


_EVENTS: Table = models.Event.__table__  # type: ignore[assignment]
_REGISTERS: Table = models.RegisterRead.__table__  # type: ignore[assignment]
_METERS: Table = models.Meter.__table__  # type: ignore[assignment]
# Late or backfilled intervals must not move a meter's "latest interval" backwards.
_TOUCH_METER = (
    update(_METERS)
    .where(_METERS.c.id == bindparam("meter"))
    .values(
        last_interval_start=case(
            (
                or_(
                    _METERS.c.last_interval_start.is_(None),
                    _METERS.c.last_interval_start < bindparam("newest"),
                ),
                bindparam("newest"),
            ),
            else_=_METERS.c.last_interval_start,
        ),
        last_seen_at=bindparam("seen"),
    )
)


_TOUCH_METERS_PG = text(
    """
    UPDATE meters SET
        last_interval_start = GREATEST(meters.last_interval_start, t.newest),
        last_seen_at = t.seen
    FROM json_to_recordset(CAST(:touched AS json)) AS t(id varchar, newest timestamptz, seen timestamptz)
    WHERE meters.id = t.id
    """
)


# The parents only: the partition DDL that writers must not cross takes the parent's lock.
_LOCK_TABLES = text("LOCK TABLE ONLY readings, register_reads IN ROW EXCLUSIVE MODE")
_LOCK_READINGS = text("LOCK TABLE ONLY readings IN ROW EXCLUSIVE MODE")


# Redelivery stores a register read once: the first copy stays.
_INSERT_REGISTERS_PG = text(
    """
    INSERT INTO register_reads (meter_id, at, kwh, kvarh, received_at)
    SELECT t.meter_id, t.at, t.kwh, t.kvarh, t.received_at
    FROM json_to_recordset(CAST(:doc AS json))
        AS t(meter_id varchar, at timestamptz, kwh float8, kvarh float8, received_at timestamptz)
    ON CONFLICT DO NOTHING
    """
)


def register_row(
    meter_id: str, register: telemetry.Register, received_at: datetime
) -> dict[str, Any]:
    """Return a register read as a row of register_reads (for `add_registers`)."""
    return {
        "meter_id": meter_id,
        "at": register.at,
        "kwh": register.kwh,
        "kvarh": register.kvarh,
        "received_at": received_at,
    }


def add_registers(session: Session, reads: list[dict[str, Any]]) -> None:
    """Insert register reads (dicts of register_reads' columns); a stored one is kept."""
    if session.get_bind().dialect.name == "postgresql":
        # One JSON document, as for the meters' touch: an executemany of one row a
        # message nearly doubled the cost of a batch of single-reading messages.
        doc = orjson.dumps(reads).decode()
        session.connection().execute(_INSERT_REGISTERS_PG, {"doc": doc})
    else:
        session.connection().execute(_insert_ignore(session, _REGISTERS), reads)


def _named(topic: str) -> tuple[str, str] | None:
    """Return (utility, meter) a raw topic names (`.../utility/meter/kind`), if it has them."""
    parts = topic.rsplit("/", 3)
    return (parts[1], parts[2]) if len(parts) == 4 else None


def _on_the_hour(at: datetime) -> bool:
    # Register reads are kept on whole hours only (at most 24 a meter a day): VEE's sum
    # check still judges every hour, and a meter reporting every 15 minutes (it sends a
    # read with each message) costs a quarter of the rows, not one per interval.
    return not (at.minute or at.second or at.microsecond)


class MeterDirectory:
    """Known meters and their utilities; an unknown id is looked up when it shows up."""

    def __init__(self) -> None:
        """Start empty; `refresh` loads it."""
        self._owner: dict[str, str] = {}
        self.zones: dict[str, tzinfo] = {}
        self.months = partitions.Months()
        self.register_months = partitions.Months(partitions.REGISTERS)

    def months_committed(self, names: set[str]) -> None:
        """Note partitions a batch made (`BatchResult.new_partitions`), now committed."""
        self.months.confirm(names)
        self.register_months.confirm(names)

    def months_unknown(self) -> None:
        """Forget which partitions exist (after a rollback that may have undone a creation)."""
        self.months.reset()
        self.register_months.reset()

    def refresh(self, session: Session) -> None:
        """Reload meter → utility (and local time zone, for daily rollups) from the database."""
        rows = session.execute(
            select(models.Meter.id, models.Meter.utility_id, models.Meter.lon)
        ).all()
        self._owner = {m: u for m, u, _ in rows}
        self.zones = {m: zone_for(lon) for m, _, lon in rows}

    def learn(self, session: Session, meter_ids: set[str]) -> None:
        """Look up meters not known yet (provisioned since the last load), by their ids.

        Only those ids, by primary key: a device sending under an id no meter has would
        otherwise reload the whole fleet in every batch it lands in (145 ms a batch at
        20,000 meters, measured, against 8 ms).
        """
        ids = sorted(meter_ids)
        for at in range(0, len(ids), 1000):  # SQLite allows 32,766 parameters a statement
            rows = session.execute(
                select(models.Meter.id, models.Meter.utility_id, models.Meter.lon).where(
                    models.Meter.id.in_(ids[at : at + 1000])
                )
            ).all()
            self._owner.update((m, u) for m, u, _ in rows)
            self.zones.update((m, zone_for(lon)) for m, _, lon in rows)

    def check(self, topic: telemetry.Topic) -> str | None:
        """Return why a topic's meter is not acceptable, or None if it is."""
        owner = self._owner.get(topic.meter_id)
        if owner is None:
            return f"unknown meter {topic.meter_id!r}"
        if owner != topic.utility_id:
            return (
                f"meter {topic.meter_id!r} belongs to utility {owner!r}, not {topic.utility_id!r}"
            )
        return None

    def attribute(self, topic: str) -> str | None:
        """Return the known meter a raw topic names (`.../utility/meter/kind`), if any."""
        named = _named(topic)
        if named is None:
            return None
        utility_id, meter_id = named
        return meter_id if self._owner.get(meter_id) == utility_id else None

    def __contains__(self, meter_id: object) -> bool:
        """Return True if the meter is known."""
        return meter_id in self._owner


def write_batch(
    session: Session,
    batch: Sequence[Inbound],
    meters: MeterDirectory,
    limits: vee.Plausibility = vee.Plausibility(),  # noqa: B008 - frozen, never mutated
) -> BatchResult:
    """Store a batch in the caller's transaction: readings, events, statuses, dead letters."""
    result = BatchResult()
    # First, so what it reads stays as read: share-group workers, VEE and imports take turns
    # per meter (two workers recomputing one meter's hour each missed the other's rows).
    hold_meters(session, {i.topic.meter_id for i in batch if isinstance(i, Accepted)})
    # The meters the batch names that are not known yet: its messages' and those its dead
    # letters' topics name (a letter is attributed to its meter, for that tenant to see).
    named = (
        i.topic.meter_id if isinstance(i, Accepted) else (_named(i.topic) or ("", ""))[1]
        for i in batch
    )
    unknown = {m for m in named if m and m not in meters}
    if unknown:
        meters.learn(session, unknown)

    rows: list[tuple[Any, ...]] = []
    # The batch's hourly rollups, built message by message while every message allows it;
    # None once one does not (flags, a gap, out of order, a start twice), and then the rows
    # are made distinct and by_hour rolls them up: valid_hours refusing a repeated start is
    # what keeps a message's duplicates out of the COPY.
    hours: list[tuple[str, domain_rollups.Rollup]] | None = []
    general: set[str] = set()  # meters with a message on the general path
    repeated = False  # a meter with two messages on the general path: its rows may overlap
    # PostgreSQL: plain messages (see columnar.plain) are stored a column at a time.
    block = columnar.Builder() if session.get_bind().dialect.name == "postgresql" else None
    plain: list[_Message] = []
    events: dict[tuple[str, str], dict[str, Any]] = {}
    # Register reads of accepted interval messages (VEE's sum check), first copy kept.
    registers: dict[tuple[str, datetime], dict[str, Any]] = {}
    latest: dict[str, tuple[datetime, datetime]] = {}
    dead: list[dict[str, Any]] = []

    for item in batch:
        if isinstance(item, Rejected):
            dead.append(
                _dead(
                    item.topic,
                    item.payload,
                    item.reason,
                    item.received_at,
                    meters.attribute(item.topic),
                )
            )
            continue
        problem = meters.check(item.topic)
        if problem is not None:
            dead.append(_dead(str(item.topic), item.payload, problem, item.received_at))
            continue
        msg = item.message
        meter_id = item.topic.meter_id
        if isinstance(msg, telemetry.IntervalMessage):
            received = item.received_at
            # Columns by zip (C): the plausibility bounds, the keys and the newest start
            # come from them without a Python loop over the readings.
            columns = telemetry.columns_of(msg.readings)
            starts = columns.starts
            phases = (columns.voltage_a, columns.voltage_b, columns.voltage_c)
            register = msg.register
            if not vee.all_plausible(
                starts,
                columns.kwh,
                columns.demand_kw,
                phases,
                now=received,
                limits=limits,
                kvarh=columns.kvarh,
            ) or (
                register is not None
                and vee.register_implausible(register.at, now=received, limits=limits)
            ):
                # The whole message: a meter that sends one impossible interval has a
                # broken clock or register, so its neighbours are not to be trusted either.
                # The fallback is unreachable while the column bounds and the per-reading
                # check agree (a unit test holds them to it); never crash a writer.
                problem = (
                    implausible(msg, received, limits)
                    or "a value is outside the plausibility limits"
                )
                dead.append(_dead(str(item.topic), item.payload, problem, received, meter_id))
                continue
            if (
                block is not None
                and meter_id not in general
                and columnar.plain(columns)
                and block.add(meter_id, columns, received)
            ):
                plain.append((meter_id, msg.readings, columns, received))
            else:
                # A meter's later messages follow it here: the block is written first, so a
                # later plain copy of a reading must not overtake this one there.
                repeated = repeated or meter_id in general
                general.add(meter_id)
                hours = _extend(rows, hours, meter_id, msg.readings, columns, received)
            if register is not None and _on_the_hour(register.at):
                registers.setdefault(
                    (meter_id, register.at), register_row(meter_id, register, received)
                )
            newest = max(starts)
            prev = latest.get(meter_id)
            latest[meter_id] = (max(newest, prev[0]) if prev else newest, item.received_at)
        elif isinstance(msg, telemetry.EventMessage):
            # The first copy, as across batches (ON CONFLICT DO NOTHING keeps the stored one).
            events.setdefault(
                (meter_id, msg.event_id),
                {
                    "meter_id": meter_id,
                    "event_id": msg.event_id,
                    "type": msg.type,
                    "severity": msg.severity,
                    "at": msg.at,
                    "details": dict(msg.details),
                    "received_at": item.received_at,
                },
            )
        elif isinstance(msg, telemetry.StatusMessage):
            session.execute(
                update(models.Meter)
                .where(models.Meter.id == meter_id)
                .values(status=msg.state, status_at=msg.at or item.received_at)
            )
            result.statuses += 1
        elif isinstance(msg, telemetry.Reply):
            _apply_reply(session, meter_id, msg, item.received_at)
            result.replies += 1

    # Core executemany on the session's connection: the ORM bulk path costs ~3x per row.
    conn = session.connection()
    now = max((i.received_at for i in batch), default=None)
    offered = 0
    whole = block.block() if plain and block is not None else None
    # The monthly partitions (PostgreSQL, partitioned layout) of the rows, the block's and
    # then the register reads', before anything is written: creating one locks its table
    # ACCESS EXCLUSIVE. A batch that held the rollup tables while it waited for that
    # deadlocked with `rebuild-rollups`, which takes `readings` and then the rollups; and
    # VEE reads `readings` and then `register_reads`, so they are taken in that order.
    made = result.new_partitions
    if rows:
        meters.months.ensure(conn, set(map(_START, rows)), made)
    if whole is not None:
        meters.months.ensure(conn, whole.start_times(), made)
    if registers:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            # `readings` before any `register_reads` month, as below: at a month end a batch
            # making a register month and then waiting for `readings` behind one making a
            # readings month, itself waiting for the register partition lock, would deadlock.
            conn.execute(_LOCK_READINGS)
        meters.register_months.ensure(conn, {at for _, at in registers}, made)
        if postgres:
            # And the tables themselves now, before any rollup row: a batch that wrote
            # rollups and then waited for `register_reads` behind one creating its month,
            # which in turn waited for one of those rollup rows, was a deadlock.
            conn.execute(_LOCK_TABLES)
    if whole is not None and now is not None:
        offered = sum(len(m[1]) for m in plain)
        result.estimates_replaced += _write_block(session, whole, plain, meters, now)
    if rows and now is not None:
        if repeated or hours is None:
            # A reading twice in the batch is stored once, the first copy, as across
            # batches (docs/protocol.md: later copies are ignored); by_hour then rolls up
            # what is left.
            first: dict[tuple[str, datetime], tuple[Any, ...]] = {}
            for row in rows:
                first.setdefault((row[0], row[1]), row)
            rows = list(first.values())
            hours = None
        if block is not None and not general.isdisjoint(block.meters):
            # Rows a run of the block holds already are offered once (and written again as
            # a redelivery is, which changes nothing: the block's rows came first and are
            # actuals).
            offered -= sum(block.holds(r[0], r[1]) for r in rows)
        result.estimates_replaced += _write_readings(session, rows, hours, meters, now)
    if events:
        conn.execute(_insert_ignore(session, _EVENTS), list(events.values()))
    if registers:
        add_registers(session, list(registers.values()))
    if dead:
        conn.execute(insert(models.DeadLetter), dead)
    if latest:
        touched = sorted(latest.items())
        if session.get_bind().dialect.name == "postgresql":
            # One statement for the whole batch: a batch of single-reading messages touches
            # thousands of meters, and one UPDATE each was most of its cost.
            # As one JSON document, which orjson writes in C: psycopg dumps Python lists of
            # timestamps element by element in Python, a fifth of a small message's cost.
            doc = [{"id": m, "newest": n, "seen": s} for m, (n, s) in touched]
            conn.execute(_TOUCH_METERS_PG, {"touched": orjson.dumps(doc).decode()})
        else:
            conn.execute(
                _TOUCH_METER,
                [{"meter": m, "newest": newest, "seen": seen} for m, (newest, seen) in touched],
            )

    result.readings_offered = len(rows) + offered
    result.events_offered = len(events)
    result.dead_letters = len(dead)
    result.reasons = [d["reason"] for d in dead]
    return result


def _write_readings(
    session: Session,
    rows: list[tuple[Any, ...]],
    hours: list[tuple[str, domain_rollups.Rollup]] | None,
    meters: MeterDirectory,
    now: datetime,
) -> int:
    """Store distinct rows exactly once and keep their rollups; return estimates replaced.

    `hours` are the rows' hourly rollups if the caller has them (else by_hour makes them).
    """
    # The rows' monthly partitions exist already: `write_batch` makes them before anything.
    # Fast path: a stream of new readings (the normal case) is one COPY, and its rollups
    # are the batch's own sums added to the stored buckets; nothing is read back.
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and bulk.copy_if_all_new(session, _READINGS.name, PG_COLUMNS, rows):
        _add_rollups(session, rows, hours, meters)
        return 0
    return _upsert_rows(session, rows, hours, meters, now)


# (meter, readings, their columns, received at) of one interval message.
_Message = tuple[str, Sequence[telemetry.Reading], telemetry.Columns, datetime]


def _extend(
    rows: list[tuple[Any, ...]],
    hours: list[tuple[str, domain_rollups.Rollup]] | None,
    meter_id: str,
    readings: Sequence[telemetry.Reading],
    columns: telemetry.Columns,
    received_at: datetime,
) -> list[tuple[str, domain_rollups.Rollup]] | None:
    """Add a message's rows to `rows`; return `hours` with its hours, None once one has none."""
    made, sliced = message_rows(meter_id, readings, columns, received_at)
    rows.extend(made)
    if hours is None or sliced is None:
        return None
    hours.extend(sliced)
    return hours


def _write_block(
    session: Session,
    columns: columnar.Block,
    plain: list[_Message],
    meters: MeterDirectory,
    now: datetime,
) -> int:
    """Store plain messages (one run of rows a meter) exactly once, with rollups (PostgreSQL).

    One COPY of numpy-built rows (their months' partitions made already), and rollups added
    a column at a time; if a row was stored before (a redelivery, an actual over an
    estimate), the general path instead.
    """
    if bulk.copy_if_all_new(session, _READINGS.name, PG_COLUMNS, columns.reading_copy()):
        rollups.add_columns(session, columns.hours(), meters.zones)
        return 0
    rows: list[tuple[Any, ...]] = []
    for message in plain:
        _extend(rows, None, *message)
    # No hours: a row met a stored one, so the upsert recomputes the touched buckets (and a
    # run of several messages may split an hour between them anyway).
    return _upsert_rows(session, rows, None, meters, now)


def _upsert_rows(
    session: Session,
    rows: list[tuple[Any, ...]],
    hours: list[tuple[str, domain_rollups.Rollup]] | None,
    meters: MeterDirectory,
    now: datetime,
) -> int:
    """Insert or replace distinct rows that may be stored already; return estimates replaced."""
    keys = [(r[0], r[1]) for r in rows]
    replaced = stored_estimates(session, keys)
    written = session.connection().execute(
        upsert_readings(session), [dict(zip(READING_COLUMNS, r, strict=True)) for r in rows]
    )
    if not replaced and written.rowcount == len(rows):
        # Every row was inserted (none existed), so adding is exact here too.
        _add_rollups(session, rows, hours, meters)
        return 0
    if replaced:
        new = {
            k: dict(zip(READING_COLUMNS, r, strict=True)) for k, r in zip(keys, rows, strict=True)
        }
        session.connection().execute(
            insert(models.ReadingAudit), audit_rows(replaced, new, "ingest", now)
        )
    # Redelivery or estimates replaced: recompute the touched buckets from what is stored.
    touched: dict[str, list[datetime]] = defaultdict(list)
    for meter_id, start in keys:
        touched[meter_id].append(start)
    rollups.refresh(session, touched, meters.zones)
    return len(replaced)


def _add_rollups(
    session: Session,
    rows: list[tuple[Any, ...]],
    hours: list[tuple[str, domain_rollups.Rollup]] | None,
    meters: MeterDirectory,
) -> None:
    if hours is None:
        hours = domain_rollups.by_hour(map(ROLLUP_FIELDS, rows))
    rollups.add_hourly(session, hours, meters.zones)


_PG_TYPES = {
    "meter_id": "varchar",
    "start": "timestamptz",
    "flags": "varchar",
    "quality": "varchar",
    "received_at": "timestamptz",
}
PG_COLUMNS = [(c, _PG_TYPES.get(c, "float8")) for c in READING_COLUMNS]


def _apply_reply(
    session: Session, meter_id: str, reply: telemetry.Reply, received_at: datetime
) -> None:
    # Only this meter's own command, and never back from a final answer: QoS 1 may deliver
    # an asynchronous command's "accepted" again after its "ok". Replies to commands some
    # other head-end sent are valid traffic and change nothing.
    session.execute(
        update(models.MeterCommand)
        .where(
            models.MeterCommand.id == reply.id,
            models.MeterCommand.meter_id == meter_id,
            models.MeterCommand.status.not_in(("ok", "error")),
        )
        .values(status=reply.status, result=reply.result, replied_at=received_at)
    )


def message_rows(
    meter_id: str,
    readings: Sequence[telemetry.Reading],
    columns: telemetry.Columns,
    received_at: datetime,
) -> tuple[Iterable[tuple[Any, ...]], list[tuple[str, domain_rollups.Rollup]] | None]:
    """Return one message's `readings` rows and, where they allow it, their hourly rollups.

    `columns` are the readings' fields as columns (`telemetry.columns_of`).

    A message without flags is zipped into rows from its columns, and if its starts are in
    order without a gap its hours are sliced from them, in C rather than a Python step per
    reading. Rollups are None for any other (flags, a gap, out of order, a start twice):
    the caller makes the rows distinct and runs by_hour over them.
    """
    if any(columns.flags):
        return map(reading_row, repeat(meter_id), readings, repeat(received_at)), None
    n = len(columns.starts)
    rows = zip(
        repeat(meter_id, n),
        columns.starts,
        columns.kwh,
        columns.kvarh,
        columns.demand_kw,
        columns.voltage_a,
        columns.voltage_b,
        columns.voltage_c,
        repeat("", n),
        repeat(vee.VALID, n),
        repeat(received_at, n),
        strict=True,
    )
    hours = domain_rollups.valid_hours(
        meter_id, columns.starts, columns.kwh, columns.kvarh, columns.demand_kw
    )
    return rows, hours


def reading_row(meter_id: str, r: telemetry.Reading, received_at: datetime) -> tuple[Any, ...]:
    """Return a reading as a `readings` row in READING_COLUMNS order."""
    start, kwh, kvarh, demand_kw, volts, flags, _ = r
    n = len(volts)
    if not flags:
        flag_text, quality = "", vee.VALID
    else:
        flag_text, quality = ",".join(sorted(flags)), vee.ingest_quality(flags)
    return (
        meter_id,
        start,
        kwh,
        kvarh,
        demand_kw,
        volts[0],
        volts[1] if n > 1 else None,
        volts[2] if n > 2 else None,
        flag_text,
        quality,
        received_at,
    )


def implausible(
    msg: telemetry.IntervalMessage, received_at: datetime, limits: vee.Plausibility
) -> str | None:
    """Return why a message's first impossible reading (or register read) is impossible."""
    for index, r in enumerate(msg.readings):
        why = vee.implausible(
            r.start, r.kwh, r.demand_kw, r.voltage, now=received_at, limits=limits, kvarh=r.kvarh
        )
        if why is not None:
            return f"readings[{index}]: impossible value: {why}"
    if msg.register is not None:
        why = vee.register_implausible(msg.register.at, now=received_at, limits=limits)
        if why is not None:
            return f"impossible value: {why}"
    return None


def _dead(
    topic: str, payload: bytes, reason: str, received_at: datetime, meter_id: str | None = None
) -> dict[str, Any]:
    return {
        "topic": topic,
        "payload": payload,
        "reason": reason[:2000],
        "received_at": received_at,
        "meter_id": meter_id,
    }
