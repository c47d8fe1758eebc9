"""Node alerts as admins see them, and what raising or clearing one writes (an audit row and a
notification to the admin channel through the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..actors import SYSTEM, Principal
from ..models import Node, utcnow
from . import audit, notifications, webhooks
from .migration import alert_counts
from .node_health import AlertChange, HealthPolicy
from .principals import acting_admin


def breached_list(breached: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored {threshold: {...}} as a list, in a stable order."""
    return [{"threshold": name, **breached[name]} for name in sorted(breached)]


def alert_view(session: Session, node: Node, policy: HealthPolicy, now: datetime) -> dict[str, Any]:
    return {
        "node_id": node.id,
        "node_name": node.name,
        "location_tag": node.location_tag,
        "region": node.region,
        "status": node.status,
        "since": node.alert_since,
        "breached": breached_list(node.alert_breached or {}),
        "draining": node.status == "draining",
        **alert_counts(session, node, policy, now),
    }


def list_alerts(
    session: Session,
    caller: Principal,
    acting_telegram_id: int | None,
    policy: HealthPolicy,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every alerting or draining node with its breaches, configs and actions (the bot: for a Telegram admin)."""
    acting_admin(session, caller, acting_telegram_id)
    now = now or utcnow()
    nodes = session.scalars(
        select(Node).where(or_(Node.alert_since.is_not(None), Node.status == "draining")).order_by(Node.id)
    ).all()
    return [alert_view(session, node, policy, now) for node in nodes]


def announce(session: Session, node: Node, change: AlertChange, policy: HealthPolicy, now: datetime) -> None:
    """Audit and tell the admins what CHANGE did to NODE's alert (part of the caller's transaction)."""
    if not change.changed:
        return
    stamp = now.strftime("%Y%m%d%H%M%S%f")
    if change.breached:
        view = alert_view(session, node, policy, now)
        audit.record(
            session,
            SYSTEM,
            "node.alert_raised" if change.raised else "node.alert_changed",
            node_id=node.id,
            raised=sorted(change.raised),
            cleared=sorted(change.cleared),
            breached=sorted(change.breached),
        )
        if change.raised:
            webhooks.emit(
                session,
                "node.alert_raised",
                webhooks.node_payload(node, alerts=sorted(change.breached), raised=sorted(change.raised)),
            )
        notifications.notify_admins(
            session,
            "node_alert",
            f"node_alert:{node.id}:{stamp}",
            node_id=node.id,
            node_name=node.name,
            breached=view["breached"],
            actions=view["actions"],
        )
    else:
        audit.record(session, SYSTEM, "node.alert_cleared", node_id=node.id, cleared=sorted(change.cleared))
        webhooks.emit(session, "node.alert_cleared", webhooks.node_payload(node, cleared=sorted(change.cleared)))
        notifications.notify_admins(
            session, "node_alert_cleared", f"node_alert_cleared:{node.id}:{stamp}", node_id=node.id, node_name=node.name
        )
