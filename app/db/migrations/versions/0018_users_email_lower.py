"""users.email stored in lower case, so its unique constraint ignores case

Revision ID: 0018_users_email_lower
Revises: 0017_hourly_cover_quality
Create Date: 2026-12-08 00:40:00

Logins were looked up case-insensitively but stored as typed, so Ann@x and ann@x could be
two users. The model now lower-cases every address it stores; this lower-cases the ones
already there, and stops with the colliding addresses if two differ only in case (merge or
rename them, then upgrade again). The downgrade keeps the lower-case addresses: the case
they were typed in is gone, and logins never depended on it.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0018_users_email_lower'
down_revision: Union[str, Sequence[str], None] = '0017_hourly_cover_quality'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    bind = op.get_bind()
    # Lower-cased here in Python, as the model does: SQL lower() leaves non-ASCII capitals
    # (SQLite always, PostgreSQL under the C collation), and email_validator accepts them.
    rows = bind.execute(sa.text("SELECT id, email FROM users ORDER BY id")).all()
    seen: dict[str, list[str]] = {}
    for _id, email in rows:
        seen.setdefault(email.strip().lower(), []).append(email)
    clashes = sorted(lower for lower, emails in seen.items() if len(emails) > 1)
    if clashes:
        raise RuntimeError(
            "users whose e-mail addresses differ only in case: "
            + ", ".join(clashes)
            + "; merge or rename them (python -m app.manage create-user), then upgrade again"
        )
    update = sa.text("UPDATE users SET email = :email WHERE id = :id")
    for id_, email in rows:
        if email != email.strip().lower():
            bind.execute(update, {"id": id_, "email": email.strip().lower()})


def downgrade() -> None:
    """Downgrade schema (addresses stay in lower case)."""
