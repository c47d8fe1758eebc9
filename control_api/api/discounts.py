"""Discount codes: the admins' catalogue, and the quote the bot shows at checkout (services/discounts.py).

The quote is a POST with the code in the body, not a GET with it in the path or query: a code is something
customers are given, and a request's path and query reach access logs.
"""

from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, kv_store
from ..schemas.discounts import (
    DiscountCodeIn,
    DiscountCodeList,
    DiscountCodeOut,
    DiscountCodePatch,
    DiscountCodeQuery,
    QuoteIn,
    QuoteOut,
)
from ..security import current_principal, require
from ..services import discounts as discount_service
from .common import API_PREFIX, BEARER, settings

bp = APIBlueprint("discount_codes", __name__, url_prefix=f"{API_PREFIX}/discount-codes", tag="Discount codes")

REFUSALS = (
    "discount_unknown (no such code, or deactivated), discount_expired, discount_not_for_this_plan, "
    "discount_already_used_by_you (the per-customer limit) or discount_used_up (the total limit)"
)
TOO_MANY = (
    "Too many refused codes (rate_limited) from this customer (DISCOUNT_CODE_FAILURES_PER_USER) or this caller "
    "(DISCOUNT_CODE_FAILURES_PER_CALLER); see Retry-After"
)


@bp.post("")
@require("admin")
@bp.input(DiscountCodeIn, arg_name="data")
@bp.output(DiscountCodeOut, status_code=201)
@bp.doc(
    summary="Create a discount code: a percent or a fixed amount off one plan or every plan; audited",
    security=BEARER,
    responses={409: "The code exists, in any case (discount_code_taken)", 404: "The plan does not exist"},
)
def create_code(data: dict):
    return discount_service.create_code(db_session(), current_principal(), data), 201


@bp.get("")
@require("admin")
@bp.input(DiscountCodeQuery, location="query", arg_name="filters")
@bp.output(DiscountCodeList)
@bp.doc(summary="Discount codes, oldest first, with their uses", security=BEARER)
def list_codes(filters: dict) -> dict:
    return discount_service.list_codes(db_session(), filters)


@bp.get("/<int:code_id>")
@require("admin")
@bp.output(DiscountCodeOut)
@bp.doc(summary="One discount code, with its uses", security=BEARER)
def get_code(code_id: int) -> dict:
    return discount_service.get_code(db_session(), code_id)


@bp.patch("/<int:code_id>")
@require("admin")
@bp.input(DiscountCodePatch, arg_name="changes")
@bp.output(DiscountCodeOut)
@bp.doc(
    summary="Change a code's plan, expiry, limits or active flag (deactivate a used code); audited",
    description="The code and its discount do not change: a new discount is a new code. Uses already taken "
    "stay; a lower limit refuses later ones.",
    security=BEARER,
    responses={404: "The code or the plan does not exist"},
)
def update_code(code_id: int, changes: dict) -> dict:
    return discount_service.update_code(db_session(), current_principal(), code_id, changes)


@bp.delete("/<int:code_id>")
@require("admin")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete a code that was never used; audited",
    security=BEARER,
    responses={409: "The code was used; deactivate it with PATCH is_active=false (discount_code_in_use)"},
)
def delete_code(code_id: int) -> tuple[str, int]:
    discount_service.delete_code(db_session(), current_principal(), code_id)
    return "", 204


@bp.post("/quote")
@require("bot", "admin")
@bp.input(QuoteIn, arg_name="data")
@bp.output(QuoteOut)
@bp.doc(
    summary="What a code makes of a plan's price for a customer, before paying (reserves nothing)",
    description="The same judgement as the order that names the code (POST /payments, POST /configs/{id}/renew, "
    "POST /users/{id}/wallet/purchases), which takes the use; the last use may be gone by then. A refused code "
    "counts against the customer and the caller.",
    security=BEARER,
    responses={
        404: "The user or the plan does not exist",
        409: f"The code does not apply: {REFUSALS}; or the plan is not sold (plan_not_for_sale)",
        429: TOO_MANY,
    },
)
def quote(data: dict) -> dict:
    return discount_service.quote(db_session(), kv_store(), settings(), current_principal(), data)
