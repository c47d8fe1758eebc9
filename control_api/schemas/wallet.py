from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf, Range
from marshmallow import ValidationError

from ..models import ACTOR_TYPES, PROTOCOLS, WALLET_REASONS
from .common import PageMeta, WholeNumber, db_integer, text
from .configs import ConfigOut

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
    plan_id = db_integer(1, required=True, metadata={"description": "A plan on sale; its price is debited."})
    protocol = fields.String(load_default="vless", validate=OneOf(PROTOCOLS))


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
    config_id = fields.Integer(allow_none=True, metadata={"description": "The config a purchase paid for."})
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
    config = fields.Nested(ConfigOut, required=True, metadata={"description": "The full config, placed and syncing."})
