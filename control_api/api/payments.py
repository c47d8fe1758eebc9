from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, job_queue
from ..models import Payment
from ..schemas.payments import PaymentCreatedOut, PaymentIn, PaymentList, PaymentOut, PaymentQuery, RejectIn, ReviewIn
from ..security import current_principal, require
from ..services import configs as config_service
from ..services import payments as payment_service
from ..services.lookup import get_or_404
from .common import API_PREFIX, BEARER, settings

bp = APIBlueprint("payments", __name__, url_prefix=f"{API_PREFIX}/payments", tag="Payments")


@bp.post("")
@require("bot", "admin")
@bp.input(PaymentIn, arg_name="data")
@bp.output(PaymentCreatedOut, status_code=201, description="Created, with its temporary config")
@bp.doc(
    summary="Record a customer's payment and issue a temporary config at once",
    description="The temporary config has TEMPORARY_DATA_PERCENT of the plan's cap for TEMPORARY_DAYS; approval "
    "upgrades it in place (same UUID, same link). Sending the same evidence_file_id again returns the first "
    "payment with 200, so a retried request never pays twice.",
    security=BEARER,
    responses={
        200: "The same proof was sent before: the first payment",
        403: "The user is banned",
        404: "The user or the plan does not exist",
        409: "The plan is not sold, no node is available, or the proof belongs to another payment",
    },
)
def create_payment(data: dict):
    session = db_session()
    payment, created = payment_service.create_payment(
        session, current_principal(), settings(), data, job_queue().enqueue_node_sync
    )
    config = config_service.get_config(session, payment.config_id)
    body = {**payment_service.payment_view(session, payment), "config": config_service.config_view(session, config)}
    return body, 201 if created else 200


@bp.get("")
@require("admin", "bot")
@bp.input(PaymentQuery, location="query", arg_name="filters")
@bp.output(PaymentList)
@bp.doc(summary="Payments, oldest first (status=pending: the review queue)", security=BEARER)
def list_payments(filters: dict) -> dict:
    return payment_service.list_payments(db_session(), filters)


@bp.get("/<int:payment_id>")
@require("admin", "bot")
@bp.output(PaymentOut)
@bp.doc(summary="One payment", security=BEARER)
def get_payment(payment_id: int) -> dict:
    session = db_session()
    return payment_service.payment_view(session, get_or_404(session, Payment, payment_id, "Payment"))


@bp.post("/<int:payment_id>/approve")
@require("admin", "bot")
@bp.input(ReviewIn, arg_name="data")
@bp.output(PaymentOut)
@bp.doc(
    summary="Approve a pending payment: its temporary config becomes the full plan, same link",
    security=BEARER,
    responses={403: "The bot acted for someone who is not an admin", 409: "Not pending (says who decided)"},
)
def approve(payment_id: int, data: dict) -> dict:
    session = db_session()
    reviewer = payment_service.reviewer_for(session, current_principal(), data.get("acting_telegram_id"))
    payment = payment_service.approve(session, reviewer, payment_id, job_queue().enqueue_node_sync)
    return payment_service.payment_view(session, payment)


@bp.post("/<int:payment_id>/reject")
@require("admin", "bot")
@bp.input(RejectIn, arg_name="data")
@bp.output(PaymentOut)
@bp.doc(
    summary="Reject a pending payment: its temporary config is revoked; optionally ban the user",
    security=BEARER,
    responses={403: "The bot acted for someone who is not an admin", 409: "Not pending (says who decided)"},
)
def reject(payment_id: int, data: dict) -> dict:
    session = db_session()
    reviewer = payment_service.reviewer_for(session, current_principal(), data.get("acting_telegram_id"))
    payment = payment_service.reject(
        session, reviewer, payment_id, data.get("reason"), data["ban"], job_queue().enqueue_node_sync
    )
    return payment_service.payment_view(session, payment)
