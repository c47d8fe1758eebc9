"""The sales sweep: place configs that wait for a server, auto-accept overdue payments, renew opted-in
configs from the balance (auto_renewal.py), expire configs, enforce quotas, warn users (a paid config
EXPIRY_WARNING_DAYS before its expiry, once per threshold and period).

Run by the 5-minute cron job (control_api.jobs.sweep.run_sweep) under its lock, before the node
reconciliation. NOW is a parameter so tests can move the clock. Every status change bumps the
node's revision (the next sync removes the config from the node); every warning goes to the
notification outbox under a key naming the fact, so a second sweep never repeats one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from ..actors import SYSTEM
from ..config import Settings
from ..errors import Conflict
from ..models import Payment, Plan, User, UserConfig, utcnow
from . import audit, auto_renewal, notifications, payments, webhooks
from .configs import share_links
from .placement import place_or_none
from .revisions import SERVED_STATUSES, Dispatch, bump, commit_and_dispatch, serving_nodes

log = logging.getLogger(__name__)

MIB = 1024 * 1024
QUOTA_WARNING_PERCENT = 80


def run_lifecycle(
    session: Session,
    dispatch: Dispatch,
    now: datetime | None = None,
    warning_days: Sequence[int] | None = None,
    *,
    referral_percent: int | None = None,
    settings: Settings | None = None,
) -> dict[str, int]:
    """One sweep of the sales rules at NOW.

    SETTINGS (the cron's) give the rest when not passed: WARNING_DAYS, the expiry warnings' thresholds
    (EXPIRY_WARNING_DAYS), and REFERRAL_PERCENT, what an auto-accepted first purchase credits the
    customer's referrer with (payments.approve); one of SETTINGS or REFERRAL_PERCENT is required. SETTINGS
    also turn on auto-renewal (AUTO_RENEW_HOURS_BEFORE), which runs before the expiry step, so a config
    due now is renewed, not expired."""
    now = now or utcnow()
    if referral_percent is None:
        if settings is None:
            raise TypeError("run_lifecycle needs settings or referral_percent")
        referral_percent = settings.referral_percent
    if warning_days is None:
        warning_days = (settings or Settings).expiry_warning_days
    placed = _place_waiting(session, dispatch)
    auto_accepted = _auto_accept(session, dispatch, now, referral_percent)
    renewed, refused = auto_renewal.renew_due(session, settings, dispatch, now) if settings else (0, 0)
    summary = {
        "placed": placed,
        "auto_accepted": auto_accepted,
        "auto_renewed": renewed,
        "auto_renew_failed": refused,
        "expired": _expire(session, dispatch, now),
        "quota_suspended": _enforce_quotas(session, dispatch),
        "expiring_warned": _warn_expiring(session, now, warning_days),
    }
    if any(summary.values()):
        log.info("sales sweep: %s", summary)
    return summary


def _place_waiting(session: Session, dispatch: Dispatch) -> int:
    """Configs recorded while no node had room (node_id NULL) go onto a node now, if one has room; their
    customers are told, with the links."""
    waiting = session.scalars(
        select(UserConfig)
        .join(User, User.id == UserConfig.user_id)
        .where(
            UserConfig.node_id.is_(None),
            UserConfig.status == "pending",
            UserConfig.plan_id.is_not(None),
            User.ban_reason.is_(None),
        )
        .order_by(UserConfig.id)
        .with_for_update(of=UserConfig)
    ).all()
    placed: list[UserConfig] = []
    for config in waiting:
        node = place_or_none(session, session.get_one(Plan, config.plan_id))
        if node is None:
            continue
        config.node_id = node.id
        session.flush()  # the next placement counts this config on its node
        placed.append(config)
        notifications.notify(
            session,
            config.user_id,
            "config_ready",
            f"config_ready:cfg-{config.id}",
            config_id=config.id,
            config_kind=config.kind,
            node_name=node.name,
            links=share_links(node, config),
        )
        audit.record(session, SYSTEM, "config.place", config_id=config.id, node_id=node.id)
    commit_and_dispatch(session, bump(session, [config.node_id for config in placed]), dispatch)
    return len(placed)


def _auto_accept(session: Session, dispatch: Dispatch, now: datetime, referral_percent: int) -> int:
    # Never a banned user's: banning rejects their pending payments, and this keeps it so whatever races.
    due = session.scalars(
        select(Payment.id)
        .join(User, User.id == Payment.user_id)
        .where(Payment.status == "pending", Payment.auto_accept_at <= now, User.ban_reason.is_(None))
        .order_by(Payment.id)
    ).all()
    accepted = 0
    for payment_id in due:
        try:
            payments.approve(session, None, payment_id, dispatch, now=now, referral_percent=referral_percent)
            accepted += 1
        except Conflict:
            session.rollback()  # an admin decided meanwhile
    return accepted


def _expire(session: Session, dispatch: Dispatch, now: datetime) -> int:
    configs = expire_due(session, now)
    commit_and_dispatch(session, bump(session, serving_nodes(configs)), dispatch)
    return len(configs)


# NO_KEY_LOCKS: these rows are locked FOR NO KEY UPDATE, not FOR UPDATE. They change no key, and a heartbeat
# holds a KEY SHARE lock on a config (its usage rows' foreign key) while a second node's heartbeat for the same
# moving config waits to add its bytes: FOR UPDATE would wait for that KEY SHARE, and the two would deadlock.


def due_for_expiry(now: datetime | ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """The configs expire_due ends at NOW."""
    return [UserConfig.status.in_((*SERVED_STATUSES, "suspended")), UserConfig.expires_at <= now]


def near_cap() -> list[ColumnElement[bool]]:
    """The configs suspend_exhausted warns or suspends."""
    return [
        UserConfig.status.in_(SERVED_STATUSES),
        UserConfig.data_limit_mb.is_not(None),
        UserConfig.used_bytes * 100 >= UserConfig.data_limit_mb * MIB * QUOTA_WARNING_PERCENT,
    ]


def expire_due(session: Session, now: datetime, *where: ColumnElement[bool]) -> list[UserConfig]:
    """Expire every config (matching WHERE) past its expiry at NOW, served or suspended: status, the
    customer's notification, the audit row, in the caller's transaction. Returns those that were served (their
    nodes must drop them); the caller bumps and commits."""
    configs = session.scalars(
        select(UserConfig)
        .where(*due_for_expiry(now), *where)
        .order_by(UserConfig.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: see NO_KEY_LOCKS
    ).all()
    served = [config for config in configs if config.status in SERVED_STATUSES]
    for config in configs:
        config.status, config.suspend_reason = "expired", None
        notifications.notify(
            session,
            config.user_id,
            "expired",
            f"expired:cfg-{config.id}:{config.expires_at:%Y%m%d%H%M}",
            config_id=config.id,
            config_kind=config.kind,
        )
        audit.record(session, SYSTEM, "config.expire", config_id=config.id)
    return served


def _enforce_quotas(session: Session, dispatch: Dispatch) -> int:
    exhausted = suspend_exhausted(session)
    commit_and_dispatch(session, bump(session, serving_nodes(exhausted)), dispatch)
    return len(exhausted)


def suspend_exhausted(session: Session, *where: ColumnElement[bool]) -> list[UserConfig]:
    """Warn the served configs (matching WHERE) at QUOTA_WARNING_PERCENT of their cap and suspend those at
    it (reason quota), once per cap and period, in the caller's transaction. Returns the suspended ones; the
    caller bumps their nodes and commits."""
    rows = session.scalars(
        select(UserConfig)
        .where(*near_cap(), *where)
        .order_by(UserConfig.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: see NO_KEY_LOCKS
    ).all()
    exhausted: list[UserConfig] = []
    for config in rows:
        limit = config.data_limit_mb * MIB
        facts: dict[str, Any] = {"config_id": config.id, "used_bytes": config.used_bytes, "limit_bytes": limit}
        # One warning per cap and period: a renewal restarts the usage counter, often with the same cap.
        period = f"{config.data_limit_mb}:{config.expires_at:%Y%m%d%H%M}" if config.expires_at else config.data_limit_mb
        if config.used_bytes < limit:
            notifications.notify(session, config.user_id, "quota_80", f"quota_80:cfg-{config.id}:{period}", **facts)
        else:
            exhausted.append(config)
            config.status, config.suspend_reason = "suspended", "quota"
            notifications.notify(session, config.user_id, "quota_100", f"quota_100:cfg-{config.id}:{period}", **facts)
            audit.record(session, SYSTEM, "config.quota_suspend", config_id=config.id)
            webhooks.emit(session, "config.suspended", webhooks.config_payload(config, reason="quota"))
    return exhausted


def _warn_expiring(session: Session, now: datetime, warning_days: Sequence[int]) -> int:
    """Warn each paid config's customer when fewer than D days are left, for each D of WARNING_DAYS, once
    per threshold and period (the key names the expiry: a renewal starts a new period). A config first
    seen inside several thresholds gets only the nearest one's warning. A config opted in to auto-renewal is
    not warned: the sweep renews it, or says why not (auto_renewal.py)."""
    if not warning_days:
        session.commit()
        return 0
    configs = session.scalars(
        select(UserConfig).where(
            UserConfig.status.in_(SERVED_STATUSES),
            # Trials and temporary configs are short by design; only paid plans get a renewal reminder.
            UserConfig.kind == "full",
            # An opted-in config hears from auto-renewal instead: renewed, or why not with a top-up button.
            UserConfig.auto_renew.is_(False),
            UserConfig.expires_at > now,
            UserConfig.expires_at <= now + timedelta(days=max(warning_days)),
        )
    ).all()
    due = []
    for config in configs:
        days = min(day for day in warning_days if config.expires_at <= now + timedelta(days=day))
        due.append((config, days, f"expiring:cfg-{config.id}:{config.expires_at:%Y%m%d%H%M}:{days}d"))
    # Most were warned by an earlier sweep, and the rest are written together (notifications.notify_many).
    warned = notifications.notify_many(
        session,
        [
            notifications.Notice(
                config.user_id,
                "expiring",
                key,
                {
                    "config_id": config.id,
                    "config_kind": config.kind,
                    "expires_at": config.expires_at.isoformat(),
                    "days_left": days,
                },
            )
            for config, days, key in due
        ],
    )
    session.commit()
    return warned
