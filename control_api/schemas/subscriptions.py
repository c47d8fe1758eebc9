from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Range

from ..subscription_documents import FORMATS

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
    link = fields.Integer(
        load_default=0,
        validate=Range(min=0, max=1000),
        metadata={"description": "Which of the config's share links (0: the first)."},
    )
