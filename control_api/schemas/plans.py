from __future__ import annotations

from typing import Any

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import RENEWAL_DATA_RULES
from .common import PageMeta, StrictBoolean, db_integer, optional_text, slug, text

RULE = {
    "description": "What renewing a config with this plan does with the data of the period it follows: reset "
    "(the plan's MB from zero) or carry (the plan's MB plus what was left unused, when renewed before expiry)."
}


NAME_FA = {"description": "The name Persian-speaking customers read (stripped; empty or null: they read name)."}


class PlanIn(Schema):
    name = text(100, required=True)
    name_fa = optional_text(100, load_default=None, metadata=NAME_FA)
    location_tag = slug(
        required=True, metadata={"description": "Where the service is delivered, e.g. local or abroad."}
    )
    region = slug(allow_none=True, load_default=None)
    duration_days = db_integer(1, 3650, required=True)
    max_devices = db_integer(1, 100, required=True)
    data_limit_mb = db_integer(1, 10**9, required=True)
    is_constant_ip = StrictBoolean(load_default=False)
    price_cents = db_integer(0, 10**12, required=True)
    is_active = StrictBoolean(load_default=True)
    renewal_data_rule = fields.String(load_default="reset", validate=OneOf(RENEWAL_DATA_RULES), metadata=RULE)


class PlanPatch(PlanIn):
    """Every field optional; only the ones sent change (partial loading also skips the defaults)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)


class PlanOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    name_fa = fields.String(required=True, allow_none=True, metadata=NAME_FA)
    location_tag = fields.String(required=True)
    region = fields.String(allow_none=True)
    duration_days = fields.Integer(required=True)
    max_devices = fields.Integer(required=True)
    data_limit_mb = fields.Integer(required=True)
    is_constant_ip = fields.Boolean(required=True)
    price_cents = fields.Integer(required=True)
    is_active = fields.Boolean(required=True)
    renewal_data_rule = fields.String(required=True, validate=OneOf(RENEWAL_DATA_RULES), metadata=RULE)
    available = fields.Boolean(
        required=True,
        metadata={"description": "On sale and placeable now: an active node of its location has room."},
    )
    created_at = fields.DateTime(required=True)


class PlanQuery(Schema):
    location_tag = slug()
    region = slug()
    is_constant_ip = fields.Boolean()
    include_inactive = fields.Boolean(load_default=False, metadata={"description": "Admins only."})


class PlanList(PageMeta):
    items = fields.List(fields.Nested(PlanOut), required=True)
