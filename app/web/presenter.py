"""Presenter mode: large type and high contrast for a projector, remembered per session."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, request, session, url_for
from flask_login import login_required

bp = Blueprint("presenter", __name__, url_prefix="/presenter")


def presenter_on() -> bool:
    """Return True if this browser session is in presenter mode."""
    return bool(session.get("presenter"))


@bp.post("/toggle")
@login_required
def toggle() -> Any:
    """Switch presenter mode on or off and return to the page the user was on."""
    session["presenter"] = not presenter_on()
    target = request.form.get("next", "")
    # Only same-site paths: an open redirect would let a link bounce users anywhere.
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        target = url_for("fleet.overview")
    return redirect(target)
