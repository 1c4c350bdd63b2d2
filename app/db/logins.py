"""Server-side logins (sessions and API tokens) and the failed-login record behind the throttle."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.db import models
from app.domain import throttle

SESSION = "session"
TOKEN = "token"  # noqa: S105 - a kind of login, not a secret


def open_login(
    session: Session, user_id: int, kind: str, now: datetime, lifetime: timedelta
) -> str:
    """Record a new login of `kind` for the user and return its id (the caller commits)."""
    # Expired logins are swept here, where they are made, so the table stays small.
    session.execute(delete(models.Login).where(models.Login.expires_at <= now))
    login_id = secrets.token_urlsafe(32)
    session.add(
        models.Login(
            id=login_id, user_id=user_id, kind=kind, created_at=now, expires_at=now + lifetime
        )
    )
    return login_id


def user_of(session: Session, login_id: str, user_id: int, now: datetime) -> models.User | None:
    """Return the user of a login that exists, is theirs and has not expired (one query)."""
    return session.scalar(
        select(models.User)
        .join(models.Login, models.Login.user_id == models.User.id)
        .where(
            models.Login.id == login_id,
            models.Login.user_id == user_id,
            models.Login.expires_at > now,
        )
    )


def close_login(session: Session, login_id: str) -> None:
    """End one login (the caller commits)."""
    session.execute(delete(models.Login).where(models.Login.id == login_id))


def close_all(session: Session, user_id: int) -> int:
    """End every login of a user, as a password change must; return how many (caller commits)."""
    result = session.execute(delete(models.Login).where(models.Login.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def retry_after(session: Session, email: str, address: str, now: datetime) -> timedelta | None:
    """Return how long the e-mail or the address must wait before another try, if at all."""
    since = now - throttle.WINDOW
    failures = models.LoginFailure

    def newest(column: InstrumentedAttribute[str], value: str, limit: int) -> list[datetime]:
        return list(
            session.scalars(
                select(failures.at)
                .where(column == value, failures.at > since)
                .order_by(failures.at.desc())
                .limit(limit)
            )
        )

    return throttle.retry_after(
        newest(failures.email, throttle.account_key(email), throttle.ACCOUNT_LIMIT),
        newest(failures.address, address, throttle.ADDRESS_LIMIT),
        now,
    )


def record_failure(session: Session, email: str, address: str, now: datetime) -> None:
    """Keep a failed login for the throttle and sweep the ones out of its window (caller commits)."""
    session.execute(
        delete(models.LoginFailure).where(models.LoginFailure.at <= now - throttle.WINDOW)
    )
    session.add(
        models.LoginFailure(at=now, email=throttle.account_key(email), address=address[:64])
    )


def clear_failures(session: Session, email: str) -> None:
    """Forget an account's failures once its password was given (caller commits)."""
    session.execute(
        delete(models.LoginFailure).where(models.LoginFailure.email == throttle.account_key(email))
    )
