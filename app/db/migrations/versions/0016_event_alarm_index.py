"""events indexed by (meter_id, at DESC, id DESC) for a tenant's open alarms

Revision ID: 0016_event_alarm_index
Revises: 0015_tenant_newest_indexes
Create Date: 2026-12-07 16:50:00

A tenant's open alarms (the alarm list and the live tick's count) walked the whole fleet's
events newest first until its own turned up: every event when the tenant had none lately.
They now read each visible meter's newest alarm events from this index.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0016_event_alarm_index'
down_revision: Union[str, Sequence[str], None] = '0015_tenant_newest_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_events_meter_at',
            ['meter_id', sa.text('at DESC'), sa.text('id DESC')],
            unique=False,
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_meter_at')
