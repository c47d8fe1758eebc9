"""Plans (list, create, edit, archive), the audit log, and users (search, ban/unban, rotate subscription, the
subscription's QR code).

Forms are read into the JSON shapes the API takes and checked by the API's own schemas, so a rule about a
field lives in one place (control_api/schemas) whichever door the change comes through.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..errors import NotFound
from ..extensions import db_session
from ..jobs.dispatch import job_queue
from ..schemas.plans import PlanIn, PlanPatch
from ..schemas.users import BanIn
from ..services import audit as audit_service
from ..services import configs as config_service
from ..services import plans as plan_service
from ..services import subscriptions as subscription_service
from ..services import users as user_service
from . import charts
from .session import bp, console_settings, current_admin, login_required

PLAN_INTEGERS = ("duration_days", "max_devices", "data_limit_mb", "price_cents")
PLAN_BOOLEANS = ("is_constant_ip", "is_active")
PLAN_TEXTS = ("name", "name_fa", "location_tag", "region", "renewal_data_rule")
PAGE = 50


def _plan_body(form: Any) -> dict[str, Any]:
    """The form as the JSON body POST /plans takes: digits become integers, checkboxes booleans, empty
    optional texts null. Anything else stays text, for the schema to refuse with its own message."""
    body: dict[str, Any] = {}
    for name in PLAN_TEXTS:
        value = form.get(name, "").strip()
        if value or name in ("name", "location_tag"):
            body[name] = value
        elif name in ("name_fa", "region"):
            body[name] = None
    for name in PLAN_INTEGERS:
        value = form.get(name, "").strip()
        body[name] = int(value) if value.isdigit() and value.isascii() else value
    for name in PLAN_BOOLEANS:
        body[name] = form.get(name) == "on"
    return body


@bp.get("/plans")
@login_required
def plans():
    listing = plan_service.list_plans(
        db_session(), current_admin(), {"include_inactive": True, "limit": 200, "offset": 0}
    )
    done = {"created": "Plan created.", "saved": "Plan saved.", "archived": "Plan archived."}.get(
        request.args.get("done", "")
    )
    return render_template("console/plans.html", plans=listing["items"], done=done, money=charts.money)


@bp.route("/plans/new", methods=["GET", "POST"])
@login_required
def plan_new():
    if request.method == "GET":
        return render_template("console/plan_form.html", plan=None, values={"is_active": True}, errors={})
    body = _plan_body(request.form)
    try:
        data = PlanIn().load(body)
    except ValidationError as error:
        return render_template("console/plan_form.html", plan=None, values=body, errors=error.messages), 422
    plan_service.create_plan(db_session(), current_admin(), data)
    return redirect(url_for("console.plans", done="created"))


@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
@login_required
def plan_edit(plan_id: int):
    plan = plan_service.get_plan(db_session(), plan_id)
    if request.method == "GET":
        return render_template("console/plan_form.html", plan=plan, values=plan, errors={})
    body = _plan_body(request.form)
    try:
        changes = PlanPatch().load(body)
    except ValidationError as error:
        return render_template("console/plan_form.html", plan=plan, values=body, errors=error.messages), 422
    plan_service.update_plan(db_session(), current_admin(), plan_id, changes)
    return redirect(url_for("console.plans", done="saved"))


@bp.post("/plans/<int:plan_id>/archive")
@login_required
def plan_archive(plan_id: int):
    plan_service.update_plan(db_session(), current_admin(), plan_id, {"is_active": False})
    return redirect(url_for("console.plans", done="archived"))


def _date(text: str, end: bool = False) -> datetime | None:
    """A yyyy-mm-dd from a date input as a UTC instant: the start of that day, or (END) of the next one."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1 if end else 0)


@bp.get("/audit")
@login_required
def audit_log():
    args = request.args
    filters = {
        "actor": args.get("actor", "").strip()[:80],
        "action": args.get("action", "").strip()[:64],
        "from": args.get("from", "").strip()[:10],
        "to": args.get("to", "").strip()[:10],
    }
    page = max(int(args["page"]) if args.get("page", "").isdigit() and len(args["page"]) < 7 else 1, 1)
    result = audit_service.search(
        db_session(),
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        start=_date(filters["from"]),
        end=_date(filters["to"], end=True),
        limit=PAGE,
        offset=(page - 1) * PAGE,
    )
    pages = max((result["total"] + PAGE - 1) // PAGE, 1)
    return render_template("console/audit.html", result=result, filters=filters, page=page, pages=pages)


def _max_pending() -> int:
    return console_settings().max_pending_payments_per_user


@bp.get("/users")
@login_required
def users():
    query = request.args.get("q", "").strip()[:64]
    if query.isdigit() and query.isascii() and len(query) < 19:
        try:  # a Telegram id
            found = [user_service.get_by_telegram_id(db_session(), int(query), _max_pending())]
        except NotFound:
            found = []
    else:
        filters = {"limit": PAGE, "offset": 0, "search": query.lstrip("@") or None}
        found = user_service.list_users(db_session(), filters, _max_pending())["items"]
    return render_template("console/users.html", users=found, q=query)


@bp.get("/users/<int:user_id>")
@login_required
def user_detail(user_id: int):
    user = user_service.get_user_view(db_session(), user_id, _max_pending())
    configs = config_service.list_user_configs(db_session(), user_id, current_admin())
    done = {
        "banned": "User banned.",
        "unbanned": "Ban lifted.",
        "rotated": "New subscription link issued; the old one stopped working.",
        "devices_reset": "Devices forgotten: refused addresses are served again after the next sync.",
    }.get(request.args.get("done", ""))
    return render_template(
        "console/user.html", user=user, configs=configs, done=done, human_bytes=charts.human_bytes, error=None
    )


@bp.post("/users/<int:user_id>/ban")
@login_required
def user_ban(user_id: int):
    try:
        data = BanIn().load({"reason": request.form.get("reason", "")})
    except ValidationError:
        user = user_service.get_user_view(db_session(), user_id, _max_pending())
        configs = config_service.list_user_configs(db_session(), user_id, current_admin())
        page = render_template(
            "console/user.html",
            user=user,
            configs=configs,
            done=None,
            human_bytes=charts.human_bytes,
            error="A ban needs a reason (up to 500 characters).",
        )
        return page, 422
    user_service.ban_user(
        db_session(), current_admin(), user_id, data["reason"], job_queue().enqueue_node_sync, _max_pending()
    )
    return redirect(url_for("console.user_detail", user_id=user_id, done="banned"))


@bp.post("/users/<int:user_id>/unban")
@login_required
def user_unban(user_id: int):
    resume = [int(value) for value in request.form.getlist("resume") if value.isdigit() and len(value) < 19]
    user_service.unban_user(
        db_session(), current_admin(), user_id, resume, job_queue().enqueue_node_sync, _max_pending()
    )
    return redirect(url_for("console.user_detail", user_id=user_id, done="unbanned"))


def _base_url() -> str:
    """The subscription URLs' base, as the API's subscription routes take it."""
    return console_settings().public_base_url or request.host_url


@bp.post("/users/<int:user_id>/subscription/rotate")
@login_required
def user_rotate(user_id: int):
    subscription_service.rotate(db_session(), current_admin(), user_id, _base_url())
    return redirect(url_for("console.user_detail", user_id=user_id, done="rotated"))


@bp.get("/users/<int:user_id>/subscription/qr.png")
@login_required
def user_subscription_qr(user_id: int) -> Response:
    """The PNG GET /api/v1/users/{id}/subscription/qr.png returns (the same service, the same headers): the
    user's subscription URL, which serves every active config's links. The URL is a secret, so it is never cached."""
    png = subscription_service.subscription_qr_png(db_session(), user_id, _base_url())
    return Response(png, status=200, mimetype="image/png", headers={"Cache-Control": "no-store"})
