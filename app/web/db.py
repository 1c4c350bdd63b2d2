"""Per-request database session and settings access for views."""

from __future__ import annotations

from typing import cast

from flask import current_app, g
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings


def settings() -> Settings:
    """Return the app's Settings."""
    return cast(Settings, current_app.extensions["wattline"]["settings"])


def db() -> Session:
    """Return this request's session, opening it on first use."""
    if "db" not in g:
        factory = cast(sessionmaker[Session], current_app.extensions["wattline"]["sessions"])
        g.db = factory()
    return cast(Session, g.db)


def close_session(exc: BaseException | None) -> None:
    """Close the request's session at teardown."""
    session: Session | None = g.pop("db", None)
    if session is not None:
        session.close()
