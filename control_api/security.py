"""The Flask/JWT adapter: tokens in and out, who is calling, and the decorator that lets only some
principal kinds in. The principals themselves are plain data (actors.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask
from flask_jwt_extended import create_access_token, get_current_user, get_jwt, verify_jwt_in_request

from .actors import PRINCIPAL_KINDS, Principal
from .errors import Forbidden
from .extensions import db_session, jwt, kv_store
from .http_errors import error_body
from .request_body import check_request_body
from .services.auth import load_principal, revoked_key

SECURITY_SCHEME = "BearerAuth"

F = TypeVar("F", bound=Callable[..., Any])


def access_token(principal: Principal, ttl_seconds: int) -> dict[str, Any]:
    """A signed bearer token for PRINCIPAL, as POST /auth/token answers it."""
    token = create_access_token(
        identity=str(principal.id),
        # sv: the secret version the caller proved; a rotation makes the token stale (services/auth.py).
        additional_claims={"kind": principal.kind, "name": principal.name, "sv": principal.secret_version},
        expires_delta=timedelta(seconds=ttl_seconds),
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl_seconds, "kind": principal.kind}


def init_security(app: Flask) -> None:
    def unauthorized(message: str) -> tuple[dict[str, Any], int]:
        return error_body(401, message), 401

    @jwt.user_lookup_loader
    def _lookup(_header: dict[str, Any], payload: dict[str, Any]) -> Principal | None:
        try:
            return load_principal(db_session(), payload.get("kind", ""), int(payload["sub"]), int(payload.get("sv", 0)))
        except (KeyError, TypeError, ValueError):
            return None

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return kv_store().contains(revoked_key(payload["jti"]))

    jwt.user_lookup_error_loader(
        lambda _h, _p: unauthorized("The token's principal no longer exists, is disabled, or changed its secret.")
    )
    jwt.revoked_token_loader(lambda _h, _p: unauthorized("The token has been revoked."))
    jwt.expired_token_loader(lambda _h, _p: unauthorized("The token has expired."))
    jwt.invalid_token_loader(lambda reason: unauthorized("The token is invalid."))
    jwt.unauthorized_loader(lambda reason: unauthorized("A bearer token is required."))
    jwt.needs_fresh_token_loader(lambda _h, _p: unauthorized("A fresh token is required."))


def current_principal() -> Principal:
    return get_current_user()


def require(*kinds: str) -> Callable[[F], F]:
    """Allow only the given principal kinds; everyone else gets 401 (no token) or 403."""
    unknown = set(kinds) - set(PRINCIPAL_KINDS)
    if unknown:
        raise ValueError(f"unknown principal kinds: {sorted(unknown)}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if get_jwt().get("kind") not in kinds:
                raise Forbidden(f"This endpoint is for: {', '.join(kinds)}.")
            check_request_body(after_auth=True)
            return view(*args, **kwargs)

        # Read by the spec builder (api/common.py) to document security and 401/403.
        wrapper._rayfleet_kinds = kinds  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
