"""Login, logout, the session user, and bearer tokens for API clients."""

from __future__ import annotations

from dataclasses import dataclass
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
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from app.db import models
from app.db.queries import find_user
from app.db.seed import DEMO_EMAILS
from app.domain.access import ROLE_LABELS, Role, Scope, scope_for
from app.domain.numbers import MAX_ID, whole_number
from app.web.db import db, settings

bp = Blueprint("auth", __name__)
TOKEN_MAX_AGE_S = 24 * 3600
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
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        """Return the id Flask-Login stores in the session."""
        return str(self.id)

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
    """Load the session's user, or None if gone or deactivated."""
    number = whole_number(user_id)
    if number is None or not 1 <= number <= MAX_ID:
        return None
    row = db().get(models.User, number)
    if row is None or not row.active or _demo_login_outside_demo(row.email):
        return None
    return PortalUser.from_model(row)


def _demo_login_outside_demo(email: str) -> bool:
    # The demo logins share a published password: a database seeded for a demo and then
    # served with WATTLINE_DEMO off must not let them in (nor their sessions or tokens).
    return email in DEMO_EMAILS and not settings().demo_mode


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_TOKEN_SALT)


def issue_token(portal_user: PortalUser) -> str:
    """Sign a bearer token for a user."""
    return _serializer().dumps({"uid": portal_user.id})


def load_user_from_bearer(req: Request) -> PortalUser | None:
    """Authenticate an `Authorization: Bearer` header, if present and valid."""
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        data = _serializer().loads(header[7:].strip(), max_age=TOKEN_MAX_AGE_S)
    except (BadSignature, SignatureExpired):
        return None
    uid = data.get("uid") if isinstance(data, dict) else None
    return load_user(str(uid)) if isinstance(uid, int) else None


def unauthorized() -> Any:
    """Answer JSON 401 to API calls and redirect people to the login page."""
    if request.path.startswith("/api/"):
        return jsonify(
            error="Unauthorized", message="log in or send a bearer token", status=401
        ), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def authenticate(email: str, password: str) -> PortalUser | None:
    """Check credentials; None if they do not match an active user."""
    row = find_user(db(), email)
    if row is None or not check_password_hash(row.password_hash, password):
        return None
    if _demo_login_outside_demo(row.email):
        return None
    return PortalUser.from_model(row)


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
        found = authenticate(form.email.data or "", form.password.data or "")
        if found is not None:
            login_user(found)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown e-mail or wrong password.", "error")
        return render_template("login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Log out (POST, so a link on another site cannot do it)."""
    logout_user()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))
