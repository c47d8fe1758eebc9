"""The sales sweep: auto-accept overdue payments, expire configs, enforce quotas, warn users.

Run by the 5-minute cron job (control_api.jobs.sweep.run_sweep) under its lock, before the node
reconciliation. NOW is a parameter so tests can move the clock. Every status change bumps the
node's revision (the next sync removes the config from the node); every warning goes to the
notification outbox under a key naming the fact, so a second sweep never repeats one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..actors import SYSTEM
from ..errors import Conflict
from ..models import Payment, UserConfig, utcnow
from . import audit, notifications, payments
from .revisions import SERVED_STATUSES, Dispatch, bump, commit_and_dispatch

log = logging.getLogger(__name__)

MIB = 1024 * 1024
EXPIRING_WITHIN = timedelta(hours=24)
QUOTA_WARNING_PERCENT = 80


def run_lifecycle(session: Session, dispatch: Dispatch, now: datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    summary = {
        "auto_accepted": _auto_accept(session, dispatch, now),
        "expired": _expire(session, dispatch, now),
        "quota_suspended": _enforce_quotas(session, dispatch),
        "expiring_warned": _warn_expiring(session, now),
    }
    if any(summary.values()):
        log.info("sales sweep: %s", summary)
    return summary


def _auto_accept(session: Session, dispatch: Dispatch, now: datetime) -> int:
    due = session.scalars(
        select(Payment.id).where(Payment.status == "pending", Payment.auto_accept_at <= now).order_by(Payment.id)
    ).all()
    accepted = 0
    for payment_id in due:
        try:
            payments.approve(session, None, payment_id, dispatch, now=now)
            accepted += 1
        except Conflict:
            session.rollback()  # an admin decided meanwhile
    return accepted


def _expire(session: Session, dispatch: Dispatch, now: datetime) -> int:
    configs = session.scalars(
        select(UserConfig)
        .where(UserConfig.status.in_((*SERVED_STATUSES, "suspended")), UserConfig.expires_at <= now)
        .with_for_update()
    ).all()
    served = [config.node_id for config in configs if config.status in SERVED_STATUSES]
    for config in configs:
        config.status = "expired"
        notifications.notify(
            session,
            config.user_id,
            "expired",
            f"expired:cfg-{config.id}:{config.expires_at:%Y%m%d%H%M}",
            config_id=config.id,
            config_kind=config.kind,
        )
        audit.record(session, SYSTEM, "config.expire", config_id=config.id)
    commit_and_dispatch(session, bump(session, served), dispatch)
    return len(configs)


def _enforce_quotas(session: Session, dispatch: Dispatch) -> int:
    rows = session.scalars(
        select(UserConfig)
        .where(
            UserConfig.status.in_(SERVED_STATUSES),
            UserConfig.data_limit_mb.is_not(None),
            UserConfig.used_bytes * 100 >= UserConfig.data_limit_mb * MIB * QUOTA_WARNING_PERCENT,
        )
        .with_for_update()
    ).all()
    exhausted: list[UserConfig] = []
    for config in rows:
        limit = config.data_limit_mb * MIB
        facts: dict[str, Any] = {"config_id": config.id, "used_bytes": config.used_bytes, "limit_bytes": limit}
        if config.used_bytes < limit:
            notifications.notify(
                session, config.user_id, "quota_80", f"quota_80:cfg-{config.id}:{config.data_limit_mb}", **facts
            )
        else:
            exhausted.append(config)
            config.status = "suspended"
            notifications.notify(
                session, config.user_id, "quota_100", f"quota_100:cfg-{config.id}:{config.data_limit_mb}", **facts
            )
            audit.record(session, SYSTEM, "config.quota_suspend", config_id=config.id)
    commit_and_dispatch(session, bump(session, [config.node_id for config in exhausted]), dispatch)
    return len(exhausted)


def _warn_expiring(session: Session, now: datetime) -> int:
    configs = session.scalars(
        select(UserConfig).where(
            UserConfig.status.in_(SERVED_STATUSES),
            # Trials and temporary configs are short by design; only paid plans get a renewal reminder.
            UserConfig.kind == "full",
            UserConfig.expires_at > now,
            UserConfig.expires_at <= now + EXPIRING_WITHIN,
        )
    ).all()
    warned = 0
    for config in configs:
        warned += notifications.notify(
            session,
            config.user_id,
            "expiring",
            f"expiring:cfg-{config.id}:{config.expires_at:%Y%m%d%H%M}",
            config_id=config.id,
            config_kind=config.kind,
            expires_at=config.expires_at.isoformat(),
        )
    session.commit()
    return warned
