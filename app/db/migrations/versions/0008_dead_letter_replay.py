"""dead letters remember when they were replayed

Revision ID: 0008_dead_letter_replay
Revises: 0007_lean_readings
Create Date: 2026-12-06 16:30:00

A dead letter can be published again on its topic once its cause is mended (a meter
provisioned after its first readings arrived, say); the row stays, with the time.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0008_dead_letter_replay'
down_revision: Union[str, Sequence[str], None] = '0007_lean_readings'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("replayed_at")
