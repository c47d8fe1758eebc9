"""Logging in (three principal kinds), rate limits on it, who a token's subject is now, and revocation.

The token itself is minted and read by the HTTP adapter (security.py); this module only decides.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import RateLimited, Unauthorized
from ..kvstore import KeyValueStore
from ..models import Admin, BotClient, Node
from ..prepared_statements import PREPARED
from .credentials import verify_secret

log = logging.getLogger(__name__)


def _enforce_rate(store: KeyValueStore, key: str, limit: tuple[int, int], what: str) -> None:
    allowed, window = limit
    count, seconds_left = store.hit(key, window)
    if count > allowed:
        raise RateLimited(f"Too many login attempts from this {what}; try again later.", retry_after=seconds_left)


def _failures_key(client_ip: str, kind: str, identifier: str) -> str:
    return f"rayfleet:login:fail:{client_ip}:{kind}:{identifier}"


def secret_version(row: Admin | BotClient | Node) -> int:
    """The version of ROW's current secret: when it was last rotated, in microseconds (0: never)."""
    return _version_of(row.secret_rotated_at)


def _version_of(rotated: datetime | None) -> int:
    return 0 if rotated is None else int(rotated.timestamp() * 1_000_000)


def _principal_row(table: Table, name: ColumnElement, live: ColumnElement) -> Select:
    """(name, live, secret_rotated_at) of the principal :id in TABLE: a Core read, built once (every request with a
    token runs one; loading the ORM object cost a node's heartbeat more than PostgreSQL's part of it)."""
    return (
        select(name, live, table.c.secret_rotated_at).where(table.c.id == bindparam("id")).execution_options(**PREPARED)
    )


_PRINCIPAL_ROWS = {
    "admin": _principal_row(Admin.__table__, Admin.__table__.c.username, Admin.__table__.c.disabled_at.is_(None)),
    "bot": _principal_row(BotClient.__table__, BotClient.__table__.c.name, BotClient.__table__.c.disabled_at.is_(None)),
    "node": _principal_row(Node.__table__, Node.__table__.c.name, Node.__table__.c.status != "disabled"),
}


def _authenticate(session: Session, kind: str, identifier: str, secret: str) -> Principal | None:
    row: Admin | BotClient | Node | None
    if kind == "admin":
        row = session.scalar(select(Admin).where(Admin.username == identifier))
        ok = verify_secret(row.password_hash if row else None, secret)
        live, name = row is not None and not row.disabled_at, row.username if row else ""
    elif kind == "bot":
        row = session.scalar(select(BotClient).where(BotClient.client_id == identifier))
        ok = verify_secret(row.secret_hash if row else None, secret)
        live, name = row is not None and not row.disabled_at, row.name if row else ""
    else:
        row = session.scalar(select(Node).where(Node.client_id == identifier))
        ok = verify_secret(row.secret_hash if row else None, secret)
        live, name = row is not None and row.status != "disabled", row.name if row else ""
    if not (ok and row is not None and live):
        return None
    return Principal(kind, row.id, name, secret_version=secret_version(row))


def revoked_key(jti: str) -> str:
    return f"rayfleet:revoked:{jti}"


def load_principal(session: Session, kind: str, principal_id: int, token_version: int = 0) -> Principal | None:
    """The principal behind a token, or None if it was deleted or disabled since, or if its secret was
    rotated after the token was minted (TOKEN_VERSION, the secret version the token carries)."""
    statement = _PRINCIPAL_ROWS.get(kind)
    if statement is None:
        return None
    row = session.connection().execute(statement, {"id": principal_id}).first()
    if row is None:
        return None
    name, live, rotated = row
    if not live or _version_of(rotated) != token_version:
        return None
    return Principal(kind, principal_id, name, secret_version=token_version)


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
    allowed = settings.login_rate_per_username[0]
    failures_key = _failures_key(client_ip, kind, identifier)
    failures, seconds_left = store.peek(failures_key)
    if failures >= allowed:
        raise RateLimited(
            "Too many failed logins to this account from this address; try again later.", retry_after=seconds_left
        )
    principal = _authenticate(session, kind, identifier, secret)
    if principal is None:
        refuse_login(store, settings, client_ip, kind, identifier)
    log.info("login kind=%s id=%s", principal.kind, principal.id)
    return principal


def refuse_login(store: KeyValueStore, settings: Settings, client_ip: str, kind: str, identifier: str) -> NoReturn:
    """Count a failed login against (address, account) and say no (a wrong second factor counts too)."""
    store.hit(_failures_key(client_ip, kind, identifier), settings.login_rate_per_username[1])
    log.info("login refused kind=%s ip=%s", kind, client_ip)
    raise Unauthorized("Invalid credentials.", code="invalid_credentials")


def revoke_token(store: KeyValueStore, claims: dict[str, Any]) -> None:
    """Block the token until it would have expired anyway."""
    store.put(revoked_key(claims["jti"]), int(claims["exp"] - time.time()) + 1)
