"""Create the Flask portal: settings, database, login, CSRF, blueprints, error pages."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
from flask import Flask, Response, g, jsonify, render_template, request, send_from_directory
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from app.command_bus import CommandBus
from app.config import Settings
from app.db.queries import PastLoads
from app.db.session import make_engine, make_sessionmaker
from app.domain.segments import may_view_segment
from app.web import auth
from app.web.db import close_session

PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
# Files the same for everyone, which browsers may cache.
STATIC_ENDPOINTS = frozenset({"static", "plotly_js"})


def create_app(settings: Settings | None = None) -> Flask:
    """Build the portal for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    if not settings.secret_key:
        raise RuntimeError(
            "SECRET_KEY is not set: export SECRET_KEY (or WATTLINE_DEMO=1 for a demo)"
        )
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
        # A form's token lives as long as the login it belongs to (a day's demo on one page).
        WTF_CSRF_TIME_LIMIT=int(auth.SESSION_LIFETIME.total_seconds()),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_SECURE=settings.https,
        REMEMBER_COOKIE_SECURE=settings.https,
    )
    if settings.https:
        # Behind the TLS proxy every request reaches us as plain HTTP from the proxy's
        # address: take the scheme, host and client address from its one hop of headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    engine = make_engine(settings.database_url)
    app.extensions["wattline"] = {
        "settings": settings,
        "engine": engine,
        "sessions": make_sessionmaker(engine),
        "commands": CommandBus(settings.mqtt_url, settings.topic_prefix),
        "past_loads": PastLoads(),
    }
    app.teardown_appcontext(close_session)

    # First of the before_request hooks, so Server-Timing covers everything the app does.
    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    login = LoginManager(app)
    login.login_view = "auth.login"
    login.login_message = "Please log in to see the fleet."
    login.user_loader(auth.load_user)
    login.request_loader(auth.load_user_from_bearer)
    login.unauthorized_handler(auth.unauthorized)

    csrf = CSRFProtect(app)

    from app.web import (
        alarms,
        api,
        commands,
        deadletters,
        demo_control,
        fleet,
        meters,
        partners,
        presenter,
        roi,
        segments,
        story,
    )
    from app.web import exports as exports_api

    app.register_blueprint(auth.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(meters.bp)
    app.register_blueprint(segments.bp)
    app.register_blueprint(alarms.bp)
    app.register_blueprint(alarms.api_bp)
    app.register_blueprint(presenter.bp)
    app.register_blueprint(demo_control.bp)
    app.register_blueprint(story.bp)
    app.register_blueprint(commands.api_bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(roi.bp)
    app.register_blueprint(roi.api_bp)
    app.register_blueprint(exports_api.bp)
    app.register_blueprint(deadletters.bp)
    app.register_blueprint(partners.bp)
    app.register_blueprint(partners.api_bp)
    # The API authenticates with bearer tokens; session-cookie writes are checked in api.py.
    csrf.exempt(api.bp)
    csrf.exempt(alarms.api_bp)
    csrf.exempt(commands.api_bp)
    csrf.exempt(roi.api_bp)
    csrf.exempt(exports_api.bp)
    csrf.exempt(partners.api_bp)
    app.before_request(api.check_api_input)

    @app.get("/vendor/plotly.min.js")
    def plotly_js() -> Response:
        """Serve plotly.js from the installed plotly package: no CDN, works offline."""
        return send_from_directory(PLOTLY_DIR, "plotly.min.js", max_age=86400)

    app.add_template_filter(detail_value, "detail")

    @app.context_processor
    def inject() -> dict[str, Any]:
        from app.web.presenter import presenter_on

        return {
            "demo_mode": settings.demo_mode,
            "may_view_segment": may_view_segment,
            "presenter": presenter_on(),
        }

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        return render_template("error.html", code=400, message=exc.description), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        # The exception's own headers (a 405's Allow, a 401's WWW-Authenticate), not its
        # Content-Type: the body is ours.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if request.path.startswith("/api/"):
            return jsonify(error=exc.name, message=exc.description, status=code), code, headers
        page = render_template("error.html", code=code, message=exc.description)
        return page, code, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        # Never a stack trace in front of a customer: log it, show a plain page.
        app.logger.exception("unhandled error on %s", request.path)
        if request.path.startswith("/api/"):
            return jsonify(
                error="Internal Server Error", message="unexpected error; it was logged", status=500
            ), 500
        return render_template(
            "error.html", code=500, message="Something went wrong; it was logged."
        ), 500

    @app.after_request
    def security_headers(response: Response) -> Response:
        started = g.get("request_started")
        if started is not None:
            # Server time for the browser's network panel and the page benchmark.
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Scripts only from the portal itself: no inline script, no eval (the scatter and
        # bar traces used here never build functions at run time; the e2e tests fail on
        # any console error, a refused eval included).
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        if request.endpoint not in STATIC_ENDPOINTS:
            # Tenant data must not stay in a shared browser's or a proxy's cache.
            response.headers.setdefault("Cache-Control", "no-store")
        if settings.https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    return app


def settle(app: Flask) -> Flask:
    """Load what the first requests would (plotly's trace types, every template), then freeze.

    A server process holds about 220,000 objects once the portal is loaded and plotly's
    validators are in. Python's oldest-generation collection walks all of them: about
    120 ms, landing on every fifteenth or so page request (the fleet overview's p50 was
    60 ms and its p95 over 200 ms). `gc.freeze()` moves them out of every later
    collection (a full one then takes about 11 ms). Not in `create_app`: tests build many
    apps in one process, and freezing each one's leftovers would keep them for good.
    """
    figure = go.Figure([go.Scatter(x=[0], y=[0]), go.Bar(x=[0], y=[0])])
    figure.update_layout(title="warm-up", barmode="stack", yaxis2={"overlaying": "y"})
    figure.to_json()
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)
    gc.collect()
    gc.freeze()
    return app


def detail_value(value: Any) -> str:
    """Show an event detail in words: lists joined, yes/no for flags (not Python's repr)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(detail_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {detail_value(v)}" for k, v in value.items())
    return str(value)
