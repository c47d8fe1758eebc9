from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from .common import OneOfSchema, text


class AdminTokenIn(Schema):
    kind = fields.String(required=True, validate=OneOf(["admin"]))
    username = text(64, required=True)
    password = text(256, required=True)
    totp_code = fields.String(
        load_default="",
        validate=Length(max=16),
        metadata={"description": "The current code of the admin's authenticator app, once two-factor is on (console)."},
    )


class ClientTokenIn(Schema):
    kind = fields.String(required=True, validate=OneOf(["node", "bot"]))
    client_id = text(64, required=True, metadata={"description": "From POST /nodes, or create-bot-client."})
    client_secret = text(256, required=True)


class TokenIn(OneOfSchema):
    """Admins log in with username + password, node agents and bot services with client_id + client_secret."""

    one_of = (AdminTokenIn, ClientTokenIn)
    discriminator = "kind"


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
