"""meter data management: reading audit trail, estimated-readings index, dead-letter meter,
hourly and daily rollups

Revision ID: 0002_mdm
Revises: 0003_commands
Create Date: 2026-11-25 22:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002_mdm'
down_revision: Union[str, Sequence[str], None] = '0003_commands'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ESTIMATED = sa.text("quality IN ('estimated-linear', 'estimated-reference-day')")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('reading_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=24), nullable=False),
    sa.Column('old_kwh', sa.Float(), nullable=True),
    sa.Column('old_demand_kw', sa.Float(), nullable=True),
    sa.Column('old_quality', sa.String(length=24), nullable=True),
    sa.Column('new_kwh', sa.Float(), nullable=False),
    sa.Column('new_demand_kw', sa.Float(), nullable=False),
    sa.Column('new_quality', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_reading_audit_meter_id_meters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reading_audit'))
    )
    with op.batch_alter_table('reading_audit', schema=None) as batch_op:
        batch_op.create_index('ix_reading_audit_meter_start', ['meter_id', 'start'], unique=False)
        batch_op.create_index(batch_op.f('ix_reading_audit_changed_at'), ['changed_at'], unique=False)

    op.create_table('readings_hourly',
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kwh', sa.Float(), nullable=False),
    sa.Column('kvarh', sa.Float(), nullable=False),
    sa.Column('peak_kw', sa.Float(), nullable=False),
    sa.Column('peak_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('power_factor', sa.Float(), nullable=True),
    sa.Column('intervals', sa.Integer(), nullable=False),
    sa.Column('valid', sa.Integer(), nullable=False),
    sa.Column('estimated', sa.Integer(), nullable=False),
    sa.Column('questionable', sa.Integer(), nullable=False),
    sa.Column('edited', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_readings_hourly_meter_id_meters')),
    sa.PrimaryKeyConstraint('meter_id', 'start', name=op.f('pk_readings_hourly'))
    )
    op.create_table('readings_daily',
    sa.Column('meter_id', sa.String(length=64), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kwh', sa.Float(), nullable=False),
    sa.Column('kvarh', sa.Float(), nullable=False),
    sa.Column('peak_kw', sa.Float(), nullable=False),
    sa.Column('peak_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('power_factor', sa.Float(), nullable=True),
    sa.Column('intervals', sa.Integer(), nullable=False),
    sa.Column('valid', sa.Integer(), nullable=False),
    sa.Column('estimated', sa.Integer(), nullable=False),
    sa.Column('questionable', sa.Integer(), nullable=False),
    sa.Column('edited', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_readings_daily_meter_id_meters')),
    sa.PrimaryKeyConstraint('meter_id', 'start', name=op.f('pk_readings_daily'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meter_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_dead_letters_meter_id'), ['meter_id'], unique=False)

    op.create_index(
        'ix_readings_estimated', 'readings', ['meter_id', 'start'], unique=False,
        sqlite_where=ESTIMATED, postgresql_where=ESTIMATED,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_readings_estimated', table_name='readings')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_meter_id'))
        batch_op.drop_column('meter_id')
    with op.batch_alter_table('reading_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reading_audit_changed_at'))
        batch_op.drop_index('ix_reading_audit_meter_start')

    op.drop_table('reading_audit')
    op.drop_table('readings_daily')
    op.drop_table('readings_hourly')
