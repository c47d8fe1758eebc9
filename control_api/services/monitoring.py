"""Figures for Prometheus (control_api/metrics.py): per node, what the API already knows from heartbeats
and sync runs, and the payments waiting for review. Read at scrape time, in a few grouped queries.

Cardinality stays bounded: one series per node (labelled by its unique name) and per fixed enum value
(threshold, config status, payment status and purpose); never per user or per payment.

Every rule here is someone else's: the sync state comes from nodes.sync_state, the value of each
threshold from node_health.metric_values and its limit from HealthPolicy.limits_for, so Prometheus sees
exactly what admins see in the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import (
    CONFIG_STATUSES,
    PAYMENT_PURPOSES,
    PAYMENT_STATUSES,
    Node,
    Payment,
    SyncRun,
    UserConfig,
)
from .node_health import WATCHED_STATUSES, HealthPolicy, metric_values
from .nodes import last_metric, latest_rows_by_node, sync_state

# A payment pending longer than this is overdue for review (alert RayfleetPaymentsWaitingOverADay).
PAYMENT_OVERDUE_AFTER = timedelta(days=1)


def node_figures(session: Session, policy: HealthPolicy) -> list[dict[str, Any]]:
    """One entry per node: its labels, its last heartbeat's values, its limits, its open alert and sync state."""
    nodes = list(session.scalars(select(Node).order_by(Node.id)))
    runs = latest_rows_by_node(session, SyncRun, None)  # every node's
    configs: dict[int, dict[str, int]] = {node.id: dict.fromkeys(CONFIG_STATUSES, 0) for node in nodes}
    for node_id, status, count in session.execute(
        select(UserConfig.node_id, UserConfig.status, func.count())
        .where(UserConfig.node_id.is_not(None))  # every node's
        .group_by(UserConfig.node_id, UserConfig.status)
    ):
        configs[node_id][status] = count
    figures = []
    for node in nodes:
        metric = last_metric(node)
        figures.append(
            {
                "name": node.name,
                "status": node.status,
                "location_tag": node.location_tag,
                "region": node.region,
                "core": node.core,
                # Only a node that is expected to heartbeat can go stale (node_health.WATCHED_STATUSES).
                "watched": node.status in WATCHED_STATUSES,
                "last_seen_at": node.last_seen_at,
                "metric": metric,
                "values": metric_values(metric, node) if metric is not None else {},
                "limits": policy.limits_for(node),
                "breached": sorted(node.alert_breached or {}),
                "sync_state": sync_state(node, runs.get(node.id)),
                "sync_lag": max(node.desired_revision - node.applied_revision, 0),
                "configs": configs[node.id],
            }
        )
    return figures


def payment_figures(session: Session, now: datetime) -> dict[str, Any]:
    """Payments by status and purpose (count and amount), and how long the oldest pending one has waited."""
    counts = {(status, purpose): 0 for status in PAYMENT_STATUSES for purpose in PAYMENT_PURPOSES}
    amounts = dict(counts)
    for status, purpose, count, amount in session.execute(
        select(
            Payment.status, Payment.purpose, func.count(), func.coalesce(func.sum(Payment.amount_cents), 0)
        ).group_by(Payment.status, Payment.purpose)
    ):
        counts[(status, purpose)] = count
        amounts[(status, purpose)] = int(amount)
    oldest = session.scalar(select(func.min(Payment.created_at)).where(Payment.status == "pending"))
    overdue = session.scalar(
        select(func.count()).where(Payment.status == "pending", Payment.created_at < now - PAYMENT_OVERDUE_AFTER)
    )
    return {
        "counts": counts,
        "amounts": amounts,
        "oldest_pending_age_seconds": max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0,
        "overdue": overdue or 0,
    }
