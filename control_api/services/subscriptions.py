"""Subscriptions: a user's secret URL, what it serves (the links of their active configs), rotation; QR codes.

Tokens are secrets: they never go into logs, audit details or error messages.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import subscription_documents as documents
from ..actors import Principal
from ..errors import DomainError, NotFound
from ..models import Node, User, UserConfig
from . import audit
from .configs import get_config, share_links
from .lookup import get_or_404
from .users import new_subscription_token

# What new_subscription_token() makes (token_urlsafe: base64url) fits this; anything else cannot be a token.
TOKEN_PATTERN = "^[A-Za-z0-9_-]{16,64}$"  # noqa: S105 - a shape, not a secret; the spec says it of /sub/{token}
_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)
# Looked up instead of a malformed token, so every unknown token costs the same query.
_NEVER_A_TOKEN = "!"  # noqa: S105 - a placeholder no token can equal, not a secret
BYTES_PER_MB = 1024 * 1024
UPDATE_INTERVAL_HOURS = 12


@dataclass(frozen=True)
class Served:
    """A rendered subscription: the document and the headers clients read beside it."""

    body: str
    mimetype: str
    headers: dict[str, str] = field(default_factory=dict)


def subscription_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/sub/{token}"


def describe(session: Session, user_id: int, base_url: str) -> dict[str, object]:
    user = get_or_404(session, User, user_id, "User")
    return {"subscription_url": subscription_url(base_url, user.subscription_token), "formats": list(documents.FORMATS)}


def rotate(session: Session, actor: Principal, user_id: int, base_url: str) -> dict[str, object]:
    """Give the user a new token: the old subscription URL stops working at once."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    user.subscription_token = new_subscription_token()
    audit.record(session, actor, "user.subscription_rotate", user_id=user.id)
    session.commit()
    return {"subscription_url": subscription_url(base_url, user.subscription_token)}


def user_by_token(session: Session, token: str) -> User:
    """The user whose subscription token is TOKEN; one generic NotFound for every unknown token.

    The token is looked up by its unique index, then compared in constant time; a token of the wrong
    shape still costs one (fruitless) query, so the response's timing does not sort tokens by shape.
    """
    lookup = token if _TOKEN_SHAPE.fullmatch(token) else _NEVER_A_TOKEN
    user = session.scalar(select(User).where(User.subscription_token == lookup))
    stored = user.subscription_token if user is not None else _NEVER_A_TOKEN
    matches = hmac.compare_digest(stored.encode(), token.encode("utf-8", "replace"))
    if user is None or not matches:
        raise NotFound("Not Found")  # the body of any unknown URL: the token reveals nothing
    return user


def active_configs(session: Session, user: User) -> list[tuple[UserConfig, Node | None]]:
    """The user's active configs with their nodes; none for a banned user."""
    if user.is_banned:
        return []
    configs = session.scalars(
        select(UserConfig).where(UserConfig.user_id == user.id, UserConfig.status == "active").order_by(UserConfig.id)
    ).all()
    # A moving config's links name its source until the target serves it (UserConfig.link_node_id).
    node_ids = {config.link_node_id for config in configs if config.link_node_id is not None}
    nodes = {node.id: node for node in session.scalars(select(Node).where(Node.id.in_(node_ids)))}
    return [(config, nodes.get(config.link_node_id) if config.link_node_id else None) for config in configs]


def _userinfo(configs: list[UserConfig]) -> str:
    """Usage sums over the active configs; a limit or expiry any of them lacks (unlimited) is left out."""
    download = sum(config.used_bytes or 0 for config in configs)
    limits = [config.data_limit_mb for config in configs]
    total = sum(limit * BYTES_PER_MB for limit in limits) if configs and None not in limits else None  # type: ignore[operator]
    expiries: list[datetime | None] = [config.expires_at for config in configs]
    expire = max(expiries) if configs and None not in expiries else None  # type: ignore[type-var]
    return documents.userinfo(download=download, total=total, expire=expire)


def serve(session: Session, token: str, requested_format: str | None, user_agent: str | None) -> Served:
    """The subscription document for TOKEN (an empty document when nothing is active), in the format
    asked for (?format=) or the one the client's USER_AGENT reads."""
    try:
        fmt = documents.choose_format(requested_format, user_agent)
    except documents.UnknownFormat as exc:
        raise DomainError(str(exc), code="unknown_format") from None
    user = user_by_token(session, token)
    pairs = active_configs(session, user)
    links = [link for config, node in pairs if node is not None for link in share_links(node, config)]
    document = documents.render(fmt, links)
    headers = {
        "subscription-userinfo": _userinfo([config for config, _node in pairs]),
        "profile-update-interval": str(UPDATE_INTERVAL_HOURS),
        "content-disposition": 'attachment; filename="rayfleet"',
        "cache-control": "no-store",
    }
    return Served(document.body, document.mimetype, headers)


def subscription_qr_png(session: Session, user_id: int, base_url: str) -> bytes:
    """A QR code of the user's subscription URL: what a client app scans once to stay connected (it serves the
    links of every active config, through renewals and moves between servers)."""
    user = get_or_404(session, User, user_id, "User")
    return documents.qr_png(subscription_url(base_url, user.subscription_token))


def config_qr_png(session: Session, config_id: int, index: int) -> bytes:
    """A QR code of the config's INDEXth share link (0: the first)."""
    config = get_config(session, config_id)
    node = session.get(Node, config.link_node_id) if config.link_node_id is not None else None
    links = share_links(node, config) if node is not None else []
    if not links:
        raise NotFound(f"Config {config_id} has no share links yet (its node has no address or inbounds).")
    if index >= len(links):
        raise NotFound(f"Config {config_id} has {len(links)} share link(s); link={index} is out of range.")
    return documents.qr_png(links[index])
