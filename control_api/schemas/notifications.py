from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from ..models import AUDIENCES, NOTIFICATION_KINDS
from .common import db_integer, query_integer


class NotificationOut(Schema):
    id = fields.Integer(required=True)
    audience = fields.String(
        required=True,
        validate=OneOf(AUDIENCES),
        metadata={"description": "user: tell user_id; admins: post to the admin channel (user fields null)."},
    )
    user_id = fields.Integer(required=True, allow_none=True)
    telegram_id = fields.Integer(required=True, allow_none=True)
    language = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True, validate=OneOf(NOTIFICATION_KINDS))
    payload = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)


class NotificationQuery(Schema):
    limit = query_integer(1, 500, load_default=50)


class NotificationList(Schema):
    items = fields.List(fields.Nested(NotificationOut), required=True)


class AckIn(Schema):
    ids = fields.List(db_integer(1), required=True, validate=Length(min=1, max=500))


class AckOut(Schema):
    acknowledged = fields.Integer(required=True)
