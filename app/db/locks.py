"""Row locks that hold on PostgreSQL and SQLite alike, for check-then-write sequences."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.db import models


def hold_row(session: Session, key: InstrumentedAttribute[Any], value: Any) -> bool:
    """Hold the write lock on the row whose `key` is `value` until the transaction ends.

    A no-op UPDATE (the key set to itself) is a row lock on PostgreSQL and takes SQLite's
    database write lock, which SELECT ... FOR UPDATE would not (SQLite ignores it, and
    pysqlite starts no transaction before the first write). Reads after it see every
    commit made before it. Returns False if there is no such row.
    """
    statement = (
        update(key.class_)
        .where(key == value)
        .values({key.key: key})
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(session.execute(statement), "rowcount", 0))


_CHUNK = 10_000


def hold_meters(session: Session, meter_ids: Iterable[str]) -> None:
    """Hold the write lock on these meters' rows, in id order, until the transaction ends.

    Every writer of a meter's intervals (the ingest's batches, VEE, a file import, an edit;
    not the simulator's backfill, a bulk load run before the ingest and VEE are) takes it
    before reading what is stored: each reads what is there, then writes the
    rows, the audit and the rollups from it, and a writer slipping in between (VEE storing
    an estimate while a batch replaced it unseen) left rollups counting an interval twice
    and audit rows for estimates never stored. In id order, so writers never deadlock.
    """
    ids = sorted(set(meter_ids))
    if not ids:
        return
    meter = models.Meter
    if session.get_bind().dialect.name == "postgresql":
        # Chunks in order keep the order (a batch of single readings names 40,000 meters,
        # near the 65,535 parameters a statement may carry).
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            # Byte order ("C"), as Python sorted the chunks: a collation that orders
            # "a1" before "B1" would lock across chunks in a different order. NO KEY
            # UPDATE: writers still take turns, but rows referring to a meter (an alarm
            # acknowledgement, an event) can still be inserted by others meanwhile (FOR
            # UPDATE blocked them: a demo reset inserting acknowledgements deadlocked
            # with a batch waiting on the commands the reset had deleted).
            session.execute(
                select(meter.id)
                .where(meter.id.in_(chunk))
                .order_by(meter.id.collate("C"))
                .with_for_update(key_share=True)
            )
        return
    # SQLite has one writer at a time: any write takes its lock (one meter's row will do),
    # and reads after it see every commit before it (pysqlite begins the transaction only
    # at the first write).
    session.execute(
        update(meter)
        .where(meter.id == ids[0])
        .values(status=meter.status)
        .execution_options(synchronize_session=False)
    )
