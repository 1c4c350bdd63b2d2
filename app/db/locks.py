"""Row locks that hold on PostgreSQL and SQLite alike, for check-then-write sequences."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import InstrumentedAttribute, Session


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
