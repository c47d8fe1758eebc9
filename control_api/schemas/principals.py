from __future__ import annotations

from apiflask import Schema, fields


class PrincipalOut(Schema):
    kind = fields.String(required=True, metadata={"description": "admin, bot or node"})
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    client_id = fields.String(allow_none=True, metadata={"description": "Bot clients and nodes log in with it."})
    disabled = fields.Boolean(required=True)
    disabled_at = fields.DateTime(allow_none=True)
    secret_rotated_at = fields.DateTime(
        allow_none=True, metadata={"description": "Tokens issued before this moment are refused."}
    )
    created_at = fields.DateTime(required=True)


class PrincipalList(Schema):
    items = fields.List(fields.Nested(PrincipalOut), required=True)


class RotatedSecretOut(PrincipalOut):
    secret = fields.String(
        required=True,
        metadata={"description": "The new secret (an admin's password), shown once; only its hash is stored."},
    )
