"""register_reads partitioned by time on PostgreSQL, as readings is

Revision ID: 0011_partitioned_register_reads
Revises: 0010_audit_kvarh
Create Date: 2026-12-06 22:45:00

Up to 24 register reads a meter a day: at a million meters that is 24 million rows a day,
which only partitions let anyone keep or drop by month. The table follows `readings`: a
TimescaleDB hypertable where `readings` is one (30-day chunks: a quarter of the rows),
otherwise monthly partitions on `at` with a DEFAULT partition. Writers create a month's
partition before its first reads (`app.db.partitions.Months`).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011_partitioned_register_reads'
down_revision: Union[str, Sequence[str], None] = '0010_audit_kvarh'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _readings_hypertable(bind: sa.Connection) -> bool:
    if not bind.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")):
        return False
    return bool(bind.scalar(sa.text(
        "SELECT count(*) FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'readings'"
    )))


def _set_aside() -> None:
    op.execute("ALTER TABLE register_reads RENAME TO register_reads_old")
    op.execute("ALTER TABLE register_reads_old RENAME CONSTRAINT pk_register_reads TO pk_register_reads_old")


def upgrade() -> None:
    """Upgrade schema."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite: one plain table.
    if _readings_hypertable(bind):
        # No default index on `at` alone: every read names its meter, so the primary key
        # (meter_id, at) serves them, as on the partitioned layout.
        op.execute(
            "SELECT create_hypertable('register_reads', 'at', "
            "chunk_time_interval => INTERVAL '30 days', migrate_data => true, "
            "create_default_indexes => false, if_not_exists => true)"
        )
        return
    _set_aside()
    op.execute(
        "CREATE TABLE register_reads (LIKE register_reads_old INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (at)"
    )
    op.execute("ALTER TABLE register_reads ADD CONSTRAINT pk_register_reads PRIMARY KEY (meter_id, at)")
    op.execute("CREATE TABLE register_reads_default PARTITION OF register_reads DEFAULT")
    months = bind.scalars(sa.text(
        "SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC') FROM register_reads_old"
    )).all()
    for month in months:
        nxt = f"(TIMESTAMP '{month}' + INTERVAL '1 month') AT TIME ZONE 'UTC'"
        op.execute(
            f"CREATE TABLE register_reads_p{month:%Y%m} PARTITION OF register_reads "
            f"FOR VALUES FROM (TIMESTAMP '{month}' AT TIME ZONE 'UTC') TO ({nxt})"
        )
    op.execute("INSERT INTO register_reads SELECT * FROM register_reads_old")
    op.execute("DROP TABLE register_reads_old")
    op.execute("ANALYZE register_reads")


def downgrade() -> None:
    """Downgrade schema."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Hypertable or partitioned alike: copy back into one plain table.
    _set_aside()
    op.execute("CREATE TABLE register_reads (LIKE register_reads_old INCLUDING DEFAULTS)")
    op.execute("INSERT INTO register_reads SELECT * FROM register_reads_old")
    op.execute("DROP TABLE register_reads_old CASCADE")
    op.execute("ALTER TABLE register_reads ADD CONSTRAINT pk_register_reads PRIMARY KEY (meter_id, at)")
    op.execute("ANALYZE register_reads")
