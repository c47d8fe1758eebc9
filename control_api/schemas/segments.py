from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..services.segments import SEGMENTS
from .common import ACTING_TELEGRAM_ID, query_integer


class SegmentQuery(Schema):
    after_id = query_integer(
        0,
        load_default=0,
        metadata={
            "description": "Members with a user id above this one: 0 for the first page, then the previous "
            "page's next_after_id (keyset paging, so a broadcast resumes where it stopped)."
        },
    )
    limit = query_integer(1, 200, load_default=100)
    acting_telegram_id = query_integer(1, metadata={"description": ACTING_TELEGRAM_ID})


class SegmentCountsQuery(Schema):
    acting_telegram_id = query_integer(1, metadata={"description": ACTING_TELEGRAM_ID})


class SegmentMemberOut(Schema):
    user_id = fields.Integer(required=True)
    telegram_id = fields.Integer(required=True)
    language = fields.String(required=True, metadata={"description": "The customer's language (en, fa)."})


class SegmentPageOut(Schema):
    items = fields.List(fields.Nested(SegmentMemberOut), required=True, metadata={"description": "By user id."})
    next_after_id = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The after_id of the next page; null on the last page."},
    )


class SegmentCountOut(Schema):
    segment = fields.String(required=True, validate=OneOf(SEGMENTS))
    count = fields.Integer(required=True)


class SegmentCountsOut(Schema):
    items = fields.List(fields.Nested(SegmentCountOut), required=True)
