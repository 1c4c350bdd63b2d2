"""indexes for a tenant's newest audit entries and dead letters

Revision ID: 0015_tenant_newest_indexes
Revises: 0014_event_feed_index
Create Date: 2026-12-07 13:35:00

A tenant's audit list and dead-letter page walked the whole table newest first until
their own rows turned up: every row when the tenant had none lately. They now read each
visible utility's (or meter's) newest rows from these indexes.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0015_tenant_newest_indexes'
down_revision: Union[str, Sequence[str], None] = '0014_event_feed_index'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(
            'ix_audit_log_utility_newest',
            ['utility_id', sa.text('at DESC'), sa.text('id DESC')],
            unique=False,
        )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(
            'ix_dead_letters_meter_newest', ['meter_id', sa.text('id DESC')], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_meter_newest')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_utility_newest')
