from __future__ import annotations

from typing import Any

from apiflask import Schema, fields
from apiflask.validators import OneOf
from marshmallow import ValidationError, validates_schema

from ..actors import PRINCIPAL_KINDS
from .common import text


class TokenIn(Schema):
    kind = fields.String(required=True, validate=OneOf(PRINCIPAL_KINDS), metadata={"description": "admin, node or bot"})
    username = text(64, metadata={"description": "Admins only."})
    password = text(256, metadata={"description": "Admins only."})
    client_id = text(64, metadata={"description": "Nodes and bots only."})
    client_secret = text(256, metadata={"description": "Nodes and bots only."})

    @validates_schema
    def _fields_match_kind(self, data: dict[str, Any], **_kwargs: Any) -> None:
        needed = ("username", "password") if data.get("kind") == "admin" else ("client_id", "client_secret")
        foreign = ("client_id", "client_secret") if data.get("kind") == "admin" else ("username", "password")
        errors = {name: ["Required for this kind."] for name in needed if name not in data}
        errors.update({name: ["Not used by this kind."] for name in foreign if name in data})
        if errors:
            raise ValidationError(errors)


class TokenOut(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds until the token expires."})
    kind = fields.String(required=True)


class WhoAmIOut(Schema):
    kind = fields.String(required=True)
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
