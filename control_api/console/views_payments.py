"""The payments queue (pending first, with the proof, the plan, the amount and the customer's history;
approve / reject with reason and optional ban), the proof files it shows, the small JSON state the page polls so
a decision made elsewhere shows without a reload, and a config's device reset from the user page.

Decisions go through the same services as POST /api/v1/payments/{id}/approve and /reject (services/payments.py),
so the claim under the row, the audit row with the admin as actor, the notifications and the webhooks are theirs.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..errors import Conflict, InvalidInput
from ..extensions import db_session
from ..jobs.dispatch import job_queue
from ..schemas.payments import PROOF_HEADERS, REJECT_REASON_CODES, RejectIn
from ..services import configs as config_service
from ..services import payments as payment_service
from ..services import proofs as proof_service
from ..services import review as review_service
from . import charts
from .session import bp, console_settings, current_admin, login_required

PAYMENT_DONE = {
    "approved": "Payment approved.",
    "rejected": "Payment rejected.",
    "rejected_banned": "Payment rejected and the customer banned.",
}
REASON_LABELS = {
    "fake_receipt": "Fake receipt",
    "wrong_amount": "Wrong amount",
    "unreadable": "Unreadable receipt",
    "already_used": "Receipt already used",
}
MAX_STATE_IDS = 200


def _queue_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    queue = review_service.review_queue(db_session())
    done = None if error else PAYMENT_DONE.get(request.args.get("done", ""))
    page = render_template(
        "console/payments.html",
        queue=queue,
        done=done,
        error=error,
        money=charts.money,
        reasons=[(code, REASON_LABELS.get(code, code)) for code in REJECT_REASON_CODES],
    )
    return page, status


@bp.get("/payments")
@login_required
def payments():
    return _queue_page()


@bp.post("/payments/<int:payment_id>/approve")
@login_required
def payment_approve(payment_id: int):
    try:
        payment_service.approve_payment(
            db_session(), current_admin(), console_settings(), payment_id, None, job_queue().enqueue_node_sync
        )
    except Conflict as error:  # decided by someone else first: say who and how, decide nothing
        return _queue_page(error.message, 409)
    return redirect(url_for("console.payments", done="approved"))


def _reject_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ban": form.get("ban") == "on"}
    if form.get("reason", "").strip():
        body["reason"] = form.get("reason", "").strip()
    if form.get("reason_code", ""):
        body["reason_code"] = form.get("reason_code", "")
    return body


@bp.post("/payments/<int:payment_id>/reject")
@login_required
def payment_reject(payment_id: int):
    try:
        decision = RejectIn().load(_reject_body(request.form))
        payment_service.reject_payment(
            db_session(), current_admin(), payment_id, decision, job_queue().enqueue_node_sync
        )
    except ValidationError:
        return _queue_page("A rejection's reason is a known reason code and at most 500 characters of text.", 422)
    except InvalidInput as error:  # a ban without any reason
        return _queue_page(error.message, 422)
    except Conflict as error:
        return _queue_page(error.message, 409)
    return redirect(url_for("console.payments", done="rejected_banned" if decision["ban"] else "rejected"))


@bp.get("/payments/<int:payment_id>/proof")
@login_required
def payment_proof(payment_id: int) -> Response:
    content, mime = proof_service.read(db_session(), console_settings(), payment_id)
    return Response(content, status=200, mimetype=mime, headers=PROOF_HEADERS)


@bp.get("/payments/state")
@login_required
def payments_state():
    """{"payments": {id: {"status", "reviewer"}}} for ?ids=1,2,3 (at most MAX_STATE_IDS): what payments.js polls."""
    ids = [int(part) for part in request.args.get("ids", "").split(",") if part.isdigit() and len(part) < 19]
    states = review_service.decisions(db_session(), ids[:MAX_STATE_IDS]) if ids else {}
    response = jsonify({"payments": {str(key): value for key, value in states.items()}})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/configs/<int:config_id>/devices/reset")
@login_required
def config_devices_reset(config_id: int):
    view = config_service.reset_devices(db_session(), current_admin(), config_id, job_queue().enqueue_node_sync)
    return redirect(url_for("console.user_detail", user_id=view["user_id"], done="devices_reset"))
