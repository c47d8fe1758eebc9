"""Logging in (three principal kinds), rate limits on it, who a token's subject is now, and revocation.

The token itself is minted and read by the HTTP adapter (security.py); this module only decides.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import RateLimited, Unauthorized
from ..kvstore import KeyValueStore
from ..models import Admin, BotClient, Node
from .credentials import verify_secret

log = logging.getLogger(__name__)


def _enforce_rate(store: KeyValueStore, key: str, limit: tuple[int, int], what: str) -> None:
    allowed, window = limit
    count, seconds_left = store.hit(key, window)
    if count > allowed:
        raise RateLimited(f"Too many login attempts from this {what}; try again later.", retry_after=seconds_left)


def _failures_key(client_ip: str, kind: str, identifier: str) -> str:
    return f"rayfleet:login:fail:{client_ip}:{kind}:{identifier}"


def _authenticate(session: Session, kind: str, identifier: str, secret: str) -> Principal | None:
    if kind == "admin":
        admin = session.scalar(select(Admin).where(Admin.username == identifier))
        ok = verify_secret(admin.password_hash if admin else None, secret)
        return Principal("admin", admin.id, admin.username) if ok and admin and not admin.disabled_at else None
    if kind == "bot":
        bot = session.scalar(select(BotClient).where(BotClient.client_id == identifier))
        ok = verify_secret(bot.secret_hash if bot else None, secret)
        return Principal("bot", bot.id, bot.name) if ok and bot and not bot.disabled_at else None
    node = session.scalar(select(Node).where(Node.client_id == identifier))
    ok = verify_secret(node.secret_hash if node else None, secret)
    return Principal("node", node.id, node.name) if ok and node and node.status != "disabled" else None


def revoked_key(jti: str) -> str:
    return f"rayfleet:revoked:{jti}"


def load_principal(session: Session, kind: str, principal_id: int) -> Principal | None:
    """The principal behind a token, or None if it was deleted or disabled since."""
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


def log_in(
    session: Session, store: KeyValueStore, settings: Settings, credentials: dict[str, Any], client_ip: str
) -> Principal:
    """The principal these credentials prove, within the rate limits; Unauthorized or RateLimited otherwise."""
    kind = credentials["kind"]
    identifier = credentials.get("username") or credentials["client_id"]
    secret = credentials.get("password") or credentials["client_secret"]
    # Every attempt counts against the address. Only failures count against (address, account): a
    # stranger guessing from elsewhere cannot lock the account's owner out (issue 13.3).
    _enforce_rate(store, f"rayfleet:login:ip:{client_ip}", settings.login_rate_per_ip, "address")
    allowed, window = settings.login_rate_per_username
    failures_key = _failures_key(client_ip, kind, identifier)
    failures, seconds_left = store.peek(failures_key)
    if failures >= allowed:
        raise RateLimited(
            "Too many failed logins to this account from this address; try again later.", retry_after=seconds_left
        )
    principal = _authenticate(session, kind, identifier, secret)
    if principal is None:
        store.hit(failures_key, window)
        log.info("login refused kind=%s ip=%s", kind, client_ip)
        raise Unauthorized("Invalid credentials.", code="invalid_credentials")
    log.info("login kind=%s id=%s", principal.kind, principal.id)
    return principal


def revoke_token(store: KeyValueStore, claims: dict[str, Any]) -> None:
    """Block the token until it would have expired anyway."""
    store.put(revoked_key(claims["jti"]), int(claims["exp"] - time.time()) + 1)
