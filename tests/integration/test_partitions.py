"""PostgreSQL keeps readings in monthly partitions, created before their rows arrive."""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db import models, partitions
from app.db.migrate import alembic_config
from app.db.seed import seed_fleet
from app.db.session import make_engine, make_sessionmaker
from app.ingest.store import Accepted, MeterDirectory, write_batch
from simulator.fleet import build_fleet
from tests.factories import interval_batch, readings_by_table

pytestmark = pytest.mark.postgres


def batch(start: datetime, count: int, *, register: bool = False) -> list[Accepted]:
    """One interval message per meter of a 2-meter fleet, `count` readings from `start`."""
    return interval_batch(build_fleet(2, seed=8), start, count, register=register)


def fresh_fleet(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Empty readings, rollups and register reads, the 2-meter fleet seeded; engine, sessions."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.execute(text("TRUNCATE readings, readings_hourly, readings_daily, register_reads"))
        seed_fleet(session, build_fleet(2, seed=8))
    return engine, sessions


def test_register_reads_get_their_month_partition_before_their_rows(postgres_url: str) -> None:
    engine, sessions = fresh_fleet(postgres_url)
    with sessions() as session:
        assert partitions.layout(session.connection(), partitions.REGISTERS) == "monthly"
    directory = MeterDirectory()
    # The reads after 23:00 and after midnight of a year end: one in each month.
    for start in (datetime(2024, 12, 31, 22, tzinfo=UTC), datetime(2024, 12, 31, 23, tzinfo=UTC)):
        with sessions.begin() as session:
            write_batch(session, batch(start, 4, register=True), directory)
    engine.dispose()
    assert readings_by_table(postgres_url, partitions.REGISTERS) == {
        "register_reads_p202412": 2,
        "register_reads_p202501": 2,
    }
    assert readings_by_table(postgres_url) == {"readings_p202412": 16}


def test_a_new_month_gets_its_partition_before_its_rows(postgres_url: str) -> None:
    engine, sessions = fresh_fleet(postgres_url)
    with sessions() as session:
        assert partitions.layout(session.connection()) == "monthly"
    directory = MeterDirectory()
    # Across a year end: the last hour of December and the first of January.
    with sessions.begin() as session:
        write_batch(session, batch(datetime(2024, 12, 31, 23, tzinfo=UTC), 8), directory)
    with sessions.begin() as session:
        # Months that exist are not created again.
        assert (
            directory.months.ensure(session.connection(), [datetime(2025, 1, 1, tzinfo=UTC)]) == []
        )
    engine.dispose()
    assert readings_by_table(postgres_url) == {"readings_p202412": 8, "readings_p202501": 8}


def test_a_writer_resetting_the_months_never_breaks_another_writers_ensure(
    postgres_url: str,
) -> None:
    """The ingest's writers share one `Months`; one resets it after a failed batch.

    One thread calls `ensure` again and again while another resets the same object; with
    thread switches forced every microsecond the reset lands between `ensure`'s reads of
    the known set, which raised AttributeError (or TypeError) and dead-lettered a valid
    message in CI before `ensure` read the set once.
    """
    months = partitions.Months()
    engine = make_engine(postgres_url)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reset() -> None:
        while not stop.is_set():
            months.reset()

    resetter = threading.Thread(target=reset)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        resetter.start()
        with engine.connect() as conn:
            for _ in range(300):
                try:
                    months.ensure(conn, [datetime(2025, 1, 1, tzinfo=UTC)])
                except Exception as exc:  # what the writer would have turned into a fault
                    errors.append(exc)
                    break
    finally:
        stop.set()
        resetter.join()
        sys.setswitchinterval(interval)
        engine.dispose()
    assert not errors, errors


def _wait_for_a_lock_wait(engine: Engine) -> None:
    """Return once a backend of this database waits for a lock (within 10 s)."""
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            conn.rollback()  # a new snapshot of the statistics next time
            if waiting:
                return
            time.sleep(0.02)
    pytest.fail("the second writer never waited for the first")


@pytest.mark.parametrize("reset_between", [False, True], ids=["plain", "reset-between"])
def test_a_month_another_writer_made_is_trusted_only_once_it_commits(
    postgres_url: str, reset_between: bool
) -> None:
    """Two writers share one `MeterDirectory`; the first makes a month, then rolls back.

    Had the second trusted that month before the first committed, its rows would have gone
    to the DEFAULT partition once the rollback undid the month, and that month could never
    be made again. It waits for the first writer instead, then makes the month itself.
    `reset-between`: a third writer's failure makes the directory re-read the catalogue
    while the first is still open, and the first, which sees its own month there, must not
    hand it on as made.
    """
    engine, sessions = fresh_fleet(postgres_url)
    with engine.begin() as conn:  # the month is new to this test, whichever ran before
        conn.execute(text("DROP TABLE IF EXISTS readings_p202503"))
    fleet = build_fleet(2, seed=8)
    start = datetime(2025, 3, 10, tzinfo=UTC)
    directory = MeterDirectory()
    first = sessions()
    first.begin()
    try:
        made = write_batch(first, interval_batch(fleet[:1], start, 8), directory)
        assert made.new_partitions == {"readings_p202503"}
        if reset_between:
            directory.months_unknown()
            pending = made.new_partitions
            assert directory.months.ensure(first.connection(), [start], pending) == []
    except BaseException:
        first.close()
        engine.dispose()
        raise
    failures: list[BaseException] = []

    def second_writer() -> None:
        try:
            with sessions.begin() as session:
                write_batch(session, interval_batch(fleet[1:], start, 8), directory)
        except BaseException as exc:  # reported by the assertions below
            failures.append(exc)

    second = threading.Thread(target=second_writer)
    second.start()
    _wait_for_a_lock_wait(engine)  # the second writer is waiting for the first
    first.rollback()  # the first writer's batch failed after it made the month
    first.close()
    second.join(60)
    engine.dispose()
    assert not second.is_alive()
    assert not failures, failures
    assert readings_by_table(postgres_url) == {"readings_p202503": 8}


def test_at_a_month_end_a_batch_takes_readings_before_it_makes_a_register_month(
    postgres_url: str,
) -> None:
    """Two writers at a month end: no deadlock between a readings month and a register month.

    Writer A's last intervals are May's and its register read is June's first hour; writer
    B is already storing June's intervals, having made June's readings month (which holds
    `readings` ACCESS EXCLUSIVE until it commits), and next makes June's register month.
    Had A made that register month and then waited for `readings` behind B, B would have
    waited for A: PostgreSQL aborts one of them as a deadlock. A takes `readings` first,
    so it waits holding nothing B needs.
    """
    engine, sessions = fresh_fleet(postgres_url)
    with engine.begin() as conn:  # June is new to this test, whichever ran before
        conn.execute(text("DROP TABLE IF EXISTS readings_p202506, register_reads_p202506"))
    fleet = build_fleet(2, seed=8)
    directory = MeterDirectory()  # shared, as the writers of one worker share theirs
    with sessions.begin() as session:  # May's months exist, both tables
        made = write_batch(
            session,
            interval_batch(fleet, datetime(2025, 5, 31, 20, tzinfo=UTC), 4, register=True),
            directory,
        )
    directory.months_committed(made.new_partitions)
    b = sessions()
    b.begin()
    try:
        june = write_batch(
            b, interval_batch(fleet[1:], datetime(2025, 6, 1, tzinfo=UTC), 4), directory
        )
        assert june.new_partitions == {"readings_p202506"}
    except BaseException:
        b.close()
        engine.dispose()
        raise
    failures: list[BaseException] = []

    def writer_a() -> None:
        try:
            with sessions.begin() as session:
                last_of_may = interval_batch(
                    fleet[:1], datetime(2025, 5, 31, 23, tzinfo=UTC), 4, register=True
                )
                write_batch(session, last_of_may, directory)
        except BaseException as exc:  # reported by the assertions below
            failures.append(exc)

    a = threading.Thread(target=writer_a)
    a.start()
    try:
        _wait_for_a_lock_wait(engine)  # A waits for B's `readings`
        later = interval_batch(fleet[1:], datetime(2025, 6, 1, 1, tzinfo=UTC), 4, register=True)
        more = write_batch(b, later, directory)
        assert more.new_partitions == {"register_reads_p202506"}
        b.commit()
        directory.months_committed(june.new_partitions | more.new_partitions)
    finally:
        b.close()
        a.join(60)
    engine.dispose()
    assert not a.is_alive()
    assert not failures, failures
    assert readings_by_table(postgres_url) == {"readings_p202505": 12, "readings_p202506": 8}
    assert readings_by_table(postgres_url, partitions.REGISTERS) == {
        "register_reads_p202505": 2,
        "register_reads_p202506": 2,
    }


def test_a_month_not_made_for_another_reason_is_raised_and_not_noted_as_made(
    postgres_url: str,
) -> None:
    """Only rows already in DEFAULT make a refused month final; anything else is retried.

    Here a lock timeout: swallowed, as every error once was, the month was noted as made,
    never made, and the writers put its rows in the DEFAULT partition for good.
    """
    engine, _ = fresh_fleet(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS readings_p202504"))
    months = partitions.Months()
    april = datetime(2025, 4, 3, tzinfo=UTC)
    with engine.connect() as holder:
        # Making a month locks DEFAULT exclusively (its rows are checked against the bounds).
        holder.execute(text("LOCK TABLE readings_default IN ACCESS SHARE MODE"))
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                months.ensure(conn, [april])
            conn.rollback()
        holder.rollback()
    with engine.begin() as conn:
        assert months.ensure(conn, [april]) == ["readings_p202504"]
    engine.dispose()


def test_downgrade_and_upgrade_keep_every_reading(postgres_url: str) -> None:
    engine, sessions = fresh_fleet(postgres_url)
    with sessions.begin() as session:
        write_batch(
            session,
            batch(datetime(2024, 5, 31, 12, tzinfo=UTC), 96, register=True),
            MeterDirectory(),
        )
    config = alembic_config(postgres_url)
    # Below 0011 register_reads is one table; below 0009 it is gone, so stop above that.
    command.downgrade(config, "0010_audit_kvarh")
    with sessions() as session:
        assert partitions.layout(session.connection(), partitions.REGISTERS) == "plain"
        assert session.scalar(select(func.count()).select_from(models.RegisterRead)) == 2
    command.upgrade(config, "head")
    assert readings_by_table(postgres_url, partitions.REGISTERS) == {"register_reads_p202406": 2}
    command.downgrade(config, "0005_hourly_cover")
    with sessions() as session:
        assert partitions.layout(session.connection()) == "plain"
        assert session.scalar(select(func.count()).select_from(models.Reading)) == 192
    command.upgrade(config, "head")
    with sessions() as session:
        assert partitions.layout(session.connection()) == "monthly"
        assert partitions.layout(session.connection(), partitions.REGISTERS) == "monthly"
    engine.dispose()
    assert readings_by_table(postgres_url) == {"readings_p202405": 96, "readings_p202406": 96}


def test_month_bounds_roll_over_the_year() -> None:
    low, high = partitions.month_bounds(datetime(2026, 12, 15, tzinfo=UTC))
    assert (low, high) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert partitions.month_name(datetime(2026, 12, 31, 23, 45, tzinfo=UTC)) == "readings_p202612"
    assert partitions.is_partition("readings_p202612")
    assert partitions.is_partition("readings_default")
    assert not partitions.is_partition("readings_hourly")
    assert partitions.month_name(low, partitions.REGISTERS) == "register_reads_p202612"
    assert partitions.is_partition("register_reads_p202612", partitions.REGISTERS)
    assert not partitions.is_partition("register_reads_p202612")  # not one of readings'
    assert partitions.is_any_partition("register_reads_default")
    assert partitions.is_any_partition("readings_p202612")
    assert not partitions.is_any_partition("register_reads")
