"""The JWT manager, with the verified claims of each token kept for reuse.

Verifying a token (PyJWT: the signature and, in Python, every base64 character of the token, three times over
in flask-jwt-extended's decode) costs more than the rest of a small request's authentication. A node sends the
same token with every heartbeat until it expires, so the claims verified once are kept, per app, under the exact
token string, and reused while the token has more than EXP_MARGIN_SECONDS left; nearer its expiry the token goes
through the full decode again (which refuses it once expired, with the library's own error). Only the decode is
cached: the blocklist (revocation) and the principal lookup (deleted, disabled, secret rotated) still run on
every request, after this (security.py).

flask-jwt-extended then reads the header of the token it has just verified once more, unverified, through PyJWT's
slow base64 path (view_decorators.get_unverified_jwt_headers): a twentieth of a heartbeat's CPU. That read is a
pure function of the token string, so it is kept too (install_header_cache)."""

from __future__ import annotations

import functools
import threading
import time
from types import MappingProxyType
from typing import Any

import jwt
from flask import current_app
from flask_jwt_extended import JWTManager, view_decorators

EXP_MARGIN_SECONDS = 2
MAX_CACHED_TOKENS = 20_000  # ≈ 1 KiB each; the cache starts over when full

MAX_CACHED_HEADERS = 4096
_create_lock = threading.Lock()


@functools.lru_cache(maxsize=MAX_CACHED_HEADERS)
def _header_of(encoded_token: str) -> MappingProxyType:
    return MappingProxyType(jwt.get_unverified_header(encoded_token))


def unverified_header(encoded_token: str) -> dict[str, Any]:
    """The token's header as get_unverified_jwt_headers reads it, decoded once per token string (a copy each time)."""
    return dict(_header_of(encoded_token))


def install_header_cache() -> None:
    """Make flask-jwt-extended's verification read headers through unverified_header (it names the function in
    view_decorators, where the read happens right after decode_token has verified the same token)."""
    view_decorators.get_unverified_jwt_headers = unverified_header


def _cache() -> dict[tuple[str, Any], dict[str, Any]]:
    extensions = current_app.extensions
    cache = extensions.get("rayfleet.jwt_claims")
    if cache is None:
        with _create_lock:
            cache = extensions.setdefault("rayfleet.jwt_claims", {})
    return cache


class CachingJWTManager(JWTManager):
    """flask-jwt-extended's manager; decode_token (and so verify_jwt_in_request) reuses verified claims."""

    def init_app(self, app: Any, add_context_processor: bool = False) -> None:
        super().init_app(app, add_context_processor)
        install_header_cache()

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False) -> dict:
        if allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        cache = _cache()
        key = (encoded_token, csrf_value)
        claims = cache.get(key)
        if claims is not None and claims["exp"] - time.time() > EXP_MARGIN_SECONDS:
            return dict(claims)  # a copy: the caller keeps it in flask.g
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if isinstance(claims.get("exp"), int | float):
            if len(cache) >= MAX_CACHED_TOKENS:
                cache.clear()
            cache[key] = dict(claims)
        return claims
