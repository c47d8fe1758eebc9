"""Logging in and out, and the admin's own two-factor setup."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from flask import Response, redirect, render_template, request, url_for

from ..errors import DomainError, RateLimited
from ..extensions import db_session, kv_store
from ..services import console_auth
from .session import begin, bp, console_settings, current_admin, end, login_required

SAFE_NEXT_PREFIX = "/admin/"


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (never //host or a scheme): an open redirect helps phishing."""
    if target and target.startswith(SAFE_NEXT_PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""), error=None)
    form = request.form
    try:
        principal = console_auth.log_in(
            db_session(),
            kv_store(),
            console_settings(),
            form.get("username", "")[:64],
            form.get("password", "")[:256],
            form.get("code", "")[:16],
            _client_ip(),
        )
    except DomainError as error:
        page = render_template("console/login.html", next=form.get("next", ""), error=error.message)
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
        return page, error.status, headers
    begin(principal)
    return redirect(_safe_next(form.get("next")))


@bp.post("/logout")
def logout():
    end()
    return redirect(url_for("console.login"))


@bp.get("/account")
@login_required
def account():
    status = console_auth.totp_status(db_session(), current_admin())
    return render_template("console/account.html", totp=status, totp_done=request.args.get("done"), error=None)


@bp.post("/account/totp/start")
@login_required
def totp_start():
    console_auth.begin_totp(db_session(), current_admin())
    return redirect(url_for("console.account"))


@bp.post("/account/totp/confirm")
@login_required
def totp_confirm():
    return _totp_change(console_auth.confirm_totp, "enabled")


@bp.post("/account/totp/disable")
@login_required
def totp_disable():
    return _totp_change(console_auth.disable_totp, "disabled")


def _totp_change(change, done: str):
    try:
        change(db_session(), kv_store(), current_admin(), request.form.get("code", "")[:16])
    except DomainError as error:
        db_session().rollback()
        status = console_auth.totp_status(db_session(), current_admin())
        return render_template("console/account.html", totp=status, totp_done=None, error=error.message), error.status
    return redirect(url_for("console.account", done=done))


@bp.get("/account/totp/qr.svg")
@login_required
def totp_qr():
    status = console_auth.totp_status(db_session(), current_admin())
    if not status["uri"]:
        return Response(status=404)
    image = qrcode.make(str(status["uri"]), image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return Response(out.getvalue(), mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})
