"""Telegram customers: upsert from the bot, listing, bans."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Payment, User, columns_of, utcnow
from . import audit, referrals
from .bans import apply_ban, resumable_after_unban
from .lookup import get_or_404
from .revisions import Dispatch, bump, commit_and_dispatch, serving_nodes


def new_subscription_token() -> str:
    return secrets.token_urlsafe(24)


def get_user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id, "User")


def user_views(session: Session, users: list[User], max_pending_payments: int) -> list[dict[str, Any]]:
    """USERS with their payments in review and whether they may order now (not banned, under the
    pending-payment limit), so that the bot refuses before the customer pays, not after."""
    ids = [user.id for user in users]
    waiting: dict[int, list[int]] = {}
    for payment_id, user_id in session.execute(
        select(Payment.id, Payment.user_id)
        .where(Payment.user_id.in_(ids), Payment.status == "pending")
        .order_by(Payment.id)
    ):
        waiting.setdefault(user_id, []).append(payment_id)
    return [
        {
            **columns_of(user),
            "is_banned": user.is_banned,
            "pending_payment_ids": waiting.get(user.id, []),
            "can_order": not user.is_banned and len(waiting.get(user.id, [])) < max_pending_payments,
        }
        for user in users
    ]


def user_view(session: Session, user: User, max_pending_payments: int) -> dict[str, Any]:
    return user_views(session, [user], max_pending_payments)[0]


def get_user_view(session: Session, user_id: int, max_pending: int) -> dict[str, Any]:
    return user_view(session, get_user(session, user_id), max_pending)


def get_by_telegram_id(session: Session, telegram_id: int, max_pending: int) -> dict[str, Any]:
    user = session.scalar(select(User).where(User.telegram_id == telegram_id))
    if user is None:
        raise NotFound(f"No user has Telegram id {telegram_id}.")
    return user_view(session, user, max_pending)


def upsert_telegram_user(
    session: Session, actor: Principal, telegram_id: int, data: dict[str, Any], max_pending: int
) -> tuple[dict[str, Any], bool]:
    """Create the user or refresh username/language. Returns (its view, created).

    DATA's referral_code (from /start ref_<code>) refers a customer created here, never one who exists
    (referrals.attach; anything else about the code is ignored, never an error)."""
    if telegram_id < 1:
        raise InvalidInput("Telegram user ids are positive integers.", code="invalid_telegram_id")
    referral_code = data.get("referral_code")
    changes = {key: value for key, value in data.items() if value is not None and key != "referral_code"}
    for _attempt in range(2):
        user = session.scalar(select(User).where(User.telegram_id == telegram_id))
        created = user is None
        if created:
            user = User(telegram_id=telegram_id, subscription_token=new_subscription_token(), **changes)
            session.add(user)
        else:
            referrals.ignore_late(user.id, referral_code)
            changes = {key: value for key, value in changes.items() if getattr(user, key) != value}
            if not changes:
                return user_view(session, user, max_pending), False
            for key, value in changes.items():
                setattr(user, key, value)
        try:
            session.flush()
        except IntegrityError:
            # Two upserts of a new Telegram id raced; the other one created it, so update it.
            session.rollback()
            continue
        audit.record(session, actor, "user.create" if created else "user.update", user_id=user.id, fields=changes)
        if created:
            referrals.attach(session, actor, user, referral_code)
        session.commit()
        return user_view(session, user, max_pending), created
    raise Conflict("The user changed concurrently; retry.", code="concurrent_update")


def list_users(session: Session, filters: dict[str, Any], max_pending: int) -> dict[str, Any]:
    query = select(User)
    if "banned" in filters:
        query = query.where(User.ban_reason.is_not(None) if filters["banned"] else User.ban_reason.is_(None))
    if filters.get("search"):
        pattern = "%" + filters["search"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(User.username.ilike(pattern, escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(query.order_by(User.id).limit(filters["limit"]).offset(filters["offset"])).all()
    return {
        "items": user_views(session, list(items), max_pending),
        "total": total,
        "limit": filters["limit"],
        "offset": filters["offset"],
    }


def ban_user(
    session: Session, actor: Principal, user_id: int, reason: str, dispatch: Dispatch, max_pending: int
) -> dict[str, Any]:
    """Ban the user: every served config leaves its node and every pending payment is rejected (bans.py)."""
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    touched = apply_ban(session, actor, user, reason, utcnow())
    commit_and_dispatch(session, touched, dispatch)
    return user_view(session, user, max_pending)


def unban_user(
    session: Session,
    actor: Principal,
    user_id: int,
    resume_config_ids: list[int],
    dispatch: Dispatch,
    max_pending: int,
) -> dict[str, Any]:
    """Lift the ban; bring back exactly the configs the admin names (suspended by the ban, not expired)."""
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    if not user.is_banned:
        raise Conflict(f"User {user_id} is not banned.", code="not_banned")
    wanted = sorted(set(resume_config_ids))
    resumable = resumable_after_unban(session, user, wanted, utcnow())
    refused = sorted(set(wanted) - {config.id for config in resumable})
    if refused:
        raise InvalidInput(
            "Only this user's configs that the ban suspended, and that have not expired, can be resumed.",
            code="not_resumable",
            details={"json": {"resume_config_ids": [f"Not resumable: {refused}."]}},
        )
    user.ban_reason = None
    user.banned_at = None
    for config in resumable:
        config.status, config.suspend_reason = "pending", None
    touched = bump(session, serving_nodes(resumable))
    audit.record(session, actor, "user.unban", user_id=user_id, resumed_config_ids=[c.id for c in resumable])
    commit_and_dispatch(session, touched, dispatch)
    return user_view(session, user, max_pending)


def set_admin(session: Session, actor: Principal, user_id: int, is_admin: bool, max_pending: int) -> dict[str, Any]:
    user = get_user(session, user_id)
    if user.is_admin != is_admin:
        user.is_admin = is_admin
        audit.record(session, actor, "user.admin" if is_admin else "user.not_admin", user_id=user_id)
        session.commit()
    return user_view(session, user, max_pending)
