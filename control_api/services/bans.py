"""Bans: a banned customer loses every service at once and can buy nothing more.

Banning, in the caller's transaction:
- every pending payment of the user is rejected (their temporary configs revoked, a renewal's temporary
  extension undone, a discount code's use released, as any rejection does), so neither an admin's late
  click nor the 3-day auto-acceptance turns one into a plan;
- every config still served (pending or active: trial, temporary or paid) is suspended with
  reason "ban"; the nodes it was on are returned, bumped, for the caller's commit_and_dispatch.
revisions.desired_users also leaves out every config of a banned user, whatever its status, so a
config a racing writer made pending again is never served.

Unbanning restores nothing by itself: payments stay rejected, and a config suspended by the ban
comes back only when the admin names it (unban_user's resume list), and only if it has not expired
meanwhile. Configs an admin or a quota suspended keep their own reason and rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..actors import Principal, TelegramAdmin
from ..errors import Forbidden
from ..models import Payment, User, UserConfig
from . import audit, discounts, notifications, webhooks
from .renewals import undo_temporary
from .revisions import SERVED_STATUSES, bump, serving_nodes


def ensure_not_banned(user: User) -> None:
    if user.is_banned:
        raise Forbidden(
            f"The user is banned: {user.ban_reason}", code="user_banned", details={"reason": user.ban_reason}
        )


def reviewer_columns(reviewer: Principal | None) -> dict[str, Any]:
    """The payment columns naming who decided: an admin account, a Telegram admin, or nobody (the system)."""
    if reviewer is None or reviewer.kind != "admin":
        return {}
    return {"reviewed_by_user_id" if isinstance(reviewer, TelegramAdmin) else "reviewed_by": reviewer.id}


def apply_ban(session: Session, actor: Principal, user: User, reason: str, now: datetime) -> list[int]:
    """Ban USER and take away everything they are served; return the nodes to sync (already bumped)."""
    user.ban_reason = reason
    user.banned_at = now
    pending = session.scalars(
        select(Payment).where(Payment.user_id == user.id, Payment.status == "pending").with_for_update()
    ).all()
    revoked_config_ids = set()
    undone: list[int] = []  # nodes already bumped
    for payment in pending:
        payment.status, payment.reviewed_at, payment.review_note = "rejected", now, f"user banned: {reason}"
        for column, value in reviewer_columns(actor).items():
            setattr(payment, column, value)
        if payment.config_id is not None:
            revoked_config_ids.add(payment.config_id)
        # A renewal's config is the customer's paid one: its temporary extension goes, the config stays
        # (suspended below with the rest, so an unban can bring it back).
        undone += undo_temporary(session, payment, now)
        discounts.release(session, payment.id, now)
        notifications.notify(
            session,
            user.id,
            "rejected",
            f"rejected:payment-{payment.id}",
            payment_id=payment.id,
            reason=reason,
            banned=True,
        )
        audit.record(session, actor, "payment.reject", payment_id=payment.id, banned=True, automatic=True)
        reviewer = actor.name if actor.kind == "admin" else None
        notifications.payment_decided(session, payment, reviewer, automatic=reviewer is None, banned=True)
    configs = session.scalars(
        select(UserConfig)
        .where(UserConfig.user_id == user.id, UserConfig.status.in_(SERVED_STATUSES))
        .with_for_update()
    ).all()
    touched = serving_nodes(configs)
    suspended = 0
    for config in configs:
        if config.id in revoked_config_ids:
            config.status, config.suspend_reason = "revoked", None
        else:
            config.status, config.suspend_reason = "suspended", "ban"
            suspended += 1
            webhooks.emit(session, "config.suspended", webhooks.config_payload(config, reason="ban"))
    # A temporary config of a rejected payment that had already left its node is revoked too.
    for config_id in revoked_config_ids - {config.id for config in configs}:
        config = session.get(UserConfig, config_id, with_for_update=True)
        if config is not None and config.status != "revoked":
            config.status, config.suspend_reason = "revoked", None
    audit.record(
        session,
        actor,
        "user.ban",
        user_id=user.id,
        reason=reason,
        payments_rejected=len(pending),
        configs_suspended=suspended,
    )
    return sorted({*bump(session, touched), *undone})


def resumable_after_unban(session: Session, user: User, config_ids: list[int], now: datetime) -> list[UserConfig]:
    """The configs of CONFIG_IDS that unbanning may bring back: USER's, suspended by the ban, not expired."""
    if not config_ids:
        return []
    configs = session.scalars(
        select(UserConfig).where(UserConfig.id.in_(config_ids), UserConfig.user_id == user.id).with_for_update()
    ).all()
    return [
        config
        for config in configs
        if config.status == "suspended"
        and config.suspend_reason == "ban"
        and (config.expires_at is None or config.expires_at > now)
    ]
