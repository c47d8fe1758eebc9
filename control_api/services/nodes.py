"""Node records, their agent credentials, and how they look to admins (health, sync state)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Result, Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ..actors import Principal
from ..config import Settings, node_api_url_problem
from ..errors import Conflict, Forbidden
from ..models import LAST_METRIC_COLUMNS, Node, NodeMetric, SyncRun, UserConfig, column_attributes, columns_of, utcnow
from . import audit, migration
from .credentials import hash_secret, new_client_id, new_secret
from .lookup import get_or_404
from .principals import acting_admin
from .revisions import desired_users


def create_node(session: Session, actor: Principal, data: dict[str, Any], stale_after_seconds: int) -> dict[str, Any]:
    """Create a node; its view carries the agent's one-time client_secret."""
    if session.scalar(select(Node.id).where(Node.name == data["name"])) is not None:
        raise Conflict(f"A node named {data['name']!r} already exists.", code="node_name_taken")
    secret = new_secret()
    public_ip = data.get("public_ip")
    thresholds = {key: value for key, value in (data.get("thresholds") or {}).items() if value is not None}
    node = Node(
        **{**data, "public_ip": str(public_ip) if public_ip else None, "thresholds": thresholds},
        client_id=new_client_id("node"),
        secret_hash=hash_secret(secret),
    )
    session.add(node)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"A node named {data['name']!r} already exists.", code="node_name_taken") from exc
    audit.record(session, actor, "node.create", node_id=node.id, name=node.name, region=node.region)
    session.commit()
    return {**node_view(session, node, stale_after_seconds), "client_secret": secret}


def list_nodes(
    session: Session, caller: Principal, acting_telegram_id: int | None, stale_after_seconds: int
) -> list[dict[str, Any]]:
    """Every node as admins see it; the bot may list them for a Telegram admin it names."""
    acting_admin(session, caller, acting_telegram_id)
    # Core rows, not ORM objects: the same columns as columns_of reads, without building and tracking an
    # instance per row (a read-only list of every node, each with its last heartbeat and sync).
    nodes = _rows(session.connection().execute(select(*_VIEW_COLUMNS).order_by(Node.id)))
    return node_views(session, nodes, stale_after_seconds, every_node=True)


def node_view(session: Session, node: Node, stale_after_seconds: int) -> dict[str, Any]:
    return node_views(session, [node], stale_after_seconds)[0]


def node_views(
    session: Session, nodes: Sequence[Any], stale_after_seconds: int, every_node: bool = False
) -> list[dict[str, Any]]:
    """NODES (ORM objects, or Core rows of their columns_of columns) as admins see them: the row plus health, sync
    state, the last heartbeat (kept on the row) and the last sync. EVERY_NODE: NODES are all the nodes there
    are, so the grouped reads need no list of ids (1,000 bound parameters cost more than the rows they name).

    Two grouped queries for any number of nodes (no query per node).
    """
    ids = None if every_node else [node.id for node in nodes]
    runs = latest_rows_by_node(session, SyncRun, ids)
    pending_configs = _PENDING_CONFIGS if ids is None else _PENDING_CONFIGS_OF
    pending = dict(session.connection().execute(pending_configs, {} if ids is None else {"ids": ids}).all())
    now = utcnow()
    views = []
    for node in nodes:
        run = runs.get(node.id)
        view = _columns(node)
        metrics = {key: view.pop(column) for key, column in _METRIC_COLUMNS.items()}
        view.update(
            health=_health(node.last_seen_at, now, stale_after_seconds),
            sync_state=sync_state(node, run),
            pending_configs=pending.get(node.id, 0),
            last_metrics=None if metrics["at"] is None else metrics,
            last_sync=None if run is None else dict(run),
        )
        views.append(view)
    return views


def last_metric(node: Node) -> NodeMetric | None:
    """NODE's last heartbeat's metrics (kept on its row) as an unsaved NodeMetric; None before its first."""
    if node.last_metrics_at is None:
        return None
    values = {key: getattr(node, column) for key, column in _METRIC_COLUMNS.items() if key != "at"}
    return NodeMetric(node_id=node.id, timestamp=node.last_metrics_at, **values)


def latest_rows_by_node(session: Session, model: type[SyncRun], ids: list[int] | None) -> dict[int, Any]:
    """Each node's newest MODEL row (of the nodes IDS, or of every node when None), as a dict of the model's
    columns_of columns that also reads as attributes."""
    if ids is not None and not ids:
        return {}
    statement = _latest_rows_statement(model, ids is not None)
    return {row.node_id: row for row in _rows(session.connection().execute(statement, {"ids": ids} if ids else {}))}


@functools.cache
def _latest_rows_statement(model: type[SyncRun], of_ids: bool) -> Select:
    """Built once: building it took longer than PostgreSQL's answer for one node (an `ids` list, expanding)."""
    statement = select(*column_attributes(model)).join_from(Node, model, _newest_of(model))
    return statement.where(Node.id.in_(bindparam("ids", expanding=True))) if of_ids else statement


def _newest_of(model: type[SyncRun]) -> Any:
    """The join condition from nodes to each node's newest MODEL row: a correlated max(id), one probe of the
    (node_id, id) index per node, where a GROUP BY would read every row the nodes have (all retained
    runs). Joined, not `id IN (subquery)`: PostgreSQL then probes once per node, not twice."""
    newer = aliased(model)
    return model.id == select(func.max(newer.id)).where(newer.node_id == Node.id).scalar_subquery()


# Each node's pending configs: of every node, or of the nodes bound as `ids` (built once, like the runs').
_PENDING_CONFIGS = (
    select(UserConfig.node_id, func.count()).where(UserConfig.status == "pending").group_by(UserConfig.node_id)
)
_PENDING_CONFIGS_OF = _PENDING_CONFIGS.where(UserConfig.node_id.in_(bindparam("ids", expanding=True)))
# NodeOut's last_metrics keys and the node columns they are kept in (heartbeat.py writes them).
_METRIC_COLUMNS = {"at": "last_metrics_at", **LAST_METRIC_COLUMNS}
# A node's columns as the list reads them: the agent's secret hash is never part of a view.
_VIEW_COLUMNS = [column for column in column_attributes(Node) if column.key != "secret_hash"]


class _Columns(dict):
    """A row's columns as a dict that also reads as attributes (row.id), like the ORM object it stands for."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _rows(result: Result[Any]) -> list[_Columns]:
    keys = tuple(result.keys())
    return [_Columns(zip(keys, row, strict=True)) for row in result]


def _columns(row: Any) -> dict[str, Any]:
    return dict(row) if isinstance(row, _Columns) else columns_of(row)


def _health(last_seen_at: datetime | None, now: datetime, stale_after_seconds: int) -> str:
    if last_seen_at is None:
        return "never_seen"
    return "healthy" if (now - last_seen_at).total_seconds() <= stale_after_seconds else "stale"


def sync_state(node: Node, last_run: SyncRun | None) -> str:
    if node.applied_revision >= node.desired_revision:
        return "in_sync"
    return "failing" if last_run is not None and last_run.status == "failed" else "syncing"


def get_node_for(session: Session, principal: Principal, node_id: int) -> Node:
    """A node as seen by PRINCIPAL: admins see any node, a node agent only its own."""
    if principal.kind == "node" and principal.id != node_id:
        raise Forbidden("A node may only read its own record.")
    return get_or_404(session, Node, node_id, "Node")


def get_node(session: Session, principal: Principal, node_id: int, stale_after_seconds: int) -> dict[str, Any]:
    return node_view(session, get_node_for(session, principal, node_id), stale_after_seconds)


def served_configs(session: Session, principal: Principal, node_id: int) -> dict[str, Any]:
    """What the node must serve now, with the revision it corresponds to (the node's own view)."""
    node = get_node_for(session, principal, node_id)
    revision, users = desired_users(session, node.id, pool=False)  # pool identities are never shown
    session.commit()  # ends the read transaction and its row lock
    return {"node_id": node.id, "revision": revision, "applied_revision": node.applied_revision, "users": users}


def acknowledge_revision(
    session: Session, principal: Principal, node_id: int, revision: int, stale_after_seconds: int
) -> dict[str, Any]:
    """The node reports it serves REVISION. Applied only moves forward; at the desired revision, every
    pending config of the node is live."""
    node = get_node_for(session, principal, node_id)
    session.refresh(node, with_for_update=True)
    if revision > node.desired_revision:
        raise Conflict(
            f"Revision {revision} is ahead of the desired revision {node.desired_revision}.", code="revision_ahead"
        )
    if revision > node.applied_revision:
        node.applied_revision = revision
        if revision == node.desired_revision:
            session.execute(
                update(UserConfig)
                .where(UserConfig.node_id == node.id, UserConfig.status == "pending")
                .values(status="active")
            )
        audit.record(session, principal, "node.revision_applied", node_id=node.id, revision=revision)
    session.commit()
    return node_view(session, node, stale_after_seconds)


def request_provisioning(
    session: Session, actor: Principal, node_id: int, enqueue: Callable[[int], bool], settings: Settings
) -> bool:
    """Queue provision_node.yml for NODE_ID (base, core, users, agent); False if one is already queued."""
    node = get_or_404(session, Node, node_id, "Node")
    if node.status == "disabled":
        raise Conflict("The node is disabled; enable it before provisioning.", code="node_disabled")
    # The worker would refuse the job anyway; say why now, before anything is queued.
    problem = node_api_url_problem(settings.node_api_url, settings.node_api_allow_insecure_http)
    if problem:
        raise Conflict(problem, code="node_api_url_unusable")
    queued = enqueue(node.id)  # first: a queue that is down (503) leaves no audit row claiming a request
    audit.record(session, actor, "node.provision_requested", node_id=node.id, queued=queued)
    session.commit()
    return queued


def update_node(
    session: Session, actor: Principal, node_id: int, data: dict[str, Any], stale_after_seconds: int
) -> dict[str, Any]:
    """Change a node's capacity, uplink size or threshold overrides (merged; a null value removes one).
    The new limits apply from the next heartbeat, judged over the same window as ever."""
    node = get_or_404(session, Node, node_id, "Node", with_for_update=True)
    if "thresholds" in data:
        merged = {**(node.thresholds or {}), **data["thresholds"]}
        node.thresholds = {key: value for key, value in merged.items() if value is not None}
    for key in ("capacity_score", "bandwidth_capacity_mbps"):
        if key in data:
            setattr(node, key, data[key])
    audit.record(session, actor, "node.update", node_id=node.id, fields=sorted(data))
    session.commit()
    return node_view(session, node, stale_after_seconds)


def drain_node(
    session: Session,
    actor: Principal,
    node_id: int,
    immediately: bool,
    enqueue_migration: Callable[[int], Any],
    stale_after_seconds: int,
) -> dict[str, Any]:
    """Keep new sales off the node and queue the move of its dynamic configs (migration.py)."""
    node = migration.drain(session, actor, node_id, immediately)
    enqueue_migration(node.id)
    return node_view(session, node, stale_after_seconds)


def undrain_node(session: Session, actor: Principal, node_id: int, stale_after_seconds: int) -> dict[str, Any]:
    return node_view(session, migration.undrain(session, actor, node_id), stale_after_seconds)
