"""readings and rollups without foreign keys; received_at by BRIN; no index on start alone

Revision ID: 0007_lean_readings
Revises: 0006_partitioned_readings
Create Date: 2026-12-06 05:00:00

PostgreSQL checks a foreign key one inserted row at a time: on a COPY of readings that check
cost 6 of the 9 µs a row took, and the two secondary B-trees most of the rest (measured in
docs/ingest.md). Meters are never deleted and only code that looked the meter up writes
readings, so the keys go; received_at, which grows with the table, gets a BRIN index.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0007_lean_readings'
down_revision: Union[str, Sequence[str], None] = '0006_partitioned_readings'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ROLLUPS = ("readings_hourly", "readings_daily")


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE readings DROP CONSTRAINT fk_readings_meter_id_meters")
        for table in ROLLUPS:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_meter_id_meters")
        op.execute("DROP INDEX ix_readings_start")
        op.execute("DROP INDEX ix_readings_received_at")
        op.execute("CREATE INDEX ix_readings_received_at ON readings USING brin (received_at)")
        return
    # SQLite cannot drop a constraint in place: batch mode rebuilds each table.
    with op.batch_alter_table("readings", recreate="always") as batch:
        batch.drop_constraint("fk_readings_meter_id_meters", type_="foreignkey")
        batch.drop_index("ix_readings_start")
    for table in ROLLUPS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(f"fk_{table}_meter_id_meters", type_="foreignkey")


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_readings_received_at")
        op.execute("CREATE INDEX ix_readings_received_at ON readings (received_at)")
        op.execute("CREATE INDEX ix_readings_start ON readings (start)")
        for table in ("readings", *ROLLUPS):
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_meter_id_meters "
                "FOREIGN KEY (meter_id) REFERENCES meters (id)"
            )
        return
    with op.batch_alter_table("readings", recreate="always") as batch:
        batch.create_foreign_key("fk_readings_meter_id_meters", "meters", ["meter_id"], ["id"])
        batch.create_index("ix_readings_start", ["start"])
    for table in ROLLUPS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.create_foreign_key(f"fk_{table}_meter_id_meters", "meters", ["meter_id"], ["id"])
