"""Auto-renewal: an opted-in paid config is renewed from the balance shortly before it expires.

- **Opt-in** per config (PUT /configs/{id}/auto-renewal): the customer's own paid config that could be
  renewed now (renewals.ensure_renewable) and has not expired, with a plan renewals.allowed_plan accepts
  (auto_renew_plan_id; NULL renews with the config's plan at the time). Opting out always works.
- **When**: the lifecycle sweep (run_lifecycle) takes every opted-in full config, served or suspended, whose
  expiry is within AUTO_RENEW_HOURS_BEFORE (or already past, if no sweep ran meanwhile: it runs before the
  expiry step), and renews it through wallet.extend_in_place: the very renewal a customer buys from the
  balance (the same rules, lock, balance check, debit and audit row), in a transaction of its own.
- **Once per period**: the attempt is an auto_renewals row, unique per (config, expiry it follows), written
  in the renewal's transaction under the user's lock (wallet.lock_user). A second sweep at the same time
  waits on that lock and then finds the expiry moved, so it charges nothing; the unique key would refuse a
  second renewal of one period even without the lock.
- **A refusal** (the balance does not cover the plan, the plan is no longer sold or allowed, the customer is
  banned, a renewal is in review, the config cannot be renewed) changes nothing but the attempt row, and the
  customer is told once per period (auto_renew_failed, with the reason and the amount missing). Later sweeps
  try again while the period is in the window, quietly: a top-up approved before the expiry still renews it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import SYSTEM, Principal
from ..config import Settings
from ..errors import Conflict, DomainError
from ..models import AutoRenewal, Plan, User, UserConfig, utcnow
from . import audit, notifications, renewals, wallet
from .bans import ensure_not_banned
from .configs import config_view
from .revisions import SERVED_STATUSES, Dispatch, commit_and_dispatch

log = logging.getLogger(__name__)

# A config in one of these is renewed in place; an expired one is renewed by hand (its period has ended).
DUE_STATUSES = (*SERVED_STATUSES, "suspended")


def set_auto_renewal(session: Session, actor: Principal, config_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Opt DATA's customer's config CONFIG_ID in (with DATA's plan_id, or its own plan) or out; its view."""
    try:
        config = renewals.own_config(session, data["user_id"], config_id)
        plan_id = data.get("plan_id")
        if data["enabled"]:
            ensure_not_banned(session.get_one(User, config.user_id))
            renewals.ensure_renewable(config)
            if config.status == "expired":
                raise Conflict(
                    f"Config {config.id} has expired: renew it now; auto-renewal keeps a live config going.",
                    code="config_not_renewable",
                )
            renewals.allowed_plan(session, config, plan_id if plan_id is not None else config.plan_id)
            config.auto_renew, config.auto_renew_plan_id = True, plan_id
        else:
            config.auto_renew, config.auto_renew_plan_id = False, None
        audit.record(
            session,
            actor,
            "config.auto_renewal",
            config_id=config.id,
            user_id=config.user_id,
            enabled=config.auto_renew,
            plan_id=config.auto_renew_plan_id,
        )
    except DomainError:
        session.rollback()
        raise
    session.commit()
    return config_view(session, config)


# --- the sweep ------------------------------------------------------------------------------------------


def _due(now: datetime, window: timedelta) -> ColumnElement[bool]:
    return and_(
        UserConfig.auto_renew.is_(True),
        UserConfig.kind == "full",
        UserConfig.status.in_(DUE_STATUSES),
        UserConfig.expires_at <= now + window,
    )


def _is_due(config: UserConfig | None, now: datetime, window: timedelta) -> bool:
    """_due, for a config read again under the lock (another sweep or the customer may have acted)."""
    return (
        config is not None
        and config.auto_renew
        and config.kind == "full"
        and config.status in DUE_STATUSES
        and config.expires_at is not None
        and config.expires_at <= now + window
    )


def renew_due(session: Session, settings: Settings, dispatch: Dispatch, now: datetime) -> tuple[int, int]:
    """Renew every due opted-in config from its customer's balance, one transaction each; returns (renewed,
    refused). A failure of one config (a bug, a lost connection) is logged and the others go on."""
    window = timedelta(hours=settings.auto_renew_hours_before)
    due = session.execute(
        select(UserConfig.id, UserConfig.user_id).where(_due(now, window)).order_by(UserConfig.id)
    ).all()
    session.rollback()  # end the read; each renewal takes its own locks
    outcomes = []
    for config_id, user_id in due:
        try:
            outcomes.append(_renew_one(session, settings, dispatch, config_id, user_id, now, window))
        except Exception:
            session.rollback()
            log.exception("auto-renewal of config %s failed; the next sweep tries again", config_id)
    return outcomes.count("renewed"), outcomes.count("failed")


def _renew_one(
    session: Session,
    settings: Settings,
    dispatch: Dispatch,
    config_id: int,
    user_id: int,
    now: datetime,
    window: timedelta,
) -> str | None:
    """Renew CONFIG_ID or record why not; "renewed", "failed", or None when it was no longer due."""
    wallet.lock_user(session, user_id)  # every change of this customer's money queues here, another sweep too
    config = session.get(UserConfig, config_id, with_for_update=True, populate_existing=True)
    if config is None or not _is_due(config, now, window):
        session.rollback()  # renewed or changed meanwhile
        return None
    period = config.expires_at
    attempt = session.scalar(
        select(AutoRenewal)
        .where(AutoRenewal.config_id == config.id, AutoRenewal.period_expires_at == period)
        .with_for_update()
    )
    if attempt is not None and attempt.outcome == "renewed":
        session.rollback()
        return None
    plan_id = config.auto_renew_plan_id or config.plan_id
    plan = session.get(Plan, plan_id) if plan_id is not None else None  # none: renewals.py refuses the config
    price = plan.price_cents if plan is not None else 0
    order = {"purpose": "renewal", "extends_config_id": config.id, "plan_id": plan_id, "extra_data_mb": None}
    facts: dict[str, Any] = {"config_id": config.id, **notifications.plan_names(plan), "amount_cents": price}
    try:
        with session.begin_nested():
            done = wallet.extend_in_place(session, SYSTEM, settings, user_id, order, now)
    except DomainError as refusal:
        balance = wallet.balance(session, user_id)
        if not _record(session, attempt, config.id, period, price, reason=refusal.code):
            return None
        notifications.notify(
            session,
            user_id,
            "auto_renew_failed",
            f"auto_renew_failed:cfg-{config.id}:{period:%Y%m%d%H%M}",
            **facts,
            reason=refusal.code,
            message=refusal.message,
            balance_cents=balance,
            missing_cents=max(price - balance, 0),
            expires_at=period.isoformat(),
        )
        session.commit()
        return "failed"
    if not _record(session, attempt, config.id, period, price, entry_id=done.entry.id):
        return None
    notifications.notify(
        session,
        user_id,
        "auto_renewed",
        f"auto_renewed:cfg-{config.id}:{period:%Y%m%d%H%M}",
        **facts,
        balance_cents=done.balance_cents,
        previous_expires_at=period.isoformat(),
        expires_at=done.config.expires_at.isoformat(),
        data_limit_mb=done.config.data_limit_mb,
    )
    commit_and_dispatch(session, done.touched, dispatch)
    return "renewed"


def _record(
    session: Session,
    attempt: AutoRenewal | None,
    config_id: int,
    period: datetime,
    amount_cents: int,
    reason: str | None = None,
    entry_id: int | None = None,
) -> bool:
    """The period's attempt row: added, or (after an earlier refusal) brought up to date, and flushed. False
    when another writer recorded this period first (the unique key): the caller's transaction is rolled back."""
    if attempt is None:
        attempt = AutoRenewal(config_id=config_id, period_expires_at=period, attempts=0)
        session.add(attempt)
    attempt.outcome = "failed" if reason else "renewed"
    attempt.reason, attempt.entry_id, attempt.amount_cents = reason, entry_id, amount_cents
    attempt.attempts += 1
    attempt.updated_at = utcnow()
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True
