"""Node heartbeats: health metrics, incidents, and traffic reports stored exactly once; and the plan's
promises enforced on them.

A heartbeat whose traffic brings a config to its cap suspends it (reason quota) in the heartbeat's own
transaction, and every config of the node past its expiry is expired there too: the node's revision is
bumped and its sync queued at once, so a customer overruns a cap by at most one heartbeat interval's traffic
(plus the sync), not by the 5-minute sweep's. Another node that serves one of those configs (the source of a
move) is bumped after the commit, in its own transaction: the heartbeat holds only its own node's lock, so
two nodes' heartbeats never wait on each other.

The heartbeat's device counts are held against the plans' max_devices in the same transaction (devices.py): a
newly refused address bumps the config's nodes the same way.

Traffic reported for the warm pool's identities (pool-<id>) is settled first (identity_pool.settle_usage): the
adopting config's once the identity was adopted, nobody's before, and an unadopted identity that carried any
is retired (the node is bumped to drop it).

A node may charge traffic only to configs it serves: usage for a config placed on another node is
dropped, counted in the answer (foreign_configs) and audited as an incident, so one leaked node
secret cannot run every customer's quota down.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Select,
    any_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from ..actors import Principal
from ..models import LAST_METRIC_COLUMNS, Node, NodeMetric, User, UserConfig, utcnow
from ..prepared_statements import PREPARED
from . import audit, identity_pool, lifecycle
from .alerts import announce
from .devices import DevicePolicy, record_devices
from .node_health import NO_CHANGE, HealthPolicy, evaluate, heartbeat_is_quiet
from .report_store import store_report
from .revisions import Dispatch, bump, served_by, serving_nodes

log = logging.getLogger(__name__)
CONFIG_EMAIL = re.compile(r"^cfg-([0-9]+)$")
DEFAULT_QUOTA_WATCH_BYTES = 1024 * 1024 * 1024  # QUOTA_WATCH_MB
MAX_QUOTA_WATCH = 1000


def record_heartbeat(
    session: Session,
    node_principal: Principal,
    data: dict[str, Any],
    policy: HealthPolicy | None = None,
    enqueue_migration: Callable[[int], Any] | None = None,
    dispatch: Dispatch | None = None,
    device_policy: DevicePolicy | None = None,
    quota_watch_bytes: int = DEFAULT_QUOTA_WATCH_BYTES,
) -> dict[str, Any]:
    """Store the heartbeat, judge the node's health on it (node_health.py) and, when that raises an
    alert, queue the node's migration job after the commit. Configs its traffic exhausted and the node's
    configs past their expiry end here (module docstring), and its device counts are held against the plans'
    limits (devices.py); DISPATCH queues the syncs that carry the changes."""
    policy = policy or HealthPolicy()
    now = utcnow()
    metric = {key: data[key] for key in LAST_METRIC_COLUMNS}
    # One statement locks the node's row, marks it seen (an offline node is back), keeps this heartbeat's
    # metrics on it (what GET /nodes shows) and reads back what judging its health needs, where a SELECT ... FOR
    # UPDATE and an UPDATE would be two statements. On PostgreSQL it also INSERTs the metrics row (a WITH), on
    # SQLite a second statement does. Core, not the ORM: the ORM's UPDATE ... RETURNING of the whole node cost a
    # heartbeat more than any other statement.
    connection = session.connection()
    dialect = connection.dialect.name
    seen = connection.execute(_node_seen(dialect), {"node_id": node_principal.id, "now": now, **metric}).one()
    node_id = seen.id
    if dialect != "postgresql":
        connection.execute(_METRIC_INSERT, {"node_id": node_id, "timestamp": now, **metric})
    latest = NodeMetric(**metric)
    if seen.alert_since is None and heartbeat_is_quiet(seen, policy, latest):
        change = NO_CHANGE  # as nearly always: nothing to judge, so the node is not loaded
    else:
        node = session.get(Node, node_id, populate_existing=True)
        change = evaluate(session, node, policy, now, heartbeat=True, latest=latest)
        announce(session, node, change, policy, now)
    for incident in data["incidents"]:
        audit.record(
            session,
            node_principal,
            "node.incident",
            kind=incident["kind"],
            at=incident["at"].isoformat(),
            detail=incident["detail"],
            core_active=data["core_active"],
        )
    accepted: list[str] = []
    duplicates: list[str] = []
    unknown, foreign, moved = 0, set(), set()
    pool_retired = 0
    for report in data["reports"]:
        # Traffic of the warm pool's identities (pool-<id>): the adopting config's, or nobody's (identity_pool.py).
        settled = identity_pool.settle_usage(session, node_id, report["usage"], report["period_start"], now)
        pool_retired += settled.retired
        stored = _store_report(session, node_id, {**report, "usage": settled.usage}, now)
        if stored is None:
            duplicates.append(report["report_id"])
        else:
            accepted.append(report["report_id"])
            unknown += stored.unknown
            foreign |= stored.foreign
            moved |= stored.moved
    if foreign:
        audit.record(session, node_principal, "node.foreign_usage_dropped", node_id=node_id, config_ids=sorted(foreign))
    # One read in the heartbeat's own transaction (it sees this report's bytes): whether a config is due to end,
    # and the quota watch of the answer, which is read again only when configs ended.
    probe = _probe(session, node_id, moved, now, quota_watch_bytes)
    ended = _end_service(session, node_id, moved, now, probe)
    devices = record_devices(session, node_id, data["devices"], now, device_policy or DevicePolicy())
    ended |= devices.nodes
    if pool_retired:
        ended.add(node_id)  # the node drops the retired identities at its next sync
    here = node_id in ended
    if here:
        bump(session, [node_id])
    if probe.ends_service(moved):
        session.flush()  # the configs expire_due/suspend_exhausted changed: the watch reads without the ORM
        watch = quota_watch(session, node_id, quota_watch_bytes)
    else:
        watch = probe.watch
    session.commit()
    others = sorted(ended - {node_id})
    if others:
        bump(session, others)
        session.commit()
    # The answer names the revision the node must reach: bumped here, it is read again.
    desired_revision = session.scalar(_DESIRED_REVISION, {"node_id": node_id}) if here else seen.desired_revision
    if dispatch is not None:
        for touched in sorted(ended):
            dispatch(touched)
    if change.raised and enqueue_migration is not None:
        enqueue_migration(node_id)
    if unknown:
        log.info("node %s reported traffic for %d configs that no longer exist", node_id, unknown)
    if foreign:
        log.warning("node %s reported traffic for %d configs of other nodes; dropped", node_id, len(foreign))
    return {
        "accepted": accepted,
        "duplicates": duplicates,
        "unknown_configs": unknown,
        "foreign_configs": len(foreign),
        "ignored_devices": devices.ignored,
        "device_limits": [{"email": email, "max_devices": limit} for email, limit in sorted(devices.limits.items())],
        "desired_revision": desired_revision,
        "quota_watch": watch,
    }


def quota_watch(session: Session, node_id: int, under_bytes: int) -> list[dict[str, Any]]:
    """The node's served configs within UNDER_BYTES of their cap, with the bytes they have left (fewest first,
    at most MAX_QUOTA_WATCH): the agent watches their counters between heartbeats and reports at once when one
    reaches its cap, so a fast download is suspended within seconds, not a whole interval later."""
    if under_bytes <= 0:
        return []
    # On the session's connection: the ORM's execution path and autoflush cost a heartbeat more than the read.
    rows = session.connection().execute(_QUOTA_WATCH, {"node_id": node_id, "under_bytes": under_bytes})
    return [{"email": f"cfg-{config_id}", "remaining_bytes": int(left)} for config_id, left in rows]


def _quota_watch_statement() -> Select:
    limit = UserConfig.data_limit_mb * lifecycle.MIB
    remaining = (limit - UserConfig.used_bytes).label("remaining")
    return (
        select(UserConfig.id, remaining)
        .join(User, User.id == UserConfig.user_id)
        .where(
            *served_by(bindparam("node_id")),
            UserConfig.data_limit_mb.is_not(None),
            limit - UserConfig.used_bytes < bindparam("under_bytes"),
        )
        .where(limit > UserConfig.used_bytes)
        .order_by(remaining, UserConfig.id)
        .limit(MAX_QUOTA_WATCH)
    )


def _id_in(column: Any, name: str, dialect: str) -> Any:
    """COLUMN in the list bound as :NAME: `= ANY(:NAME)` on PostgreSQL (one array parameter), an expanding IN on
    SQLite (the embedded default has no arrays), whose rendering per call cost a heartbeat more."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(bindparam(name, expanding=True))


@dataclass(frozen=True)
class Probe:
    due: bool  # a config the node serves is past its expiry
    near: bool  # a config of the report's moved ones is near its cap
    watch: list[dict[str, Any]]  # quota_watch's answer, as of the probe

    def ends_service(self, moved: set[int]) -> bool:
        """Whether _end_service takes its locking reads (and may end configs)."""
        return self.due or bool(moved and self.near)


def _probe(session: Session, node_id: int, moved: set[int], now: Any, under_bytes: int) -> Probe:
    """Whether a config the node serves is due for expiry at NOW, whether one of MOVED is near its cap, and the quota
    watch: one cheap read that spares the heartbeat both locking reads of _end_service when, as nearly always,
    neither is, and spares it a second read for its answer."""
    # On the connection (no autoflush): nothing before it in a heartbeat changes a config through the ORM.
    connection = session.connection()
    parameters = {"node_id": node_id, "now": now, "moved": sorted(moved), "under_bytes": max(under_bytes, 0)}
    rows = connection.execute(_probe_statement(connection.dialect.name), parameters).all()
    watch = [
        {"email": f"cfg-{config_id}", "remaining_bytes": int(left)}
        for _due, _near, config_id, left in rows
        if config_id is not None
    ]
    return Probe(bool(rows[0][0]), bool(rows[0][1]), watch)


@functools.cache
def _probe_statement(dialect: str) -> Select:
    """One row of (due, near) joined to the quota watch's rows (NULLs when it has none): the end-of-service probe
    of _probe, and quota_watch's read (an :under_bytes of 0 watches nothing). Built once per dialect."""
    node_id = bindparam("node_id")
    flags = select(
        exists()
        .where(
            *lifecycle.due_for_expiry(bindparam("now")),
            or_(UserConfig.node_id == node_id, UserConfig.previous_node_id == node_id),
        )
        .label("due"),
        exists().where(*lifecycle.near_cap(), _id_in(UserConfig.id, "moved", dialect)).label("near"),
    ).subquery("flags")
    watch = _quota_watch_statement().subquery("watch")
    return (
        select(flags.c.due, flags.c.near, watch.c.id, watch.c.remaining)
        .select_from(flags.outerjoin(watch, true()))
        .order_by(watch.c.remaining, watch.c.id)
        .execution_options(**PREPARED)
    )


@functools.cache
def _node_seen(dialect: str) -> Any:
    """UPDATE the node :node_id: seen at :now (offline -> active), this heartbeat's metrics (:cpu, ...) kept on
    its row; RETURNING what judging its health needs (node_health.heartbeat_is_quiet) and its desired revision. On
    PostgreSQL it INSERTs the metrics row too, in a WITH (one round trip, and one of SQLAlchemy's executions,
    fewer). Built once per dialect."""
    statement = (
        update(Node)
        .where(Node.id == bindparam("node_id"))
        .values(
            last_seen_at=bindparam("now"),
            status=case((Node.status == "offline", "active"), else_=Node.status),
            last_metrics_at=bindparam("now"),
            **{column: bindparam(key) for key, column in LAST_METRIC_COLUMNS.items()},
        )
        .returning(
            Node.id,
            Node.desired_revision,
            Node.alert_breached,
            Node.alert_since,
            Node.thresholds,
            Node.bandwidth_capacity_mbps,
        )
    )
    if dialect == "postgresql":
        metrics = NodeMetric.__table__
        row = insert(metrics).values(
            node_id=bindparam("node_id", type_=metrics.c.node_id.type),
            timestamp=bindparam("now", type_=metrics.c.timestamp.type),
            **{key: bindparam(key, type_=metrics.c[key].type) for key in LAST_METRIC_COLUMNS},
        )
        statement = statement.add_cte(row.cte("metric"))
    return statement.execution_options(**PREPARED)


_DESIRED_REVISION = select(Node.desired_revision).where(Node.id == bindparam("node_id"))


@functools.cache
def _owners_statement(dialect: str) -> Select:
    """The configs of :ids with their customer and the nodes that serve them. Built once per dialect."""
    return (
        select(UserConfig.id, UserConfig.user_id, UserConfig.node_id, UserConfig.previous_node_id)
        .where(_id_in(UserConfig.id, "ids", dialect))
        .execution_options(**PREPARED)
    )


# Built once: a heartbeat runs them with new parameters (the statement is neither rebuilt nor re-keyed; building
# and cache-keying a statement cost a heartbeat more than PostgreSQL's running of it).
_QUOTA_WATCH = _quota_watch_statement().execution_options(**PREPARED)
_METRIC_INSERT = insert(NodeMetric.__table__).execution_options(**PREPARED)


def _end_service(session: Session, node_id: int, moved: set[int], now: Any, probe: Probe) -> set[int]:
    """In the heartbeat's transaction: expire the node's configs past their expiry and suspend those of MOVED
    (configs whose usage this heartbeat added) at their cap. Returns every node that served one of them.

    The PROBE read what the locking reads of expire_due and suspend_exhausted would find (committed rows and
    this transaction's own writes); they run only when it found something, and decide under their locks."""
    ended = []
    if probe.due:
        served_here = or_(UserConfig.node_id == node_id, UserConfig.previous_node_id == node_id)
        ended = lifecycle.expire_due(session, now, served_here)
    if moved and probe.near:
        ended += lifecycle.suspend_exhausted(session, UserConfig.id.in_(sorted(moved)))
    return {node for node in serving_nodes(ended) if node is not None}


@dataclass(frozen=True)
class StoredReport:
    unknown: int  # usage entries for configs that do not exist
    foreign: frozenset[int]  # configs of other nodes the report named (their usage dropped)
    moved: frozenset[int]  # configs whose usage the report added to


def _store_report(session: Session, node_id: int, report: dict[str, Any], now: Any) -> StoredReport | None:
    """Store one report's usage rows and add them to the configs' used_bytes (report_store.py); None when the report
    id was stored before (a retry, or a concurrent delivery of the same report)."""
    ids = {int(match.group(1)) for entry in report["usage"] if (match := CONFIG_EMAIL.match(entry["email"]))}
    connection = session.connection()
    rows = connection.execute(_owners_statement(connection.dialect.name), {"ids": sorted(ids)})
    owners, foreign = {}, set()
    for config_id, user_id, config_node_id, previous_node_id in rows:
        # A moving config is served by its source and its target: both report its traffic.
        if node_id in (config_node_id, previous_node_id):
            owners[config_id] = user_id
        else:
            foreign.add(config_id)
    unknown = 0
    moved: dict[int, int] = {}
    usage_rows = []
    for entry in report["usage"]:
        config_id = int(CONFIG_EMAIL.match(entry["email"]).group(1))
        if config_id not in owners:
            unknown += config_id not in foreign
            continue
        usage_rows.append(
            {
                "user_id": owners[config_id],
                "config_id": config_id,
                "bytes_in": entry["uplink"],
                "bytes_out": entry["downlink"],
            }
        )
        moved[config_id] = moved.get(config_id, 0) + entry["uplink"] + entry["downlink"]
    # Core statements, not ORM objects: a report is a few hundred rows at most, written and never read.
    period = (report["period_start"], report["period_end"])
    if store_report(connection, node_id, report["report_id"], now, period, usage_rows, moved) is None:
        return None
    return StoredReport(unknown, frozenset(foreign), frozenset(config_id for config_id, n in moved.items() if n))
