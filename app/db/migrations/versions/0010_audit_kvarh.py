"""the audit trail keeps kVArh as well as kWh and kW

Revision ID: 0010_audit_kvarh
Revises: 0009_register_reads
Create Date: 2026-12-06 22:20:00

An actual replacing an estimate, an edit or an import changes the interval's reactive
energy too. Changes recorded before this revision have no kVArh (NULL).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0010_audit_kvarh'
down_revision: Union[str, Sequence[str], None] = '0009_register_reads'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("reading_audit", sa.Column("old_kvarh", sa.Float(), nullable=True))
    op.add_column("reading_audit", sa.Column("new_kvarh", sa.Float(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("reading_audit") as batch:
        batch.drop_column("new_kvarh")
        batch.drop_column("old_kvarh")
