"""A payment's review: the customer's history for the reviewer, and the events of a held decision."""

from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import PAYMENT_STATUSES, REJECT_REASON_CODES
from .common import StrictBoolean
from .payments import REASON_CODE_DESCRIPTION, ReviewIn

REVIEW_EVENTS = ("held", "undone")
DECISIONS = ("approve", "reject")


class PaymentCountsOut(Schema):
    approved = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    pending = fields.Integer(required=True)


class UserHistoryOut(Schema):
    user_id = fields.Integer(required=True)
    telegram_id = fields.Integer(required=True)
    username = fields.String(required=True, allow_none=True)
    language = fields.String(required=True)
    created_at = fields.DateTime(required=True, metadata={"description": "When the customer first used the shop."})
    trial_used_at = fields.DateTime(required=True, allow_none=True, metadata={"description": "None: no trial yet."})
    payments = fields.Nested(
        PaymentCountsOut, required=True, metadata={"description": "The customer's payments by status (all purposes)."}
    )
    approved_cents = fields.Integer(required=True, metadata={"description": "The sum of their approved payments."})
    active_configs = fields.Integer(required=True, metadata={"description": "Configs active now."})
    is_banned = fields.Boolean(required=True)
    ban_reason = fields.String(required=True, allow_none=True)


class ReviewEventIn(ReviewIn):
    event = fields.String(
        required=True,
        validate=OneOf(REVIEW_EVENTS),
        metadata={
            "description": "held: an admin decided and the bot holds the decision for its undo window before it "
            "calls approve or reject (the payment must be pending). undone: the admin took it back within the "
            "window; nothing was decided."
        },
    )
    decision = fields.String(required=True, validate=OneOf(DECISIONS), metadata={"description": "What was held."})
    ban = StrictBoolean(metadata={"description": "A held rejection that bans the customer."})
    reason_code = fields.String(validate=OneOf(REJECT_REASON_CODES), metadata={"description": REASON_CODE_DESCRIPTION})


class ReviewEventOut(Schema):
    payment_id = fields.Integer(required=True)
    event = fields.String(required=True, validate=OneOf(REVIEW_EVENTS))
    decision = fields.String(required=True, validate=OneOf(DECISIONS))
    status = fields.String(
        required=True, validate=OneOf(PAYMENT_STATUSES), metadata={"description": "The payment's status now."}
    )
    actor = fields.String(required=True, metadata={"description": "The admin who held or undid it, by name."})
    ban = fields.Boolean()
    reason_code = fields.String(validate=OneOf(REJECT_REASON_CODES))
