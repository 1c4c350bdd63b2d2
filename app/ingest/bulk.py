"""PostgreSQL binary COPY on the session's own connection, inside the session's transaction.

COPY moves rows at several times the rate of any INSERT a driver can batch, and the binary
format again several times text (no float or timestamp formatting on either side), so the
ingest and the backfill use it for everything written per reading. Errors come back as the
same SQLAlchemy exceptions every other statement raises, so callers retry them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from app.ingest import pgcopy


def _driver(session: Session) -> psycopg.Connection[Any]:
    conn = session.connection().connection.driver_connection
    if not isinstance(conn, psycopg.Connection):
        raise TypeError("COPY needs a psycopg (PostgreSQL) connection")
    return conn


def copy_rows(
    session: Session,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]] | bytes,
    *,
    create: str | None = None,
) -> None:
    """COPY rows of (name, PostgreSQL type) `columns` into `table`, after running `create`.

    `rows` are Python rows, or bytes: tuples already in the binary format (`pgcopy.records`).
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    )
    try:
        with _driver(session).cursor() as cur:
            if create:
                cur.execute(create.encode())
            with cur.copy(statement) as copy:
                if isinstance(rows, bytes):
                    copy.write(pgcopy.SIGNATURE)
                    copy.write(rows)
                    copy.write(pgcopy.TRAILER)
                else:
                    copy.set_types([kind for _, kind in columns])
                    for row in rows:
                        copy.write_row(row)
    except psycopg.Error as exc:
        # The worker retries SQLAlchemy errors (database down, connection lost) with
        # backoff; a driver error from COPY must look the same to it.
        lost = exc.sqlstate is None or exc.sqlstate.startswith("08")
        if lost:
            session.connection().invalidate(exc)
        raise _wrapped(f"COPY {table}", exc, lost) from exc


def copy_if_all_new(
    session: Session,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]] | bytes,
) -> bool:
    """COPY rows straight into `table` in a savepoint; False, nothing written, if a key exists.

    The optimistic path: a stream of new readings never collides, so it costs one COPY,
    the same as loading the table in bulk. A redelivery or a late actual over an estimate
    collides, the savepoint undoes the COPY, and the caller takes the upsert path instead.
    """
    try:
        with session.begin_nested():
            copy_rows(session, table, columns, rows)
    except IntegrityError as exc:
        if isinstance(exc.orig, psycopg.errors.UniqueViolation):
            return False
        raise
    return True


def _wrapped(statement: str, exc: psycopg.Error, lost: bool) -> StatementError:
    return DBAPIError.instance(statement, None, exc, psycopg.Error, connection_invalidated=lost)
