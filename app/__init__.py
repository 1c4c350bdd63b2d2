"""Wattline portal and ingest service; `flask --app app run` finds `create_app` here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Create the Flask portal; Flask is imported lazily so workers never load it."""
    from app.web.factory import create_app as factory

    return factory(settings)


def create_portal(settings: Settings | None = None) -> Flask:
    """Create the portal for a long-lived server process (gunicorn): warmed, startup heap frozen."""
    from app.web.factory import create_app as factory
    from app.web.factory import settle

    return settle(factory(settings))
