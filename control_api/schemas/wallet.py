from __future__ import annotations

from typing import Any, ClassVar

from apiflask import Schema, fields
from apiflask.validators import OneOf, Range
from marshmallow import ValidationError, post_load, validates_schema

from ..models import ACTOR_TYPES, PROTOCOLS, WALLET_REASONS
from .common import PageMeta, WholeNumber, db_integer, text
from .configs import ConfigOut
from .discounts import AppliedCodeOut, order_code
from .renewals import MAX_EXTRA_DATA_MB

MAX_ADJUSTMENT = 10**12


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValidationError("Must not be 0.")
    return value


class AdjustIn(Schema):
    amount_cents = WholeNumber(
        required=True,
        validate=[Range(min=-MAX_ADJUSTMENT, max=MAX_ADJUSTMENT), _not_zero],
        # The spec says it too: any whole number in range but 0.
        metadata={
            "not": {"const": 0},
            "description": "Positive: a credit (admin_credit). Negative: a debit (admin_debit), refused when it "
            "would take the balance below zero (409 insufficient_balance).",
        },
    )
    reason = text(500, required=True, metadata={"description": "Why; stored as the entry's note and audited."})


class PurchaseIn(Schema):
    """A new config (plan_id), or for one of the customer's paid configs (extends_config_id) another period
    (plan_id: a renewal) or more data (data_mb), extended in place."""

    plan_id = db_integer(
        1,
        metadata={
            "description": "A plan on sale; its price is debited. With extends_config_id: the plan that renews "
            "it (GET /configs/{id}/renewal quotes it)."
        },
    )
    protocol = fields.String(
        validate=OneOf(PROTOCOLS),
        metadata={"description": "A new config's (vless when absent); a renewed config keeps its own."},
    )
    extends_config_id = db_integer(
        1, metadata={"description": "The customer's paid config to renew (with plan_id) or add data to (data_mb)."}
    )
    data_mb = db_integer(
        1,
        MAX_EXTRA_DATA_MB,
        metadata={"description": "Extra data for extends_config_id's current period; its price is debited."},
    )
    discount_code = order_code()
    expected_amount_cents = db_integer(
        0,
        metadata={
            "description": "The price the customer was shown (after any discount code). When sent and the price "
            "to debit differs, nothing is debited (422 amount_mismatch, with price_cents): a price changed "
            "between the quote and the tap is never charged unseen."
        },
    )

    # The spec says it too: a plan or extra data, never both; extra data names its config; no protocol for an
    # existing config; a discount code only with a plan.
    openapi_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": ["plan_id"]}, {"required": ["data_mb"]}],
        "dependentRequired": {"data_mb": ["extends_config_id"], "discount_code": ["plan_id"]},
        "if": {"required": ["extends_config_id"]},
        "then": {"not": {"required": ["protocol"]}},
    }

    @validates_schema
    def _one_order(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("plan_id" in data) == ("data_mb" in data):
            raise ValidationError({"plan_id": ["Send plan_id (a plan or a renewal) or data_mb (extra data), one."]})
        if "data_mb" in data and "extends_config_id" not in data:
            raise ValidationError({"extends_config_id": ["Required with data_mb."]})
        if "extends_config_id" in data and "protocol" in data:
            raise ValidationError({"protocol": ["Not for an existing config: it keeps its own."]})
        if "discount_code" in data and "plan_id" not in data:
            raise ValidationError({"discount_code": ["Only with plan_id: extra data takes no code."]})

    @post_load
    def _default_protocol(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "extends_config_id" not in data:
            data.setdefault("protocol", "vless")
        return data


class WalletEntryOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    amount_cents = fields.Integer(
        required=True, metadata={"description": "Positive: money in. Zero or negative: money out."}
    )
    reason = fields.String(required=True, validate=OneOf(WALLET_REASONS))
    note = fields.String(allow_none=True, metadata={"description": "The admin's reason, for their adjustments."})
    actor_type = fields.String(required=True, validate=OneOf(ACTOR_TYPES))
    actor_id = fields.String(
        allow_none=True, metadata={"description": "As the audit log names it; tg:<id> for a Telegram admin."}
    )
    actor_name = fields.String(required=True)
    payment_id = fields.Integer(allow_none=True, metadata={"description": "The top-up payment it credits."})
    config_id = fields.Integer(
        allow_none=True, metadata={"description": "The config a purchase, renewal or extra data paid for."}
    )
    created_at = fields.DateTime(required=True)


class WalletOut(PageMeta):
    user_id = fields.Integer(required=True)
    balance_cents = fields.Integer(required=True, metadata={"description": "The sum of every ledger entry."})
    items = fields.List(
        fields.Nested(WalletEntryOut), required=True, metadata={"description": "Ledger entries, newest first."}
    )


class AdjustOut(Schema):
    entry = fields.Nested(WalletEntryOut, required=True)
    balance_cents = fields.Integer(required=True, metadata={"description": "The balance after it."})


class PurchaseOut(AdjustOut):
    config = fields.Nested(
        ConfigOut, required=True, metadata={"description": "The full config, placed and syncing; or the one extended."}
    )
    discount = fields.Nested(
        AppliedCodeOut,
        required=True,
        allow_none=True,
        metadata={"description": "The discount code used (the entry debits what it left); None without."},
    )
