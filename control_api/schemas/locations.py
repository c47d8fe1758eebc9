from __future__ import annotations

from apiflask import Schema, fields

from .common import PageMeta, db_integer, optional_text, slug, text

TAG = {"description": "The location tag plans and nodes carry (e.g. local, abroad); unique, and fixed once created."}
NAME_FA = {"description": "The name Persian-speaking customers read (stripped; empty or null: they read name)."}
SORT = {"description": "Lists are ordered by sort_order, then tag."}


class LocationPatch(Schema):
    """The names and the order change; the tag does not (plans and nodes point at it)."""

    name = text(64, metadata={"description": "The name customers read (in English, and in Persian without name_fa)."})
    name_fa = optional_text(64, metadata=NAME_FA)
    sort_order = db_integer(0, 1_000_000, metadata=SORT)


class LocationIn(LocationPatch):
    tag = slug(required=True, metadata=TAG)
    name = text(64, required=True, metadata={"description": "The name customers read (English)."})
    name_fa = optional_text(64, load_default=None, metadata=NAME_FA)
    sort_order = db_integer(0, 1_000_000, load_default=0, metadata=SORT)


class LocationOut(Schema):
    id = fields.Integer(required=True)
    tag = fields.String(required=True, metadata=TAG)
    name = fields.String(required=True)
    name_fa = fields.String(required=True, allow_none=True, metadata=NAME_FA)
    sort_order = fields.Integer(required=True, metadata=SORT)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class LocationList(PageMeta):
    items = fields.List(fields.Nested(LocationOut), required=True)
