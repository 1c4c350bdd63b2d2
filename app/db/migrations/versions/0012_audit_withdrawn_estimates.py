"""the audit trail records an estimate VEE withdraws (new values null)

Revision ID: 0012_audit_withdrawn_estimates
Revises: 0011_partitioned_register_reads
Create Date: 2026-12-07 10:20:00

A VEE rerun that can no longer estimate a slot (its end point is now questionable, the
linear limit was shortened, the reference days are gone) removes the estimate it stored
before; the trail keeps the old values with no new ones.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0012_audit_withdrawn_estimates'
down_revision: Union[str, Sequence[str], None] = '0011_partitioned_register_reads'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("reading_audit") as batch:
        batch.alter_column("new_kwh", existing_type=sa.Float(), nullable=True)
        batch.alter_column("new_demand_kw", existing_type=sa.Float(), nullable=True)
        batch.alter_column("new_quality", existing_type=sa.String(length=24), nullable=True)


def downgrade() -> None:
    """Downgrade schema."""
    # Below this revision the trail cannot say "withdrawn": refuse rather than delete history.
    withdrawn = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM reading_audit WHERE new_quality IS NULL")
    )
    if withdrawn:
        raise RuntimeError(
            f"{withdrawn} reading_audit rows record withdrawn estimates (no new values), which "
            "the schema below 0012 cannot hold; export them and delete them to downgrade"
        )
    with op.batch_alter_table("reading_audit") as batch:
        batch.alter_column("new_quality", existing_type=sa.String(length=24), nullable=False)
        batch.alter_column("new_demand_kw", existing_type=sa.Float(), nullable=False)
        batch.alter_column("new_kwh", existing_type=sa.Float(), nullable=False)
