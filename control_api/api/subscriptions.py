"""Subscriptions: the public /sub/<token> documents, the URL and its rotation, QR codes of the URL and of links."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, request

from ..extensions import db_session
from ..schemas.subscriptions import (
    DOCUMENTS,
    SUBSCRIPTION_HEADERS,
    QrQuery,
    SubscriptionOut,
    SubscriptionQuery,
    SubscriptionRotated,
)
from ..security import current_principal, require
from ..services import subscriptions as subscription_service
from ..subscription_documents import MEDIA_TYPES
from .common import API_PREFIX, BEARER, settings

bp = APIBlueprint("subscriptions", __name__, tag="Subscriptions")

_DOCUMENTS = {
    "description": "The user's active configs as a document of the chosen format (none for a banned user: "
    "an empty document)",
    "headers": SUBSCRIPTION_HEADERS,
    "content": {MEDIA_TYPES[name].split(";")[0]: {"schema": schema} for name, schema in DOCUMENTS.items()},
}
_PNG_CONTENT = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
_PNG = {"description": "A PNG QR code of the share link", "content": _PNG_CONTENT}
_SUBSCRIPTION_PNG = {"description": "A PNG QR code of the user's subscription URL", "content": _PNG_CONTENT}


def _base_url() -> str:
    return settings().public_base_url or request.host_url


@bp.get("/sub/<token>")
@bp.input(SubscriptionQuery, location="query", arg_name="query")
@bp.doc(
    summary="A user's subscription: their share links, base64, or a sing-box or Clash document",
    description="Public: the secret token is the credential. The format is ?format= or picked by User-Agent.",
    responses={200: _DOCUMENTS, 400: "Unknown format", 404: "No such subscription"},
)
def subscription(token: str, query: dict) -> Response:
    served = subscription_service.serve(db_session(), token, query.get("format"), request.headers.get("User-Agent"))
    return Response(served.body, status=200, content_type=served.mimetype, headers=served.headers)


@bp.get(f"{API_PREFIX}/users/<int:user_id>/subscription")
@require("admin", "bot")
@bp.output(SubscriptionOut)
@bp.doc(summary="A user's subscription URL and the formats it serves", security=BEARER, tags=["Users"])
def get_subscription(user_id: int):
    return subscription_service.describe(db_session(), user_id, _base_url())


@bp.post(f"{API_PREFIX}/users/<int:user_id>/subscription/rotate")
@require("admin", "bot")
@bp.output(SubscriptionRotated)
@bp.doc(summary="Give a user a new subscription URL; the old one stops working", security=BEARER, tags=["Users"])
def rotate_subscription(user_id: int):
    return subscription_service.rotate(db_session(), current_principal(), user_id, _base_url())


@bp.get(f"{API_PREFIX}/users/<int:user_id>/subscription/qr.png")
@require("admin", "bot")
@bp.doc(
    summary="A QR code (PNG) of a user's subscription URL",
    description="What a client app scans once: the URL serves the links of every active config of the user, "
    "through renewals and moves between servers. The URL is a secret: so is its QR code.",
    security=BEARER,
    tags=["Users"],
    responses={200: _SUBSCRIPTION_PNG, 404: "No such user"},
)
def subscription_qr(user_id: int) -> Response:
    png = subscription_service.subscription_qr_png(db_session(), user_id, _base_url())
    return Response(png, status=200, mimetype="image/png", headers={"cache-control": "no-store"})


@bp.get(f"{API_PREFIX}/configs/<int:config_id>/qr.png")
@require("admin", "bot")
@bp.input(QrQuery, location="query", arg_name="query")
@bp.doc(
    summary="A QR code (PNG) of one of the config's share links",
    security=BEARER,
    tags=["Configs"],
    responses={200: _PNG, 404: "No such config, or it has no link at that index"},
)
def config_qr(config_id: int, query: dict) -> Response:
    png = subscription_service.config_qr_png(db_session(), config_id, query["link"])
    return Response(png, status=200, mimetype="image/png", headers={"cache-control": "no-store"})
