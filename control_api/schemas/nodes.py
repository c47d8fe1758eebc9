from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import CORES, NODE_STATUSES
from .common import HostIP, db_integer, slug


class NodeIn(Schema):
    name = slug(64, required=True)
    public_ip = HostIP(allow_none=True, load_default=None)
    region = slug(required=True)
    location_tag = slug(required=True)
    core = fields.String(load_default="xray", validate=OneOf(CORES))
    capacity_score = db_integer(0, 10**6, load_default=100)


class NodeOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    public_ip = fields.String(allow_none=True)
    region = fields.String(required=True)
    location_tag = fields.String(required=True)
    status = fields.String(required=True, validate=OneOf(NODE_STATUSES))
    core = fields.String(required=True)
    capacity_score = fields.Integer(required=True)
    client_id = fields.String(required=True)
    last_seen_at = fields.DateTime(allow_none=True)
    desired_revision = fields.Integer(required=True)
    applied_revision = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)


class NodeCreatedOut(NodeOut):
    client_secret = fields.String(required=True, metadata={"description": "Shown once; only its hash is stored."})


class NodeList(Schema):
    items = fields.List(fields.Nested(NodeOut), required=True)
