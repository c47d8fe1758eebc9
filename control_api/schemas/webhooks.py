from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from ..models import DELIVERY_STATUSES, WEBHOOK_EVENTS
from .common import PageMeta, PageQuery, Pattern, StrictBoolean, Text, optional_text

URL = {
    "description": "Where events are POSTed: an http or https URL without credentials or a fragment (422 "
    "invalid_webhook_url otherwise). Delivery refuses an address inside the network (loopback, private, "
    "link-local) unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set.",
}
EVENTS = {"description": f"The events this endpoint receives, a subset of: {', '.join(WEBHOOK_EVENTS)}."}
SECRET = {
    "description": "The signing secret (16-128 visible ASCII characters). Omit it and one is generated. It is "
    "returned once, in the answer to the create, and never shown again."
}
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$"


def url_field(**kwargs: object) -> Text:
    return Text(
        validate=[Length(min=8, max=2048), Pattern(URL_PATTERN, error="Use an http:// or https:// URL.")],
        metadata=URL,
        **kwargs,  # type: ignore[arg-type]
    )


def events_field(**kwargs: object) -> fields.List:
    return fields.List(
        fields.String(validate=OneOf(WEBHOOK_EVENTS)),
        validate=Length(min=1, max=32),
        metadata=EVENTS,
        **kwargs,  # type: ignore[arg-type]
    )


def secret_field(**kwargs: object) -> Text:
    return Text(
        validate=[Length(min=16, max=128), Pattern(r"^[!-~]+$", error="Use visible ASCII characters only.")],
        metadata=SECRET,
        load_only=True,
        **kwargs,  # type: ignore[arg-type]
    )


class WebhookPatch(Schema):
    url = url_field()
    events = events_field()
    is_active = StrictBoolean(metadata={"description": "Inactive: nothing new is written for it; pending wait."})
    description = optional_text(200)
    secret = secret_field()


class WebhookIn(WebhookPatch):
    url = url_field(required=True)
    events = events_field(required=True)
    is_active = StrictBoolean(load_default=True)
    description = optional_text(200, load_default=None)
    secret = secret_field(load_default=None)


class WebhookOut(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True, metadata=EVENTS)
    is_active = fields.Boolean(required=True)
    description = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class WebhookCreatedOut(WebhookOut):
    secret = fields.String(required=True, metadata={"description": "Shown this once: keep it to verify signatures."})


class WebhookList(PageMeta):
    items = fields.List(fields.Nested(WebhookOut), required=True)


class DeliveryQuery(PageQuery):
    status = fields.String(validate=OneOf(DELIVERY_STATUSES))
    event = fields.String(validate=OneOf(WEBHOOK_EVENTS))


class DeliveryOut(Schema):
    id = fields.Integer(
        required=True, metadata={"description": "The X-Rayfleet-Delivery header: receivers dedupe on it."}
    )
    webhook_id = fields.Integer(required=True)
    event = fields.String(required=True)
    payload = fields.Dict(required=True, metadata={"description": "The body's data: ids, statuses, amounts."})
    status = fields.String(required=True, metadata={"description": "pending, delivered or failed."})
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)


class DeliveryList(PageMeta):
    items = fields.List(fields.Nested(DeliveryOut), required=True)
