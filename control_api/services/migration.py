"""Migration: dynamic customers moved off an alerting or draining node, make-before-break.

A move is a reassignment that rides the sync path (revisions.py). The state lives on the config
row, and every step is one transaction, so a worker may die anywhere and the next run (or the
sweep) carries on from what is committed:

    steady      node_id = N, previous_node_id NULL
      | migrate_off (one transaction: the target's revision bumped)
    moving      node_id = target, previous_node_id = source, moved_at_revision = the target's
                desired revision that first includes it; BOTH nodes serve it (desired_users)
      | advance, once target.applied_revision >= moved_at_revision
    live        migration_live_at set, previous_until = then + the grace window; the customer is
                told the new links ("migrated"), links and /sub now name the target
      | advance, once previous_until has passed (the source's revision bumped)
    steady      node_id = target, previous_node_id NULL: the source stops serving it

    moving --(target alerting, draining or not active before it went live)--> back on the source

At no point is a config on neither node: the source keeps it until the target has applied it.
Usage from both nodes adds up (heartbeat.py accepts the source's reports for it).

Constant-IP configs never move on their own (their address is the product); they are named in the
node's alert for an admin to act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..actors import SYSTEM, Principal
from ..errors import Conflict
from ..models import Node, Plan, UserConfig
from . import audit, notifications, webhooks
from .configs import share_links
from .lookup import get_or_404
from .node_health import HealthPolicy
from .placement import load_by_node, spare_capacity
from .revisions import SERVED_STATUSES, bump

log = logging.getLogger(__name__)


@dataclass
class MigrationRun:
    """What one migrate_off did."""

    moved: list[tuple[int, int]] = field(default_factory=list)  # (config id, target node id)
    stranded: int = 0  # dynamic configs no healthy node of their tier could take now
    pinned: int = 0  # constant-IP configs left in place
    touched: list[int] = field(default_factory=list)  # nodes whose revision was bumped


def is_dynamic():
    """Configs that may move: no plan (trials) or a plan that is not constant-IP."""
    return or_(Plan.id.is_(None), Plan.is_constant_ip.is_(False))


def needs_migration(node: Node) -> bool:
    return node.alert_since is not None or node.status == "draining"


def _healthy_targets(session: Session, policy: HealthPolicy, now: datetime, exclude: int) -> list[tuple[Node, int]]:
    """Nodes that may take moved configs, with their spare capacity: active, not alerting, heard from
    recently (not dark in all but name), with room."""
    load, spare = load_by_node(), spare_capacity()
    heard_after = now - timedelta(seconds=policy.limits["dark"])
    rows = session.execute(
        select(Node, spare)
        .outerjoin(load, load.c.node_id == Node.id)
        .where(
            Node.status == "active",
            Node.alert_since.is_(None),
            Node.last_seen_at.is_not(None),
            Node.last_seen_at >= heard_after,
            Node.id != exclude,
            spare > 0,
        )
        .order_by(spare.desc(), Node.id)
    ).all()
    return [(node, int(room)) for node, room in rows]


def _fits(node: Node, location_tag: str, region: str | None) -> bool:
    return node.location_tag == location_tag and (region is None or node.region == region)


def grace_seconds(source: Node, policy: HealthPolicy) -> int:
    """How long the source keeps a moved config once the target serves it: none when the source is
    dark (it serves nobody anyway) or drained with "now"."""
    if "dark" in (source.alert_breached or {}) or (source.status == "draining" and source.drain_immediate):
        return 0
    return policy.migration_grace_seconds


def migrate_off(session: Session, source_id: int, policy: HealthPolicy, now: datetime) -> MigrationRun:
    """Move up to the per-target budget of SOURCE_ID's dynamic configs to healthy nodes of their tier
    (location, and region when the plan names one), most spare capacity first. The caller commits
    and dispatches run.touched."""
    run = MigrationRun()
    source = session.get(Node, source_id, with_for_update=True)
    if source is None or not needs_migration(source):
        return run
    rows = session.execute(
        select(UserConfig, Plan)
        .outerjoin(Plan, Plan.id == UserConfig.plan_id)
        .where(
            UserConfig.node_id == source_id,
            UserConfig.status.in_(SERVED_STATUSES),
            UserConfig.previous_node_id.is_(None),
        )
        .order_by(UserConfig.id)
        .with_for_update(of=UserConfig)
    ).all()
    targets = _healthy_targets(session, policy, now, exclude=source_id)
    room = {node.id: min(spare, policy.migration_batch_per_node) for node, spare in targets}
    grace = grace_seconds(source, policy)
    moved_configs: list[UserConfig] = []
    for config, plan in rows:
        if plan is not None and plan.is_constant_ip:
            run.pinned += 1
            continue
        location, region = (plan.location_tag, plan.region) if plan else (source.location_tag, None)
        target = next((node for node, _ in targets if room[node.id] > 0 and _fits(node, location, region)), None)
        if target is None:
            run.stranded += 1
            continue
        room[target.id] -= 1
        config.previous_node_id, config.node_id = source_id, target.id
        config.migration_grace_seconds = grace
        config.migration_live_at = config.previous_until = None
        run.moved.append((config.id, target.id))
        moved_configs.append(config)
    if not moved_configs:
        return run
    run.touched = bump(session, {target_id for _, target_id in run.moved})
    session.flush()
    revisions = dict(session.execute(select(Node.id, Node.desired_revision).where(Node.id.in_(run.touched))).all())
    for config in moved_configs:
        config.moved_at_revision = revisions[config.node_id]
    audit.record(
        session,
        SYSTEM,
        "node.migration_started",
        node_id=source_id,
        moved=len(run.moved),
        to_node_ids=run.touched,
        stranded=run.stranded,
        pinned=run.pinned,
        grace_seconds=grace,
    )
    log.info("node %s: moving %d config(s) to %s (%d stranded)", source_id, len(run.moved), run.touched, run.stranded)
    return run


def advance(session: Session, policy: HealthPolicy, now: datetime) -> list[int]:
    """Every moving config one step on (live, finished, or rolled back); the nodes to bump and sync.
    Idempotent: the sweep and every job may call it. The caller commits and dispatches."""
    touched: set[int] = set()
    _mark_live(session, now)
    touched |= _finish(session, now)
    touched |= _roll_back(session)
    return bump(session, touched)


def _moving(session: Session, *conditions: Any) -> list[tuple[UserConfig, Node]]:
    return list(
        session.execute(
            select(UserConfig, Node)
            .join(Node, Node.id == UserConfig.node_id)
            .where(UserConfig.previous_node_id.is_not(None), *conditions)
            .order_by(UserConfig.id)
            .with_for_update(of=UserConfig)
        ).all()
    )


def _mark_live(session: Session, now: datetime) -> None:
    """Configs the target now serves: the grace window starts, and the customer gets the new links."""
    for config, target in _moving(
        session, UserConfig.migration_live_at.is_(None), Node.applied_revision >= UserConfig.moved_at_revision
    ):
        config.migration_live_at = now
        config.previous_until = now + timedelta(seconds=config.migration_grace_seconds or 0)
        if config.status in SERVED_STATUSES:
            notifications.notify(
                session,
                config.user_id,
                "migrated",
                f"migrated:cfg-{config.id}:{target.id}:{config.moved_at_revision}",
                config_id=config.id,
                node_name=target.name,
                location_tag=target.location_tag,
                links=share_links(target, config),
            )
        source = session.get(Node, config.previous_node_id) if config.previous_node_id is not None else None
        webhooks.emit(
            session,
            "config.migrated",
            webhooks.config_payload(
                config,
                from_node_id=config.previous_node_id,
                from_node_name=source.name if source is not None else None,
                to_node_id=target.id,
                to_node_name=target.name,
                location_tag=target.location_tag,
            ),
        )
        audit.record(
            session,
            SYSTEM,
            "config.migration_live",
            config_id=config.id,
            node_id=target.id,
            until=config.previous_until.isoformat(),
        )


def _finish(session: Session, now: datetime) -> set[int]:
    """Grace over: the source stops serving the config."""
    sources: set[int] = set()
    for config, _target in _moving(
        session, UserConfig.migration_live_at.is_not(None), UserConfig.previous_until <= now
    ):
        sources.add(config.previous_node_id)  # type: ignore[arg-type]
        audit.record(
            session,
            SYSTEM,
            "config.migrated",
            config_id=config.id,
            from_node_id=config.previous_node_id,
            to_node_id=config.node_id,
        )
        _clear(config)
    return sources


def _roll_back(session: Session) -> set[int]:
    """A target that went bad before it served the config: the config stays on its source."""
    targets: set[int] = set()
    for config, target in _moving(
        session,
        UserConfig.migration_live_at.is_(None),
        or_(Node.alert_since.is_not(None), Node.status != "active"),
    ):
        targets.add(target.id)
        audit.record(
            session,
            SYSTEM,
            "config.migration_rolled_back",
            config_id=config.id,
            node_id=target.id,
            back_to=config.previous_node_id,
        )
        config.node_id = config.previous_node_id
        _clear(config)
    return targets


def _clear(config: UserConfig) -> None:
    config.previous_node_id = config.moved_at_revision = config.migration_grace_seconds = None
    config.migration_live_at = config.previous_until = None


def nodes_with_work(session: Session) -> list[int]:
    """Alerting or draining nodes that still serve dynamic configs not yet moving: migration candidates."""
    return list(
        session.scalars(
            select(Node.id)
            .join(UserConfig, UserConfig.node_id == Node.id)
            .outerjoin(Plan, Plan.id == UserConfig.plan_id)
            .where(
                or_(Node.alert_since.is_not(None), Node.status == "draining"),
                UserConfig.status.in_(SERVED_STATUSES),
                UserConfig.previous_node_id.is_(None),
                is_dynamic(),
            )
            .distinct()
            .order_by(Node.id)
        )
    )


# --- what an alert says (counts and the action planned) ------------------------------------------


def alert_counts(session: Session, node: Node, policy: HealthPolicy, now: datetime) -> dict[str, Any]:
    """For an alerting or draining NODE: its configs by kind, the constant-IP ones by id, and the actions."""
    rows = session.execute(
        select(UserConfig.id, Plan.is_constant_ip, Plan.location_tag, Plan.region)
        .outerjoin(Plan, Plan.id == UserConfig.plan_id)
        .where(
            UserConfig.node_id == node.id,
            UserConfig.status.in_(SERVED_STATUSES),
            UserConfig.previous_node_id.is_(None),
        )
        .order_by(UserConfig.id)
    ).all()
    migrating_away = session.scalar(
        select(func.count()).where(UserConfig.previous_node_id == node.id, UserConfig.status.in_(SERVED_STATUSES))
    )
    targets = [target for target, _ in _healthy_targets(session, policy, now, exclude=node.id)]
    pinned = [config_id for config_id, constant, _, _ in rows if constant]
    movable = stranded = 0
    for _config_id, constant, location, region in rows:
        if constant:
            continue
        tier = (location, region) if location is not None else (node.location_tag, None)
        if any(_fits(target, *tier) for target in targets):
            movable += 1
        else:
            stranded += 1
    actions = []
    if movable or migrating_away:
        actions.append({"code": "migrating", "count": movable + int(migrating_away or 0)})
    if stranded:
        actions.append({"code": "no_healthy_node", "count": stranded})
    if pinned:
        actions.append({"code": "constant_ip_pinned", "count": len(pinned)})
    return {
        "configs": {
            "dynamic": movable + stranded,
            "constant_ip": len(pinned),
            "migrating_away": int(migrating_away or 0),
        },
        "constant_ip_config_ids": pinned,
        "actions": actions,
    }


# --- drain and undrain ---------------------------------------------------------------------------

DRAINABLE = ("active", "offline", "draining")


def drain(session: Session, actor: Principal, node_id: int, immediately: bool) -> Node:
    """Keep new sales off NODE_ID and move its dynamic configs away (the caller queues the migration)."""
    node = get_or_404(session, Node, node_id, "Node", with_for_update=True)
    if node.status not in DRAINABLE:
        raise Conflict(f"A node that is {node.status} cannot be drained.", code="node_not_drainable")
    node.status, node.drain_immediate = "draining", immediately
    audit.record(session, actor, "node.drain", node_id=node.id, now=immediately)
    session.commit()
    return node


def undrain(session: Session, actor: Principal, node_id: int) -> Node:
    """Take NODE_ID back into sales; configs already moved away stay where they are."""
    node = get_or_404(session, Node, node_id, "Node", with_for_update=True)
    if node.status != "draining":
        raise Conflict(f"Node {node_id} is {node.status}, not draining.", code="node_not_draining")
    node.status, node.drain_immediate = "active", False
    audit.record(session, actor, "node.undrain", node_id=node.id)
    session.commit()
    return node
