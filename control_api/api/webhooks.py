"""Webhooks: endpoints that receive signed events, and their delivery logs (services/webhooks.py). Admins only."""

from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.common import PageQuery
from ..schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    DeliveryQuery,
    WebhookCreatedOut,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)
from ..security import current_principal, require
from ..services import webhooks as webhook_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("webhooks", __name__, url_prefix=f"{API_PREFIX}/webhooks", tag="Webhooks")

BAD_URL = (
    "The body does not match the schema (validation_error), or the URL is not an http(s) URL with a host and "
    "without credentials or a fragment (invalid_webhook_url: rules a pattern cannot state in full)"
)


@bp.get("")
@require("admin")
@bp.input(PageQuery, location="query", arg_name="filters")
@bp.output(WebhookList)
@bp.doc(summary="Registered webhooks (without their secrets)", security=BEARER)
def list_webhooks(filters: dict) -> dict:
    return webhook_service.list_webhooks(db_session(), filters)


@bp.post("")
@require("admin")
@bp.input(WebhookIn, arg_name="data")
@bp.output(WebhookCreatedOut, status_code=201, description="Created; the secret is shown this once")
@bp.doc(
    summary="Register a webhook endpoint; audited",
    description="Each event is POSTed as JSON with X-Rayfleet-Event, X-Rayfleet-Delivery, X-Rayfleet-Timestamp and "
    "X-Rayfleet-Signature (sha256=HMAC-SHA256(secret, timestamp + '.' + body)); see docs/webhooks.md.",
    security=BEARER,
    responses={422: BAD_URL},
)
def create_webhook(data: dict):
    return webhook_service.create_webhook(db_session(), current_principal(), data), 201


@bp.get("/<int:webhook_id>")
@require("admin")
@bp.output(WebhookOut)
@bp.doc(summary="One webhook (without its secret)", security=BEARER)
def get_webhook(webhook_id: int) -> dict:
    return webhook_service.get_webhook(db_session(), webhook_id)


@bp.patch("/<int:webhook_id>")
@require("admin")
@bp.input(WebhookPatch, arg_name="changes")
@bp.output(WebhookOut)
@bp.doc(
    summary="Change a webhook's URL, events, active flag, description or secret; audited",
    security=BEARER,
    responses={422: BAD_URL},
)
def update_webhook(webhook_id: int, changes: dict) -> dict:
    return webhook_service.update_webhook(db_session(), current_principal(), webhook_id, changes)


@bp.delete("/<int:webhook_id>")
@require("admin")
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a webhook and its delivery log; audited", security=BEARER)
def delete_webhook(webhook_id: int) -> tuple[str, int]:
    webhook_service.delete_webhook(db_session(), current_principal(), webhook_id)
    return "", 204


@bp.get("/<int:webhook_id>/deliveries")
@require("admin")
@bp.input(DeliveryQuery, location="query", arg_name="filters")
@bp.output(DeliveryList)
@bp.doc(summary="A webhook's delivery log, newest first", security=BEARER)
def list_deliveries(webhook_id: int, filters: dict) -> dict:
    return webhook_service.list_deliveries(db_session(), webhook_id, filters)


@bp.post("/<int:webhook_id>/deliveries/<int:delivery_id>/retry")
@require("admin")
@bp.output(DeliveryOut)
@bp.doc(
    summary="Send a failed or pending delivery again now, with a fresh set of attempts (same delivery id); audited",
    security=BEARER,
    responses={409: "The delivery was delivered already (already_delivered)"},
)
def retry_delivery(webhook_id: int, delivery_id: int) -> dict:
    return webhook_service.retry_delivery(db_session(), current_principal(), webhook_id, delivery_id)
