from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, request

from ..extensions import db_session, kv_store
from ..jobs.dispatch import job_queue
from ..openapi import raw_body
from ..schemas.payments import (
    PROOF_BODY,
    PROOF_FILE,
    PROOF_HEADERS,
    PaymentCreatedOut,
    PaymentIn,
    PaymentList,
    PaymentOut,
    PaymentQuery,
    ProofQuery,
    RejectIn,
    ReviewIn,
)
from ..schemas.review import ReviewEventIn, ReviewEventOut
from ..security import current_principal, require
from ..services import payments as payment_service
from ..services import proofs as proof_service
from ..services import review as review_service
from .common import ACTING_ADMIN_422, API_PREFIX, BEARER, settings
from .discounts import REFUSALS, TOO_MANY

bp = APIBlueprint("payments", __name__, url_prefix=f"{API_PREFIX}/payments", tag="Payments")


@bp.post("")
@require("bot", "admin")
@bp.input(PaymentIn, arg_name="data")
@bp.output(PaymentCreatedOut, status_code=201, description="Created, with its temporary config")
@bp.doc(
    summary="Record a customer's payment and issue a temporary config at once",
    description="The temporary config has TEMPORARY_DATA_PERCENT of the plan's cap for TEMPORARY_DAYS; approval "
    "upgrades it in place (same UUID, same link). Sending the same evidence_file_id again returns the first "
    "payment with 200, so a retried request never pays twice. With discount_code the amount is the discounted "
    "price and the code's use is taken with the payment; a rejection releases it, an approval keeps it. A "
    "purchase the code makes free (amount 0) has no auto_accept_at: only an admin approves it.",
    security=BEARER,
    responses={
        200: "The same proof was sent before: the first payment",
        403: "The user is banned (user_banned)",
        404: "The user or the plan does not exist",
        409: "The plan is not sold (plan_not_for_sale), the customer has as many payments waiting for review as "
        "MAX_PENDING_PAYMENTS_PER_USER allows (too_many_pending_payments), or the proof paid for another "
        "customer's order (evidence_used_elsewhere) or is another payment's (evidence_reused); or the discount "
        f"code does not apply: {REFUSALS}",
        422: "The body does not match the schema (validation_error), or amount_cents is not the plan's price, "
        "or with discount_code the discounted price (amount_mismatch: a rule about the plan's stored price, "
        "which a schema cannot state)",
        429: TOO_MANY,
    },
)
def create_payment(data: dict):
    view, created = payment_service.create_payment(
        db_session(), current_principal(), settings(), data, job_queue().enqueue_node_sync, kv_store()
    )
    return view, 201 if created else 200


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
    return payment_service.get_payment(db_session(), payment_id)


@bp.post("/<int:payment_id>/approve")
@require("admin", "bot")
@bp.input(ReviewIn, arg_name="data")
@bp.output(PaymentOut)
@bp.doc(
    summary="Approve a pending payment: its temporary config becomes the full plan, same link",
    security=BEARER,
    responses={
        403: "The bot acted for someone who is not an admin (not_an_admin)",
        409: "Not pending (already_reviewed; says who decided)",
        422: ACTING_ADMIN_422,
    },
)
def approve(payment_id: int, data: dict) -> dict:
    return payment_service.approve_payment(
        db_session(),
        current_principal(),
        settings(),
        payment_id,
        data.get("acting_telegram_id"),
        job_queue().enqueue_node_sync,
    )


@bp.post("/<int:payment_id>/reject")
@require("admin", "bot")
@bp.input(RejectIn, arg_name="data")
@bp.output(PaymentOut)
@bp.doc(
    summary="Reject a pending payment: its temporary config is revoked; optionally ban the user",
    description="The reason is told to the customer: written (reason), or as a quick reason code (reason_code) the "
    "bot words in the customer's language, or both. A decision made here, by a bot's button or command, or by the "
    "automatic acceptance queues a payment_decided notification for the admins, so every review card the bot "
    "posted of the payment shows it.",
    security=BEARER,
    responses={
        403: "The bot acted for someone who is not an admin (not_an_admin)",
        409: "Not pending (already_reviewed; says who decided)",
        422: ACTING_ADMIN_422,
    },
)
def reject(payment_id: int, data: dict) -> dict:
    return payment_service.reject_payment(
        db_session(), current_principal(), payment_id, data, job_queue().enqueue_node_sync
    )


@bp.post("/<int:payment_id>/review-events")
@require("admin", "bot")
@bp.input(ReviewEventIn, arg_name="data")
@bp.output(ReviewEventOut, status_code=201)
@bp.doc(
    summary="Audit a decision the bot holds for its undo window (held) or one taken back within it (undone)",
    description="Changes nothing but the audit log: the decision itself is made by approve or reject when the "
    "window ends, and an undone one never is. Same callers and acting_telegram_id rule as approve.",
    security=BEARER,
    responses={
        403: "The bot acted for someone who is not an admin (not_an_admin)",
        409: "A held decision on a payment that is not pending (already_reviewed; says who decided)",
        422: ACTING_ADMIN_422,
    },
)
def review_event(payment_id: int, data: dict) -> dict:
    return review_service.record_review_event(db_session(), current_principal(), payment_id, data)


@bp.put("/<int:payment_id>/proof")
@raw_body(PROOF_BODY)
@require("bot", "admin")
@bp.input(ProofQuery, location="query", arg_name="query")
@bp.output(PaymentOut, description="Stored; the payment's view (has_proof, proof_duplicate_of)")
@bp.doc(
    summary="Attach the proof file (the customer's receipt) to a pending payment",
    description="The bot uploads the file the customer sent, as the raw request body, right after creating the "
    "payment, so that admins can see it (GET /payments/{id}/proof). At most PROOF_MAX_BYTES; a JPEG, PNG, WebP "
    "or PDF as its first bytes say, whatever its Content-Type. Stored as a file outside the database under a "
    "random name. One proof per payment, while it is pending. The same file on another payment is not refused: "
    "proof_duplicate_of names those payments.",
    security=BEARER,
    responses={
        403: "The payment is not user_id's (not_your_payment)",
        409: "The payment is decided (payment_not_pending) or has its proof already (proof_already_attached)",
        413: "The file is larger than PROOF_MAX_BYTES (proof_too_large; details.max_bytes)",
        415: "The file is not a JPEG, PNG, WebP or PDF by its content (proof_type_unsupported)",
    },
)
def attach_proof(payment_id: int, query: dict) -> dict:
    limit = settings().proof_max_bytes
    request.max_content_length = limit + 1  # this route's own limit, above the JSON routes' MAX_CONTENT_LENGTH
    data = proof_service.read_bounded(lambda: request.stream, request.content_length, limit)
    return payment_service.attach_proof(
        db_session(), current_principal(), settings(), payment_id, query["user_id"], data
    )


# A proof is shown as a file, never run as a page: no sniffing, nothing loaded, scripts and forms sandboxed
# (schemas.payments.PROOF_HEADERS, the same for the console's proof route).


@bp.get("/<int:payment_id>/proof")
@require("admin")
@bp.doc(
    summary="The payment's proof file, for admins only",
    description="Served with the media type its bytes showed at upload, inline, with X-Content-Type-Options: "
    "nosniff, Cache-Control: private, no-store and Content-Security-Policy: default-src 'none'; img-src 'self'; "
    "sandbox. The bot has the proof's Telegram file id and gets 403 here, like every caller but an admin.",
    security=BEARER,
    responses={200: PROOF_FILE, 404: "No such payment, or it has no proof file (no_proof)"},
)
def get_proof(payment_id: int) -> Response:
    content, mime = proof_service.read(db_session(), settings(), payment_id)
    return Response(content, status=200, mimetype=mime, headers=PROOF_HEADERS)
