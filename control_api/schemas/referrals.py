from __future__ import annotations

from apiflask import Schema, fields


class ReferralOut(Schema):
    user_id = fields.Integer(required=True)
    code = fields.String(
        required=True,
        metadata={"description": "The user's invite code: random, made the first time it is asked for, never changed."},
    )
    start_parameter = fields.String(
        required=True,
        metadata={
            "description": "What the invite link carries: https://t.me/<bot username>?start=<start_parameter>. "
            "A customer who first opens the bot through it is referred by this user."
        },
    )
    percent = fields.Integer(
        required=True,
        metadata={
            "description": "REFERRAL_PERCENT: the share of a referred customer's first paid purchase this user's "
            "wallet gets, rounded down to the smallest unit (0: no reward)."
        },
    )
    invited_count = fields.Integer(required=True, metadata={"description": "Customers who came through the link."})
    credited_count = fields.Integer(
        required=True, metadata={"description": "Of them, those whose first paid purchase credited this user."}
    )
    credited_cents = fields.Integer(required=True, metadata={"description": "The sum of those credits."})
    referred_by_user_id = fields.Integer(
        required=True, allow_none=True, metadata={"description": "Whose link this user came through, if any."}
    )
