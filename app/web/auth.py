"""Login, logout, the session user, and bearer tokens for API clients."""

from __future__ import annotations

import functools
import math
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Request,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from app.db import logins, models
from app.db.queries import find_user
from app.db.seed import DEMO_EMAILS
from app.domain.access import ROLE_LABELS, Role, Scope, scope_for
from app.domain.numbers import MAX_ID, whole_number
from app.web.db import db, settings

bp = Blueprint("auth", __name__)
TOKEN_MAX_AGE_S = 24 * 3600
SESSION_LIFETIME = timedelta(hours=12)
_TOKEN_SALT = "wattline-api-token"  # noqa: S105 - a namespace for signing, not a secret


@dataclass(frozen=True)
class PortalUser:
    """The logged-in user as views see it: identity, role and tenant scope."""

    id: int
    email: str
    name: str
    role: Role
    scope: Scope
    distributor_id: str | None
    utility_id: str | None
    # The row in `logins` this request's session or token stands for ("" before login).
    login_id: str = ""
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        """Return what Flask-Login stores in the session: the user and the login's row."""
        return f"{self.id}:{self.login_id}"

    @property
    def role_label(self) -> str:
        """Return the role's display name."""
        return ROLE_LABELS[self.role]

    @classmethod
    def from_model(cls, user: models.User) -> PortalUser:
        """Build from the database row."""
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=Role(user.role),
            scope=scope_for(user.role, user.distributor_id, user.utility_id),
            distributor_id=user.distributor_id,
            utility_id=user.utility_id,
        )


def user() -> PortalUser:
    """Return the current authenticated user (call only behind login_required)."""
    found: Any = current_user
    if not isinstance(found, PortalUser):
        raise RuntimeError("no authenticated user in this request")
    return found


def load_user(user_id: str) -> PortalUser | None:
    """Load the session's user, or None if logged out, expired, gone or deactivated."""
    number, _, login_id = user_id.partition(":")
    return _load(whole_number(number), login_id)


def _load(number: int | None, login_id: str) -> PortalUser | None:
    if number is None or not 1 <= number <= MAX_ID or not login_id:
        return None
    # Every request runs this: the login's row and its user in one query.
    row = logins.user_of(db(), login_id, number, datetime.now(UTC))
    if row is None or not row.active or _demo_login_outside_demo(row.email):
        return None
    return replace(PortalUser.from_model(row), login_id=login_id)


def _demo_login_outside_demo(email: str) -> bool:
    # The demo logins share a published password: a database seeded for a demo and then
    # served with WATTLINE_DEMO off must not let them in (nor their sessions or tokens).
    return email in DEMO_EMAILS and not settings().demo_mode


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_TOKEN_SALT)


def issue_token(portal_user: PortalUser) -> str:
    """Sign a bearer token for a user, recorded as a login of its own so it can be revoked."""
    login_id = logins.open_login(
        db(), portal_user.id, logins.TOKEN, datetime.now(UTC), timedelta(seconds=TOKEN_MAX_AGE_S)
    )
    db().commit()
    return _serializer().dumps({"uid": portal_user.id, "lid": login_id})


def load_user_from_bearer(req: Request) -> PortalUser | None:
    """Authenticate an `Authorization: Bearer` header, if present, valid and not revoked."""
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        data = _serializer().loads(header[7:].strip(), max_age=TOKEN_MAX_AGE_S)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict):
        return None
    uid, login_id = data.get("uid"), data.get("lid")
    if not isinstance(uid, int) or isinstance(uid, bool) or not isinstance(login_id, str):
        return None
    return _load(uid, login_id)


# What a 401 from the API asks for (RFC 9110 requires the header on every 401).
CHALLENGE = WWWAuthenticate("bearer", {"realm": "wattline"})


def refused(description: str) -> Unauthorized:
    """A 401 for the API, with its challenge."""
    return Unauthorized(description=description, www_authenticate=CHALLENGE)


def unauthorized() -> Any:
    """Answer JSON 401 to API calls and redirect people to the login page."""
    if request.path.startswith("/api/"):
        body = jsonify(error="Unauthorized", message="log in or send a bearer token", status=401)
        return body, 401, {"WWW-Authenticate": CHALLENGE.to_header()}
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


class LoginThrottled(Exception):
    """Too many failed logins for the e-mail or from the address: wait `seconds`."""

    def __init__(self, wait: timedelta) -> None:
        self.seconds = max(1, math.ceil(wait.total_seconds()))
        minutes = math.ceil(self.seconds / 60)
        super().__init__(
            f"too many failed logins; try again in {minutes} minute{'' if minutes == 1 else 's'}"
        )


@functools.cache
def _no_such_user_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(24))


def authenticate(email: str, password: str) -> PortalUser | None:
    """Check credentials; None if they do not match an active user (the failure is counted).

    Raises LoginThrottled, without checking the password, while the e-mail or the address
    has had too many failures (app.domain.throttle).
    """
    now = datetime.now(UTC)
    address = request.remote_addr or ""
    wait = logins.retry_after(db(), email, address, now)
    if wait is not None:
        raise LoginThrottled(wait)
    row = find_user(db(), email)
    # An unknown e-mail costs a hash check too: answering it faster would tell which exist.
    matched = check_password_hash(row.password_hash if row else _no_such_user_hash(), password)
    if row is None or not matched or _demo_login_outside_demo(row.email):
        logins.record_failure(db(), email, address, now)
        db().commit()
        return None
    logins.clear_failures(db(), email)
    db().commit()
    return PortalUser.from_model(row)


def revoke_login(found: PortalUser) -> None:
    """End the one login (browser session or API token) the user came in with."""
    if found.login_id:
        logins.close_login(db(), found.login_id)
        db().commit()


def start_session(found: PortalUser) -> None:
    """Log the user in to this browser with a fresh session and a login row of its own."""
    # Nothing set before the login survives it: a CSRF secret planted in the cookie by
    # someone else, or the last presenter's mode on a shared laptop.
    session.clear()
    login_id = logins.open_login(
        db(), found.id, logins.SESSION, datetime.now(UTC), SESSION_LIFETIME
    )
    db().commit()
    login_user(replace(found, login_id=login_id))


class LoginForm(FlaskForm):  # type: ignore[misc]
    """E-mail and password, CSRF-protected."""

    email = EmailField(
        "E-mail", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect would make phishing easy.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("fleet.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form and log the user in."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            found = authenticate(form.email.data or "", form.password.data or "")
        except LoginThrottled as exc:
            flash(f"{str(exc).capitalize()}.", "error")
            page = render_template("login.html", form=form)
            return page, 429, {"Retry-After": str(exc.seconds)}
        if found is not None:
            start_session(found)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown e-mail or wrong password.", "error")
        return render_template("login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Log out (POST, so a link on another site cannot do it); a copy of the cookie dies too."""
    revoke_login(user())
    logout_user()
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))
