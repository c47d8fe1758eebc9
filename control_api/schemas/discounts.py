"""Discount codes: the admins' catalogue, the quote shown at checkout, and the code a payment used."""

from __future__ import annotations

from typing import Any, ClassVar

from apiflask import Schema, fields
from marshmallow import ValidationError, validates_schema

from .common import Instant, PageMeta, PageQuery, Pattern, StrictBoolean, Text, db_integer, query_integer, text

CODE_PATTERN = r"^[A-Za-z0-9_-]{4,32}$"
CODE = {"description": "4 to 32 letters, digits, '-' or '_'; any case (stored upper-case, unique whatever the case)."}
# What an order names: any text, judged against the stored codes (no match is discount_unknown).
ORDER_CODE = {
    "description": "A discount code (any case), for a plan: the amount is then the discounted price (POST "
    "/discount-codes/quote says it). Refused with 409 discount_unknown, discount_expired, "
    "discount_not_for_this_plan, discount_already_used_by_you or discount_used_up; refused codes are counted, "
    "and past DISCOUNT_CODE_FAILURES_PER_USER / _PER_CALLER every code is refused with 429 for a while."
}


def order_code() -> Text:
    """The discount_code field of an order (a payment, a renewal, a purchase from the balance)."""
    return text(64, metadata=ORDER_CODE)


class DiscountCodeIn(Schema):
    code = Text(
        required=True, validate=Pattern(CODE_PATTERN, error="4 to 32 letters, digits, '-' or '_'."), metadata=CODE
    )
    percent_off = db_integer(
        1, 100, metadata={"description": "Percent of the price off; the amount off is rounded down."}
    )
    amount_off_cents = db_integer(
        1,
        10**12,
        metadata={"description": "A fixed amount off, in the shop's smallest currency unit (at most the price)."},
    )
    plan_id = db_integer(1, allow_none=True, load_default=None, metadata={"description": "None: every plan."})
    expires_at = Instant(allow_none=True, load_default=None, metadata={"description": "None: never expires."})
    max_uses = db_integer(
        1, 10**9, allow_none=True, load_default=None, metadata={"description": "Uses in all; None: no limit."}
    )
    max_uses_per_user = db_integer(
        1, 10**9, allow_none=True, load_default=1, metadata={"description": "Uses per customer; None: no limit."}
    )
    is_active = StrictBoolean(load_default=True)

    # The spec says it too: a percent or an amount, exactly one.
    openapi_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": ["percent_off"]}, {"required": ["amount_off_cents"]}]
    }

    @validates_schema
    def _one_discount(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("percent_off" in data) == ("amount_off_cents" in data):
            raise ValidationError({"percent_off": ["Send percent_off or amount_off_cents, one."]})


class DiscountCodePatch(Schema):
    """What may change: the plan, expiry, limits and active flag (the code and its discount are fixed: a new
    discount is a new code). Only the fields sent change."""

    plan_id = db_integer(1, allow_none=True)
    expires_at = Instant(allow_none=True)
    max_uses = db_integer(1, 10**9, allow_none=True)
    max_uses_per_user = db_integer(1, 10**9, allow_none=True)
    is_active = StrictBoolean()


class DiscountCodeOut(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "Upper-case."})
    percent_off = fields.Integer(required=True, allow_none=True)
    amount_off_cents = fields.Integer(required=True, allow_none=True)
    plan_id = fields.Integer(required=True, allow_none=True, metadata={"description": "None: every plan."})
    expires_at = fields.DateTime(required=True, allow_none=True)
    max_uses = fields.Integer(required=True, allow_none=True)
    max_uses_per_user = fields.Integer(required=True, allow_none=True)
    is_active = fields.Boolean(required=True)
    uses = fields.Integer(
        required=True,
        metadata={"description": "Uses that count: payments in review or approved, purchases from the balance."},
    )
    created_at = fields.DateTime(required=True)


class DiscountCodeQuery(PageQuery):
    is_active = fields.Boolean()
    plan_id = query_integer(1)


class DiscountCodeList(PageMeta):
    items = fields.List(fields.Nested(DiscountCodeOut), required=True)


class QuoteIn(Schema):
    code = text(64, required=True, metadata={"description": "What the customer typed (any case)."})
    plan_id = db_integer(1, required=True, metadata={"description": "The plan bought, or the plan that renews."})
    user_id = db_integer(1, required=True, metadata={"description": "The customer (their per-customer limit)."})


class QuoteOut(Schema):
    code = fields.String(required=True)
    plan_id = fields.Integer(required=True)
    price_cents = fields.Integer(required=True, metadata={"description": "The plan's price."})
    percent_off = fields.Integer(required=True, allow_none=True, metadata={"description": "None: a fixed amount."})
    amount_off_cents = fields.Integer(required=True)
    amount_cents = fields.Integer(
        required=True, metadata={"description": "What to pay: the amount_cents of the payment that uses the code."}
    )
    needs_review = fields.Boolean(
        required=True,
        metadata={
            "description": "The code makes the order free: its payment waits for an admin (never accepted "
            "automatically), and it cannot be bought from the balance (409 free_order_needs_review)."
        },
    )
    expires_at = fields.DateTime(required=True, allow_none=True)


class AppliedCodeOut(Schema):
    code = fields.String(required=True)
    price_cents = fields.Integer(required=True, metadata={"description": "The price before the code."})
    amount_off_cents = fields.Integer(required=True)
    released_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "When the payment's rejection released the use (it no longer counts)."},
    )
