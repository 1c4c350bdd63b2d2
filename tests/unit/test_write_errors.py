"""Which database errors the ingest writer waits out and which it blames on the messages."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from app.ingest.worker import _refused


def _from_psycopg(error: type[psycopg.Error], *, lost: bool = False) -> SQLAlchemyError:
    return DBAPIError.instance(
        "INSERT …", None, error("refused"), psycopg.Error, connection_invalidated=lost
    )


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        # The rows themselves: halve the batch, dead-letter the culprit.
        (psycopg.errors.CardinalityViolation, True),
        (psycopg.errors.UniqueViolation, True),
        (psycopg.errors.NotNullViolation, True),
        (psycopg.errors.NumericValueOutOfRange, True),
        (psycopg.errors.InvalidTextRepresentation, True),
        (psycopg.errors.ProgramLimitExceeded, True),
        (psycopg.errors.TooManyArguments, True),
        # The database or an operator: keep everything, wait, retry.
        (psycopg.errors.AdminShutdown, False),
        (psycopg.errors.ConnectionFailure, False),
        (psycopg.errors.DeadlockDetected, False),
        (psycopg.errors.SerializationFailure, False),
        (psycopg.errors.DiskFull, False),
        (psycopg.errors.UndefinedTable, False),
        (psycopg.errors.InsufficientPrivilege, False),
        (psycopg.errors.ReadOnlySqlTransaction, False),
    ],
)
def test_postgres_errors_are_told_apart_by_sqlstate(
    error: type[psycopg.Error], refused: bool
) -> None:
    assert _refused(_from_psycopg(error)) is refused


def test_a_lost_connection_is_waited_out_whatever_the_error() -> None:
    assert _refused(_from_psycopg(psycopg.errors.UniqueViolation, lost=True)) is False


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (sqlite3.IntegrityError, True),
        (sqlite3.DataError, True),
        (sqlite3.OperationalError, False),  # "database is locked", a missing table
    ],
)
def test_sqlite_errors_without_sqlstate_go_by_class(
    error: type[sqlite3.Error], refused: bool
) -> None:
    exc = DBAPIError.instance("INSERT …", None, error("refused"), sqlite3.Error)
    assert _refused(exc) is refused


def test_a_value_that_cannot_be_bound_is_the_messages_fault() -> None:
    assert _refused(StatementError("bad value", "INSERT …", None, ValueError("x"))) is True
