from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from ..models import NOTIFICATION_KINDS
from .common import db_integer, query_integer


class NotificationOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    telegram_id = fields.Integer(required=True)
    language = fields.String(required=True)
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
