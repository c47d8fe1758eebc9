from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import LANGUAGES
from .common import PageMeta, PageQuery, StrictBoolean, text


class TelegramUserIn(Schema):
    username = text(64, allow_none=True, load_default=None, metadata={"description": "Telegram @username, without @."})
    language = fields.String(load_default=None, allow_none=True, validate=OneOf(LANGUAGES))


class BanIn(Schema):
    reason = text(500, required=True)


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


class UserQuery(PageQuery):
    banned = fields.Boolean()
    search = text(64, metadata={"description": "Substring of the Telegram username."})


class UserList(PageMeta):
    items = fields.List(fields.Nested(UserOut), required=True)
