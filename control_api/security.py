"""Who is calling: JWT principals of three kinds, and the decorator that lets only some kinds in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request

from .errors import Forbidden, error_body
from .extensions import db_session, jwt, kv_store
from .models import Admin, BotClient, Node
from .request_body import check_request_body

PRINCIPAL_KINDS = ("admin", "node", "bot")
SECURITY_SCHEME = "BearerAuth"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, or the system itself (CLI, sweeps). Doubles as the audit actor."""

    kind: str
    id: int | None
    name: str

    @property
    def actor_id(self) -> str | None:
        return None if self.id is None else str(self.id)


SYSTEM = Principal("system", None, "system")


def revoked_key(jti: str) -> str:
    return f"rayfleet:revoked:{jti}"


def load_principal(kind: str, principal_id: int) -> Principal | None:
    """The principal behind a token, or None if it was deleted or disabled since."""
    session = db_session()
    if kind == "admin":
        admin = session.get(Admin, principal_id)
        return Principal("admin", admin.id, admin.username) if admin and not admin.disabled_at else None
    if kind == "bot":
        bot = session.get(BotClient, principal_id)
        return Principal("bot", bot.id, bot.name) if bot and not bot.disabled_at else None
    if kind == "node":
        node = session.get(Node, principal_id)
        return Principal("node", node.id, node.name) if node and node.status != "disabled" else None
    return None


def init_security(app: Flask) -> None:
    def unauthorized(message: str) -> tuple[dict[str, Any], int]:
        return error_body(401, message), 401

    @jwt.user_lookup_loader
    def _lookup(_header: dict[str, Any], payload: dict[str, Any]) -> Principal | None:
        try:
            return load_principal(payload.get("kind", ""), int(payload["sub"]))
        except (KeyError, TypeError, ValueError):
            return None

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return kv_store().contains(revoked_key(payload["jti"]))

    jwt.user_lookup_error_loader(lambda _h, _p: unauthorized("The token's principal no longer exists or is disabled."))
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
