"""the hourly rollups' time index also covers the valid and questionable counts

Revision ID: 0017_hourly_cover_quality
Revises: 0016_event_alarm_index
Create Date: 2026-12-07 17:40:00

The segment pages count each utility's intervals read in its last day (valid plus
questionable) from the hourly rollups of one time window: with the counts in the index
that is answered from the index alone, not from 240,000 heap rows at 10,000 meters (the
IOU page's largest query). Rebuilding the index locks writes to the rollups while it runs.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0017_hourly_cover_quality'
down_revision: Union[str, Sequence[str], None] = '0016_event_alarm_index'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BEFORE = ['start', 'meter_id', 'kwh', 'kvarh', 'intervals']


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('readings_hourly', schema=None) as batch_op:
        batch_op.drop_index('ix_readings_hourly_start_meter')
        batch_op.create_index(
            'ix_readings_hourly_start_meter', [*BEFORE, 'valid', 'questionable'], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('readings_hourly', schema=None) as batch_op:
        batch_op.drop_index('ix_readings_hourly_start_meter')
        batch_op.create_index('ix_readings_hourly_start_meter', BEFORE, unique=False)
