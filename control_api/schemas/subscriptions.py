from __future__ import annotations

from typing import Any

from apiflask import Schema, fields

from ..subscription_documents import FORMATS
from .common import query_integer

_URL = "The user's subscription URL: a secret, as good as a password for their configs."


class SubscriptionOut(Schema):
    subscription_url = fields.String(required=True, metadata={"description": _URL})
    formats = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Documents the URL serves: ?format=one of these, or picked by the User-Agent."},
    )


class SubscriptionRotated(Schema):
    subscription_url = fields.String(required=True, metadata={"description": "The new URL; the old one is gone."})


class SubscriptionQuery(Schema):
    # Checked by the handler (400 for an unknown format), not here: the schema would make it a 422.
    format = fields.String(
        metadata={
            "description": "base64 (links, one a line, base64-encoded), singbox (JSON) or clash (mihomo YAML); "
            "default: by User-Agent (sing-box, SFA/SFI/SFM: singbox; clash, mihomo, stash: clash; else base64).",
            "enum": list(FORMATS),
        }
    )


class QrQuery(Schema):
    link = query_integer(
        0, 1000, load_default=0, metadata={"description": "Which of the config's share links (0: the first)."}
    )


# --- the documents GET /sub/<token> serves, as JSON Schema (what a client reads from them) ---------------

_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_PROTOCOLS = ["vless", "vmess"]
BASE64_DOCUMENT: dict[str, Any] = {
    "type": "string",
    "description": "The share links (vless://, vmess://), one a line, as standard base64 with padding; "
    "empty when the user has no active config.",
    "contentEncoding": "base64",
    "pattern": "^[A-Za-z0-9+/]*={0,2}$",
}
SINGBOX_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "A sing-box client config: a mixed inbound on loopback, one outbound per link, a selector "
    "and a URL test over them, and direct.",
    "required": ["log", "inbounds", "outbounds", "route"],
    "properties": {
        "log": {"type": "object"},
        "inbounds": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "tag", "listen", "listen_port"],
                "properties": {"type": {"const": "mixed"}, "listen_port": _PORT},
            },
        },
        "outbounds": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["type", "tag"],
                "properties": {
                    "type": {"enum": ["selector", "urltest", "direct", *_PROTOCOLS]},
                    "tag": {"type": "string", "minLength": 1},
                    "server_port": _PORT,
                    "uuid": {"type": "string", "format": "uuid"},
                },
            },
        },
        "route": {"type": "object", "required": ["final"], "properties": {"final": {"type": "string"}}},
    },
}
CLASH_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "A mihomo (Clash.Meta) config: the proxies, one select group, and a MATCH rule to it "
    "(to DIRECT when there are none).",
    "required": ["mixed-port", "mode", "proxies", "proxy-groups", "rules"],
    "properties": {
        "mixed-port": _PORT,
        "allow-lan": {"type": "boolean"},
        "mode": {"type": "string"},
        "log-level": {"type": "string"},
        "proxies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type", "server", "port", "uuid"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "type": {"enum": _PROTOCOLS},
                    "server": {"type": "string"},
                    "port": _PORT,
                    "uuid": {"type": "string", "format": "uuid"},
                },
            },
        },
        "proxy-groups": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "type", "proxies"]},
        },
        "rules": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    },
}
DOCUMENTS = {"base64": BASE64_DOCUMENT, "singbox": SINGBOX_DOCUMENT, "clash": CLASH_DOCUMENT}
SUBSCRIPTION_HEADERS: dict[str, Any] = {
    "subscription-userinfo": {
        "description": "Bytes used and allowed, and the expiry as unix time (total and expire only when every "
        "active config has one).",
        "required": True,
        "schema": {"type": "string", "pattern": "^upload=[0-9]+; download=[0-9]+(; total=[0-9]+)?(; expire=[0-9]+)?$"},
    },
    "profile-update-interval": {
        "description": "How often, in hours, a client should fetch the document again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "content-disposition": {"required": True, "schema": {"type": "string"}},
}
