"""Customer segments, for the bot's broadcasts: who is in each, as one query per segment.

- **all**: every customer.
- **active**: has a config served now (pending or active, and not past its expiry; a trial or a temporary
  config counts: the customer has a service today).
- **expired**: had a paid config (kind "full": approved, bought from the balance, or given by an admin) and
  has none served now (expired, out of data or suspended).
- **never_bought**: no approved purchase payment and no purchase from the balance (a trial, a pending or
  rejected proof, or a top-up alone is not a purchase).

Only admins see segments (a list of every customer's Telegram id is the whole customer base): an admin
credential, or the bot acting for a Telegram admin (acting_telegram_id), so a leaked bot token alone lists
nobody. The first page of a broadcast's walk is audited: who listed which segment.

Banned customers are in no segment. Members are paged by user id (keyset: `after_id`, the last id of the
previous page), so a broadcast that stopped resumes after the last customer it reached, whatever joined or
left meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, true
from sqlalchemy.orm import Session

from ..models import Payment, User, UserConfig, WalletEntry, utcnow
from . import audit
from .principals import Principal, acting_admin
from .revisions import SERVED_STATUSES

SEGMENTS = ("all", "active", "expired", "never_bought")


def _served_now(now: datetime) -> ColumnElement[bool]:
    return exists().where(
        UserConfig.user_id == User.id,
        UserConfig.status.in_(SERVED_STATUSES),
        or_(UserConfig.expires_at.is_(None), UserConfig.expires_at > now),
    )


def _had_paid_config() -> ColumnElement[bool]:
    return exists().where(UserConfig.user_id == User.id, UserConfig.kind == "full")


def _bought() -> ColumnElement[bool]:
    by_proof = exists().where(Payment.user_id == User.id, Payment.purpose == "purchase", Payment.status == "approved")
    from_balance = exists().where(WalletEntry.user_id == User.id, WalletEntry.reason == "purchase")
    return or_(by_proof, from_balance)


def _condition(segment: str, now: datetime) -> ColumnElement[bool]:
    if segment == "active":
        return _served_now(now)
    if segment == "expired":
        return _had_paid_config() & ~_served_now(now)
    if segment == "never_bought":
        return ~_bought()
    if segment == "all":
        return true()
    raise ValueError(f"unknown segment {segment!r}")  # the route admits SEGMENTS only


def members(segment: str, now: datetime | None = None) -> Select[Any]:
    """The segment's customers (user id, Telegram id, language), banned ones left out, by user id."""
    return (
        select(User.id, User.telegram_id, User.language)
        .where(User.ban_reason.is_(None), _condition(segment, now or utcnow()))
        .order_by(User.id)
    )


def page(
    session: Session,
    caller: Principal,
    acting_telegram_id: int | None,
    segment: str,
    after_id: int,
    limit: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Up to LIMIT members with a user id above AFTER_ID; next_after_id is the last one's id while more follow.
    For admins only (module docstring); the first page is audited."""
    reader = acting_admin(session, caller, acting_telegram_id)
    if after_id == 0:
        audit.record(session, reader, "segment.list", segment=segment)
        session.commit()
    rows = session.execute(members(segment, now).where(User.id > after_id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [{"user_id": row.id, "telegram_id": row.telegram_id, "language": row.language} for row in rows],
        "next_after_id": rows[-1].id if more else None,
    }


def counts(
    session: Session, caller: Principal, acting_telegram_id: int | None, now: datetime | None = None
) -> dict[str, Any]:
    """How many customers each segment has now (admins only, as the members)."""
    acting_admin(session, caller, acting_telegram_id)
    now = now or utcnow()
    items = []
    for segment in SEGMENTS:
        counted = select(func.count()).select_from(members(segment, now).order_by(None).subquery())
        items.append({"segment": segment, "count": session.scalar(counted)})
    return {"items": items}
