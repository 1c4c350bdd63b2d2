"""register reads from interval messages, for VEE's sum check

Revision ID: 0009_register_reads
Revises: 0008_dead_letter_replay
Create Date: 2026-12-07 10:00:00

An interval message may carry the meter's cumulative registers after its newest reading;
they are kept once per meter and instant so VEE can compare a register delta with the sum
of the intervals between two reads. No foreign key to meters, as on readings.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009_register_reads'
down_revision: Union[str, Sequence[str], None] = '0008_dead_letter_replay'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "register_reads",
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kwh", sa.Float(), nullable=False),
        sa.Column("kvarh", sa.Float(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "at", name=op.f("pk_register_reads")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("register_reads")
