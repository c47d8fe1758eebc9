"""Console sessions, CSRF tokens, the security headers and the error pages.

The session cookie (Flask's signed cookie, HttpOnly, SameSite=Strict, path /admin) holds the admin's id, the
secret version they logged in with, and a random nonce; services/console_auth.py decides whether that is
still a live session. The CSRF token is an HMAC of the nonce: every POST form carries it, compared in
constant time, and a POST without it (or with another) is refused with 400 before its view runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException

from ..actors import Principal
from ..errors import DomainError, RateLimited
from ..extensions import db_session, kv_store
from ..services import console_auth

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Pages, not API operations: APIFlask leaves blueprints with this flag off out of /openapi.json.
bp.enable_openapi = False  # type: ignore[attr-defined]

F = TypeVar("F", bound=Callable[..., Any])

# Everything from this origin, nothing inline, never framed: the templates use static CSS and JS files only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, marked Secure when the request came over https or a setting says so."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.extensions["rayfleet.settings"].console_cookie_secure or request.is_secure)

    def open_session(self, app: Flask, request: Any) -> Any:
        # Outside the cookie's path no browser sends it and nothing stores one: the API's requests (a node's
        # heartbeat, the bot's calls) get Flask's null session instead of a signing serializer built per request.
        if not path_matches(request.path, self.get_cookie_path(app)):
            return None
        return super().open_session(app, request)


def path_matches(path: str, cookie_path: str) -> bool:
    """RFC 6265's path-match, as browsers decide where a cookie goes: /admin covers /admin and /admin/...,
    not /administrator."""
    return path == cookie_path or path.startswith(cookie_path if cookie_path.endswith("/") else cookie_path + "/")


def init_session(app: Flask) -> None:
    settings = app.extensions["rayfleet.settings"]
    # The cookie signing key is derived from JWT_SECRET_KEY, labelled, so no second secret has to be set.
    app.secret_key = hmac.new(settings.jwt_secret_key.encode(), b"rayfleet-console-session", hashlib.sha256).digest()
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="rayfleet_console",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )


def console_settings() -> Any:
    return current_app.extensions["rayfleet.settings"]


def csrf_token() -> str:
    """This session's form token (the login page gets a nonce of its own before anyone logs in)."""
    nonce = session.get("n")
    if not nonce:
        # Not a session yet (nothing is stored for it): login() starts the real one with a fresh nonce.
        nonce = session["n"] = secrets.token_urlsafe(24)
    return hmac.new(current_app.secret_key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()  # type: ignore[arg-type]


@bp.app_template_global("csrf_token")
def _csrf_token_global() -> str:
    return csrf_token()


@bp.app_template_filter("as_json")
def _as_json(value: Any) -> str:
    """JSON as people read it (no \\u escapes); the template escapes the result like any other text."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.before_request
def _load_admin_and_check_csrf() -> None:
    g.console_admin = None
    if request.endpoint == "console.static":
        return
    admin_id, version, nonce = session.get("a"), session.get("v"), session.get("n", "")
    if isinstance(admin_id, int) and isinstance(version, int):
        g.console_admin = console_auth.resume_session(
            db_session(), kv_store(), console_settings(), admin_id, version, nonce
        )
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not nonce or not hmac.compare_digest(sent.encode(), csrf_token().encode()):
            raise BadRequest("The form's security token is missing or stale; reload the page and try again.")


@bp.after_request
def _security_headers(response: Any) -> Any:
    # A view that set a policy of its own keeps it (the proof files' stricter, sandboxing one).
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.console_admin is None:
            session.pop("a", None)
            return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_admin() -> Principal:
    return g.console_admin


def begin(principal: Principal) -> None:
    """Log PRINCIPAL in with a fresh nonce (and so a fresh CSRF token): a planted cookie is of no use."""
    if g.console_admin is not None:
        end()
    session.clear()
    session.update(
        a=principal.id, v=principal.secret_version, n=console_auth.start_session(kv_store(), console_settings())
    )


def end() -> None:
    console_auth.end_session(kv_store(), console_settings(), session.get("n", ""))
    session.clear()


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> tuple[str, int, dict[str, str]]:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
    return render_template("console/error.html", status=error.status, message=error.message), error.status, headers


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("console/error.html", status=status, message=error.description), status
