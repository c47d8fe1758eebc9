"""Helpers shared by the blueprints."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from apiflask import Schema
from flask import Response, current_app, request

from ..config import Settings
from ..schemas.dumping import dump
from ..security import SECURITY_SCHEME
from ..services.node_health import HealthPolicy

BEARER = SECURITY_SCHEME
API_PREFIX = "/api/v1"
# The 422 of an operation that takes acting_telegram_id: one schema serves the bot and admins, so the
# rule about who sends it is written here (and in the field's description), not in the schema.
ACTING_ADMIN_422 = (
    "The request does not match the schema (validation_error); or acting_telegram_id breaks the rule: "
    "the bot must send it (acting_admin_required), an admin must not (not_for_admins)"
)


def settings() -> Settings:
    return current_app.extensions["rayfleet.settings"]


def health_policy() -> HealthPolicy:
    return HealthPolicy.from_settings(settings())


def client_ip() -> str:
    # remote_addr is already the real client when TRUSTED_PROXY_COUNT lets ProxyFix rewrite it.
    return request.remote_addr or "unknown"


@cache
def _instance(schema: type[Schema]) -> Schema:
    return schema()


def dumped(schema: type[Schema], data: Any) -> Response:
    """DATA as @bp.output(SCHEMA) answers it (the same JSON, status 200), serialised by schemas/dumping.py: for
    the big lists, where marshmallow's own dump costs more than the queries. Encoded by orjson, keys sorted
    as Flask's own provider sorts them: the standard library's encoder cost a tenth of a 1,000-node list."""
    body = orjson.dumps(dump(_instance(schema), data), option=orjson.OPT_SORT_KEYS)
    return current_app.response_class(body, mimetype=current_app.json.mimetype)
