from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from ..models import LANGUAGES
from .common import PageMeta, PageQuery, StrictBoolean, db_integer, text


class TelegramUserIn(Schema):
    username = text(64, allow_none=True, load_default=None, metadata={"description": "Telegram @username, without @."})
    language = fields.String(load_default=None, allow_none=True, validate=OneOf(LANGUAGES))
    referral_code = text(
        64,
        min_length=0,
        allow_none=True,
        load_default=None,
        metadata={
            "description": "The code of the invite link the customer came through (/start ref_<code>). It refers "
            "a customer this request creates, once; for a customer who exists, a malformed or unknown code, or "
            "the customer's own, it is ignored (never an error)."
        },
    )


class BanIn(Schema):
    reason = text(500, required=True)


class UnbanIn(Schema):
    resume_config_ids = fields.List(
        db_integer(1),
        load_default=list,
        validate=Length(max=100),
        metadata={
            "description": "Configs the ban suspended to bring back (each must be this user's and not expired). "
            "Nothing else comes back: payments stay rejected, other configs stay suspended."
        },
    )


class AdminFlagIn(Schema):
    is_admin = StrictBoolean(required=True)


class UserOut(Schema):
    id = fields.Integer(required=True)
    telegram_id = fields.Integer(required=True)
    username = fields.String(allow_none=True)
    language = fields.String(required=True)
    is_admin = fields.Boolean(required=True)
    is_banned = fields.Boolean(required=True)
    ban_reason = fields.String(allow_none=True)
    banned_at = fields.DateTime(allow_none=True)
    trial_used_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)
    pending_payment_ids = fields.List(
        fields.Integer(), required=True, metadata={"description": "The user's payments waiting for review."}
    )
    can_order = fields.Boolean(
        required=True,
        metadata={
            "description": "Not banned and under MAX_PENDING_PAYMENTS_PER_USER: a new payment would be accepted. "
            "The bot checks it before showing payment details."
        },
    )


class UserQuery(PageQuery):
    banned = fields.Boolean()
    search = text(64, metadata={"description": "Substring of the Telegram username."})


class UserList(PageMeta):
    items = fields.List(fields.Nested(UserOut), required=True)
