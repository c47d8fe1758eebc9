"""The fleet check: dark nodes, migrations stepped on, old metrics dropped, migrations to queue.

Run every minute by `rq cron` (jobs.cron) and by every sweep. Heartbeats judge their own node's
metric thresholds as they arrive (heartbeat.py); this check catches what no heartbeat can tell:
a node that went silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from . import migration
from .alerts import announce
from .node_health import HealthPolicy, drop_old_metrics, evaluate, watched_nodes

log = logging.getLogger(__name__)


@dataclass
class FleetCheck:
    touched: list[int] = field(default_factory=list)  # nodes to sync (bumped by a migration step)
    migrate: list[int] = field(default_factory=list)  # alerting or draining nodes with configs to move
    metrics_dropped: int = 0


def check_fleet(session: Session, policy: HealthPolicy, now: datetime) -> FleetCheck:
    """One pass over the fleet; the caller commits, then syncs TOUCHED and queues MIGRATE."""
    for node in watched_nodes(session):
        announce(session, node, evaluate(session, node, policy, now, heartbeat=False), policy, now)
    result = FleetCheck(
        touched=migration.advance(session, policy, now),
        metrics_dropped=drop_old_metrics(session, policy, now),
    )
    result.migrate = migration.nodes_with_work(session)
    if result.touched or result.migrate or result.metrics_dropped:
        log.info(
            "fleet check: sync %s, migrate off %s, %d old metric rows dropped",
            result.touched,
            result.migrate,
            result.metrics_dropped,
        )
    return result
