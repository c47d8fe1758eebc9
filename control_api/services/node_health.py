"""Node health from heartbeats: thresholds judged over a window, so a spike never raises an alert
and a node never flaps.

Four thresholds (models.THRESHOLDS), each with a fleet limit (settings) that a node may override
(Node.thresholds):

- latency: the agent's median TCP connect time to its probe targets (ms), over the limit;
- cpu: percent, over the limit;
- bandwidth: the busier direction (bytes/s in or out, as bits) as a percent of the node's
  bandwidth_capacity_mbps, over the limit; never judged on a node without a capacity;
- dark: no heartbeat for dark_after_seconds.

Hysteresis: a metric threshold is raised only when each of the node's last W heartbeats
(HEALTH_WINDOW_HEARTBEATS) is over its limit, and cleared only when each of the last W is at or
under it; anything in between (or a heartbeat without the value) keeps the current state. Dark is
raised by the fleet check (no heartbeat arrives to notice it) and cleared once W heartbeats have
arrived since it was raised.

The open alert lives on the node row (alert_breached, alert_since); what changes it is written by
the caller in the same transaction as the heartbeat (see alerts.py for audit and notifications).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..config import Settings
from ..models import THRESHOLD_KEYS, Node, NodeMetric

METRIC_THRESHOLDS = ("latency", "cpu", "bandwidth")
# Statuses whose nodes are expected to heartbeat: a provisioning or disabled node is never dark.
WATCHED_STATUSES = ("active", "draining", "offline")


@dataclass(frozen=True)
class HealthPolicy:
    """The fleet's limits (by threshold name), the window, and the migration knobs."""

    limits: dict[str, float] = field(
        default_factory=lambda: {"latency": 200.0, "cpu": 85.0, "bandwidth": 90.0, "dark": 180.0}
    )
    window: int = 3
    migration_batch_per_node: int = 50
    migration_grace_seconds: int = 6 * 3600
    metrics_retention_days: int = 14

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthPolicy:
        return cls(
            limits={
                "latency": float(settings.health_latency_ms),
                "cpu": float(settings.health_cpu_percent),
                "bandwidth": float(settings.health_bandwidth_percent),
                "dark": float(settings.health_dark_after_seconds),
            },
            window=settings.health_window_heartbeats,
            migration_batch_per_node=settings.migration_batch_per_node,
            migration_grace_seconds=settings.migration_grace_seconds,
            metrics_retention_days=settings.node_metrics_retention_days,
        )

    def limits_for(self, node: Node) -> dict[str, float | None]:
        """NODE's limit of each threshold: its own override, else the fleet's; bandwidth needs a capacity."""
        overrides = node.thresholds or {}
        limits: dict[str, float | None] = {}
        for threshold, fleet_limit in self.limits.items():
            own = overrides.get(THRESHOLD_KEYS[threshold])
            limits[threshold] = float(own) if own is not None else fleet_limit
        if not node.bandwidth_capacity_mbps:
            limits["bandwidth"] = None
        return limits


@dataclass(frozen=True)
class AlertChange:
    """What one evaluation did to a node's alert."""

    raised: frozenset[str]
    cleared: frozenset[str]
    breached: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.raised or self.cleared)


NO_CHANGE = AlertChange(raised=frozenset(), cleared=frozenset(), breached={})


def metric_values(metric: NodeMetric, node: Node) -> dict[str, float | None]:
    """The value of each metric threshold in one heartbeat (None: not measured)."""
    capacity = node.bandwidth_capacity_mbps
    busiest = max(metric.bandwidth_in, metric.bandwidth_out) * 8 / 1_000_000  # Mbit/s
    return {
        "latency": metric.latency_ms,
        "cpu": metric.cpu,
        "bandwidth": round(busiest * 100 / capacity, 2) if capacity else None,
    }


def judge(values: Sequence[float | None], limit: float, breached: bool, window: int) -> bool:
    """Whether a threshold is breached after VALUES (newest first): hysteresis over WINDOW heartbeats."""
    recent = list(values)[:window]
    if len(recent) < window:
        return breached
    if not breached:
        return all(value is not None and value > limit for value in recent)
    return not all(value is not None and value <= limit for value in recent)


def is_dark(node: Node, limit: float, now: datetime) -> bool:
    """No heartbeat for LIMIT seconds, on a node that is expected to send them."""
    if node.status not in WATCHED_STATUSES or node.last_seen_at is None:
        return False
    return (now - node.last_seen_at).total_seconds() > limit


def evaluate(
    session: Session, node: Node, policy: HealthPolicy, now: datetime, heartbeat: bool, latest: NodeMetric | None = None
) -> AlertChange:
    """Judge NODE on its last heartbeats and update its open alert (the caller commits).

    HEARTBEAT: called for a heartbeat just stored (metric thresholds; dark may clear); LATEST, when given, is
    that heartbeat's metrics. Otherwise called by the fleet check, which may only raise dark (metrics are
    judged when they arrive).
    """
    limits = policy.limits_for(node)
    before: dict[str, Any] = dict(node.alert_breached or {})
    after: dict[str, Any] = {}
    # The fleet check reads no metrics for a node without an open alert: it may only raise dark, which they
    # do not decide (one query per healthy node saved, every minute). Nor does a heartbeat of a node without
    # one whose own metrics are all within their limits: a breach needs every heartbeat of the window over
    # its limit, this one included (judge), so nothing can be raised (one query per usual heartbeat saved).
    quiet = heartbeat and latest is not None and heartbeat_is_quiet(node, policy, latest, limits)
    recent = (
        session.scalars(
            select(NodeMetric)
            .where(NodeMetric.node_id == node.id)
            .order_by(NodeMetric.timestamp.desc(), NodeMetric.id.desc())
            .limit(policy.window)
        ).all()
        if (heartbeat or before) and not quiet
        else []
    )
    values = [metric_values(metric, node) for metric in recent]
    for threshold in METRIC_THRESHOLDS:
        limit = limits[threshold]
        if limit is None:
            continue
        series = [value[threshold] for value in values]
        if judge(series, limit, threshold in before, policy.window) if heartbeat else threshold in before:
            latest = series[0] if series else None
            since = before.get(threshold, {}).get("since") or now.isoformat()
            after[threshold] = {"value": latest, "limit": limit, "since": since}
    dark_limit = limits["dark"]
    assert dark_limit is not None
    if "dark" in before:
        dark_since = datetime.fromisoformat(before["dark"]["since"])
        back = len(recent) >= policy.window and all(metric.timestamp > dark_since for metric in recent)
        if not back:
            after["dark"] = before["dark"]
    elif not heartbeat and is_dark(node, dark_limit, now):
        silent = (now - node.last_seen_at).total_seconds() if node.last_seen_at else None
        after["dark"] = {"value": round(silent, 1) if silent else None, "limit": dark_limit, "since": now.isoformat()}
    raised, cleared = frozenset(after) - frozenset(before), frozenset(before) - frozenset(after)
    # Assigned only when they change: an untouched node leaves the session clean, so the commit flushes nothing.
    if node.alert_breached != after:
        node.alert_breached = after
    if after and node.alert_since is None:
        node.alert_since = now
    elif not after and node.alert_since is not None:
        node.alert_since = None
    return AlertChange(raised=raised, cleared=cleared, breached=after)


def heartbeat_is_quiet(
    node: Any, policy: HealthPolicy, latest: NodeMetric, limits: dict[str, float | None] | None = None
) -> bool:
    """Whether a heartbeat whose metrics are LATEST leaves NODE's alert as it is (no open alert, and every metric
    within its limit: a breach needs every heartbeat of the window over its limit, this one included). NODE is a
    Node or a row with its alert_breached, thresholds and bandwidth_capacity_mbps; LIMITS, when the caller has
    them already, are policy.limits_for(NODE)."""
    if node.alert_breached:
        return False
    return not _over_any(metric_values(latest, node), limits if limits is not None else policy.limits_for(node))


def _over_any(values: dict[str, float | None], limits: dict[str, float | None]) -> bool:
    return any(
        (limit := limits[threshold]) is not None and (value := values[threshold]) is not None and value > limit
        for threshold in METRIC_THRESHOLDS
    )


def watched_nodes(session: Session) -> list[Node]:
    """Nodes the fleet check looks at, locked for the evaluation (a heartbeat waits its turn)."""
    return list(
        session.scalars(
            select(Node).where(Node.status.in_(WATCHED_STATUSES)).order_by(Node.id).with_for_update(skip_locked=True)
        )
    )


def drop_old_metrics(session: Session, policy: HealthPolicy, now: datetime) -> int:
    """Retention: delete raw heartbeat rows older than the retention period; how many went."""
    cutoff = now - timedelta(days=policy.metrics_retention_days)
    result = session.execute(
        delete(NodeMetric).where(NodeMetric.timestamp < cutoff), execution_options={"synchronize_session": False}
    )
    return int(result.rowcount or 0)
