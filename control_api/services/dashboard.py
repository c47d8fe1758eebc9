"""Numbers for the admin dashboard and the business gauges on /metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import NODE_STATUSES, Node, Payment, User, UserConfig


def stats(session: Session) -> dict[str, Any]:
    active_users = session.scalar(
        select(func.count(func.distinct(UserConfig.user_id)))
        .join(User, User.id == UserConfig.user_id)
        .where(UserConfig.status == "active", User.ban_reason.is_(None))
    )
    active_configs = session.scalar(select(func.count()).where(UserConfig.status == "active"))
    pending_payments = session.scalar(select(func.count()).where(Payment.status == "pending"))
    nodes_by_status = dict.fromkeys(NODE_STATUSES, 0)
    for status, count in session.execute(select(Node.status, func.count()).group_by(Node.status)):
        nodes_by_status[status] = count
    return {
        "active_users": active_users or 0,
        "active_configs": active_configs or 0,
        "pending_payments": pending_payments or 0,
        "nodes_by_status": nodes_by_status,
    }
