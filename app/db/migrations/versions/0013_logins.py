"""logins (sessions and API tokens held server-side) and login failures (the throttle)

Revision ID: 0013_logins
Revises: 0012_audit_withdrawn_estimates
Create Date: 2026-12-07 13:30:00

A signed cookie or token alone could not be taken back: logging out, or a new password,
left a copied cookie or token working until it expired. Each login is now a row that
logout deletes and a password change deletes for every login of the user. Failed logins
are kept for the throttle's window (app.domain.throttle).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0013_logins'
down_revision: Union[str, Sequence[str], None] = '0012_audit_withdrawn_estimates'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('logins',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_logins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_logins'))
    )
    with op.batch_alter_table('logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logins_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_logins_expires_at'), ['expires_at'], unique=False)
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)
        batch_op.create_index('ix_login_failures_email_at', ['email', 'at'], unique=False)
        batch_op.create_index('ix_login_failures_address_at', ['address', 'at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('login_failures')
    op.drop_table('logins')
