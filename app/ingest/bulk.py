"""PostgreSQL COPY on the session's own connection, inside the session's transaction.

COPY moves rows at several times the rate of any INSERT a driver can batch, so the ingest
and the backfill use it for everything written per reading. Errors come back as the same
SQLAlchemy exceptions every other statement raises, so callers retry them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session


def _driver(session: Session) -> psycopg.Connection[Any]:
    conn = session.connection().connection.driver_connection
    if not isinstance(conn, psycopg.Connection):
        raise TypeError("COPY needs a psycopg (PostgreSQL) connection")
    return conn


def _copy(
    cur: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def copy_rows(
    session: Session,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    create: str | None = None,
) -> None:
    """COPY rows into `table` (first running `create`, e.g. a temporary staging table)."""
    try:
        with _driver(session).cursor() as cur:
            if create:
                cur.execute(create.encode())
            _copy(cur, table, columns, rows)
    except psycopg.Error as exc:
        raise _wrapped(f"COPY {table}", exc) from exc


def copy_if_all_new(
    session: Session, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> bool:
    """COPY rows straight into `table`; False, and nothing written, if any key exists.

    The optimistic path: a stream of new readings never collides, so it pays for one
    COPY and nothing else. A redelivery or a late actual over an estimate collides, the
    savepoint undoes the partial COPY, and the caller takes the upsert path instead.
    """
    try:
        with _driver(session).cursor() as cur:
            cur.execute(b"SAVEPOINT wattline_copy")
            try:
                _copy(cur, table, columns, rows)
            except psycopg.errors.UniqueViolation:
                cur.execute(b"ROLLBACK TO SAVEPOINT wattline_copy")
                return False
            cur.execute(b"RELEASE SAVEPOINT wattline_copy")
            return True
    except psycopg.Error as exc:
        raise _wrapped(f"COPY {table}", exc) from exc


def _wrapped(statement: str, exc: psycopg.Error) -> StatementError:
    # The worker retries SQLAlchemy errors (database down, connection lost) with backoff;
    # a raw driver error from COPY must look the same to it.
    broken = exc.sqlstate is None or exc.sqlstate.startswith("08")
    return DBAPIError.instance(statement, None, exc, psycopg.Error, connection_invalidated=broken)
