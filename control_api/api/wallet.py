"""Wallets: a customer's balance and ledger, an admin's adjustments, and purchases paid from the balance.

Why a purchase from the balance is its own operation (POST /users/{id}/wallet/purchases) rather than
POST /payments with a method: a payment is a proof under review (evidence, a temporary config, an
automatic acceptance date, a reviewer), and a balance purchase has none of those. It is decided at once:
the debit and the full config commit together, and the ledger row is its record. Top-ups, which are
proofs under review, are payments (POST /payments with purpose "topup").

For the same reason a renewal or extra data paid from the balance is a purchase here (extends_config_id,
with plan_id or data_mb), not POST /configs/{id}/renew with a `pay_with`: that operation records a proof
for review and answers with the payment, while this one answers with the ledger row, the balance and the
extended config. One operation per way of paying keeps each request and response to one shape; the rules
of what may be renewed are the same code (services/renewals.py) either way.
"""

from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, kv_store
from ..jobs.dispatch import job_queue
from ..schemas.common import PageQuery
from ..schemas.wallet import AdjustIn, AdjustOut, PurchaseIn, PurchaseOut, WalletOut
from ..security import current_principal, require
from ..services import wallet as wallet_service
from .common import API_PREFIX, BEARER, settings
from .discounts import REFUSALS, TOO_MANY

bp = APIBlueprint("wallet", __name__, url_prefix=f"{API_PREFIX}/users", tag="Wallet")


@bp.get("/<int:user_id>/wallet")
@require("admin", "bot")
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(WalletOut)
@bp.doc(summary="A user's balance (the sum of their ledger) and their ledger entries, newest first", security=BEARER)
def get_wallet(user_id: int, page: dict) -> dict:
    return wallet_service.wallet_view(db_session(), user_id, page)


@bp.post("/<int:user_id>/wallet/adjust")
@require("admin")
@bp.input(AdjustIn, arg_name="data")
@bp.output(AdjustOut, status_code=201, description="The entry was booked")
@bp.doc(
    summary="Credit (amount > 0) or debit (amount < 0) a user's balance, with a reason; audited",
    security=BEARER,
    responses={409: "A debit larger than the balance (insufficient_balance)"},
)
def adjust_wallet(user_id: int, data: dict):
    return wallet_service.adjust(db_session(), current_principal(), user_id, data), 201


@bp.post("/<int:user_id>/wallet/purchases")
@require("bot", "admin")
@bp.input(PurchaseIn, arg_name="data")
@bp.output(PurchaseOut, status_code=201, description="Paid: the price debited and the full config created or extended")
@bp.doc(
    summary="Buy with the balance, no review: a plan's full config at once, or a renewal or extra data in place",
    description="The debit and the config are one transaction: when no node has room, nothing is debited. "
    "Concurrent purchases of one user queue on the user, so the balance never goes below zero. With "
    "extends_config_id, one of the customer's paid configs is renewed with plan_id (the rules and figures of "
    "GET /configs/{id}/renewal) or gets data_mb more for its current period (GET /configs/{id}/extra-data), "
    "in place: same id, UUID and links. With discount_code (a plan only) the discounted price is debited and the "
    "code's use taken in the same transaction; a code that makes the order free is refused here (nobody reviews "
    "a balance purchase): a free order is a payment for an admin to approve.",
    security=BEARER,
    responses={
        403: "The user is banned (user_banned)",
        404: "The user, the plan or the config (or it is another customer's) does not exist",
        409: "The balance does not cover the price (insufficient_balance), the plan is not sold "
        "(plan_not_for_sale), or no active node of the plan's location has room (no_node_available); for an "
        "existing config: it cannot be extended (config_not_renewable), has a renewal or extra data in review "
        "(extension_in_review), or the plan may not follow its plan (plan_not_allowed); the discount code does "
        f"not apply: {REFUSALS}, or makes the order free (free_order_needs_review)",
        422: "The body does not match the schema (validation_error), or expected_amount_cents is not the price "
        "to debit now (amount_mismatch, with price_cents: quote again)",
        429: TOO_MANY,
    },
)
def purchase(user_id: int, data: dict):
    view = wallet_service.buy(
        db_session(), current_principal(), settings(), user_id, data, job_queue().enqueue_node_sync, kv_store()
    )
    return view, 201
