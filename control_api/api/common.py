"""Helpers shared by the blueprints."""

from __future__ import annotations

from flask import current_app, request

from ..config import Settings
from ..security import SECURITY_SCHEME

BEARER = SECURITY_SCHEME
API_PREFIX = "/api/v1"


def settings() -> Settings:
    return current_app.extensions["rayfleet.settings"]


def client_ip() -> str:
    # remote_addr is already the real client when TRUSTED_PROXY_COUNT lets ProxyFix rewrite it.
    return request.remote_addr or "unknown"
