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
    Connection,
    Select,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..actors import Principal
from ..models import LAST_METRIC_COLUMNS, Node, NodeMetric, Usage, UsageReport, User, UserConfig, utcnow
from ..prepared_statements import PREPARED
from . import audit, identity_pool, lifecycle
from .alerts import announce
from .devices import DevicePolicy, record_devices
from .node_health import HealthPolicy, evaluate
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
    # metrics on it (what GET /nodes shows) and reads it back, where a SELECT ... FOR UPDATE and an UPDATE would
    # be two statements.
    node = session.scalars(
        _NODE_SEEN,
        {"node_id": node_principal.id, "now": now, **metric},
        execution_options={"populate_existing": True, "synchronize_session": False},
    ).one()
    # A Core INSERT: the row is written and never read back in this request (the ORM's flush cost more).
    session.connection().execute(_METRIC_INSERT, {"node_id": node.id, "timestamp": now, **metric})
    change = evaluate(session, node, policy, now, heartbeat=True, latest=NodeMetric(**metric))
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
        settled = identity_pool.settle_usage(session, node.id, report["usage"], report["period_start"], now)
        pool_retired += settled.retired
        stored = _store_report(session, node.id, {**report, "usage": settled.usage})
        if stored is None:
            duplicates.append(report["report_id"])
        else:
            accepted.append(report["report_id"])
            unknown += stored.unknown
            foreign |= stored.foreign
            moved |= stored.moved
    if foreign:
        audit.record(session, node_principal, "node.foreign_usage_dropped", node_id=node.id, config_ids=sorted(foreign))
    ended = _end_service(session, node.id, moved, now)
    devices = record_devices(session, node.id, data["devices"], now, device_policy or DevicePolicy())
    ended |= devices.nodes
    if pool_retired:
        ended.add(node.id)  # the node drops the retired identities at its next sync
    here = node.id in ended
    if here:
        bump(session, [node.id])
    if ended:
        session.flush()  # the configs expire_due/suspend_exhausted changed: the watch below reads without the ORM
    # Read in the heartbeat's own transaction (it sees this report's bytes), so the answer costs no second one.
    watch = quota_watch(session, node.id, quota_watch_bytes)
    session.commit()
    others = sorted(ended - {node.id})
    if others:
        bump(session, others)
        session.commit()
    if here or others:
        session.refresh(node)
        for node_id in sorted(ended):
            if dispatch is not None:
                dispatch(node_id)
    if change.raised and enqueue_migration is not None:
        enqueue_migration(node.id)
    if unknown:
        log.info("node %s reported traffic for %d configs that no longer exist", node.id, unknown)
    if foreign:
        log.warning("node %s reported traffic for %d configs of other nodes; dropped", node.id, len(foreign))
    return {
        "accepted": accepted,
        "duplicates": duplicates,
        "unknown_configs": unknown,
        "foreign_configs": len(foreign),
        "ignored_devices": devices.ignored,
        "device_limits": [{"email": email, "max_devices": limit} for email, limit in sorted(devices.limits.items())],
        "desired_revision": node.desired_revision,
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


@functools.cache
def _end_service_probe(dialect: str) -> Select:
    """Whether a config the node serves is due for expiry at :now, and whether one of :moved is near its cap:
    one cheap read that spares the heartbeat both locking reads when, as nearly always, neither is. Built once
    per dialect."""
    node_id = bindparam("node_id")
    return select(
        exists().where(
            *lifecycle.due_for_expiry(bindparam("now")),
            or_(UserConfig.node_id == node_id, UserConfig.previous_node_id == node_id),
        ),
        exists().where(*lifecycle.near_cap(), _id_in(UserConfig.id, "moved", dialect)),
    ).execution_options(**PREPARED)


def _node_seen_statement() -> Any:
    """UPDATE the node :node_id: seen at :now (offline -> active), this heartbeat's metrics (:cpu, ...) kept on
    its row; RETURNING the node."""
    return (
        update(Node)
        .where(Node.id == bindparam("node_id"))
        .values(
            last_seen_at=bindparam("now"),
            status=case((Node.status == "offline", "active"), else_=Node.status),
            last_metrics_at=bindparam("now"),
            **{column: bindparam(key) for key, column in LAST_METRIC_COLUMNS.items()},
        )
        .returning(Node)
    )


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
_NODE_SEEN = _node_seen_statement().execution_options(**PREPARED)
_METRIC_INSERT = insert(NodeMetric.__table__).execution_options(**PREPARED)
_USAGE_INSERT = insert(Usage.__table__)


def _end_service(session: Session, node_id: int, moved: set[int], now: Any) -> set[int]:
    """In the heartbeat's transaction: expire the node's configs past their expiry and suspend those of MOVED
    (configs whose usage this heartbeat added) at their cap. Returns every node that served one of them.

    The probe reads what the locking reads of expire_due and suspend_exhausted would find (committed rows and
    this transaction's own writes); they run only when it finds something, and decide under their locks."""
    # Without the ORM (no autoflush): nothing before it in a heartbeat changes a config through the ORM.
    connection = session.connection()
    probe = connection.execute(
        _end_service_probe(connection.dialect.name), {"node_id": node_id, "now": now, "moved": sorted(moved)}
    )
    due, near = probe.one()
    ended = []
    if due:
        served_here = or_(UserConfig.node_id == node_id, UserConfig.previous_node_id == node_id)
        ended = lifecycle.expire_due(session, now, served_here)
    if moved and near:
        ended += lifecycle.suspend_exhausted(session, UserConfig.id.in_(sorted(moved)))
    return {node for node in serving_nodes(ended) if node is not None}


@dataclass(frozen=True)
class StoredReport:
    unknown: int  # usage entries for configs that do not exist
    foreign: frozenset[int]  # configs of other nodes the report named (their usage dropped)
    moved: frozenset[int]  # configs whose usage the report added to


def _store_report(session: Session, node_id: int, report: dict[str, Any]) -> StoredReport | None:
    """Store one report's usage rows; None when the report id was stored before (a retry).

    The report row goes in first with ON CONFLICT DO NOTHING on the unique (node_id, report_id): a repeated
    delivery of the same id inserts nothing and is counted as a duplicate, and a concurrent one waits on the
    first's row and then does the same, never counted twice (no savepoint: two statements fewer a report).
    """
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
    # Core statements, not ORM objects: a report is a few hundred rows at most, written and never read.
    report_row = connection.execute(
        _report_insert(connection.dialect.name), {"node_id": node_id, "report_id": report["report_id"]}
    ).scalar()
    if report_row is None:
        return None
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
                "report_id": report_row,
                "bytes_in": entry["uplink"],
                "bytes_out": entry["downlink"],
                "period_start": report["period_start"],
                "period_end": report["period_end"],
            }
        )
        moved[config_id] = moved.get(config_id, 0) + entry["uplink"] + entry["downlink"]
    if usage_rows:
        _insert_usage(connection, usage_rows)
    _add_used_bytes(session, {config_id: n for config_id, n in moved.items() if n})
    return StoredReport(unknown, frozenset(foreign), frozenset(config_id for config_id, n in moved.items() if n))


@functools.cache
def _report_insert(dialect: str) -> Any:
    """INSERT the usage report (:node_id, :report_id) unless stored before, RETURNING its id: with ON CONFLICT of
    DIALECT (PostgreSQL, or SQLite: the embedded default). Built once per dialect."""
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    reports = UsageReport.__table__
    return (
        dialect_insert(reports)
        .values(node_id=bindparam("node_id"), report_id=bindparam("report_id"))
        .on_conflict_do_nothing(index_elements=["node_id", "report_id"])
        .returning(reports.c.id)
        .execution_options(**PREPARED)
    )


_USAGE_COLUMNS = ("user_id", "config_id", "bytes_in", "bytes_out")


def _insert_usage(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """INSERT one report's usage ROWS (all of one report and period) in one statement: on PostgreSQL a constant
    INSERT ... SELECT over unnest() of one array per column, built once; else (SQLite) a multi-row INSERT.
    SQLAlchemy's multi-row path (insertmanyvalues) renders a VALUES row per entry each call: a tenth of a
    heartbeat's CPU in the API, and a statement PostgreSQL plans anew every time."""
    if connection.dialect.name != "postgresql":
        connection.execute(_USAGE_INSERT, rows)
        return
    parameters = {column: [row[column] for row in rows] for column in _USAGE_COLUMNS}
    parameters.update({key: rows[0][key] for key in ("report_id", "period_start", "period_end")})
    connection.execute(_usage_insert_from_arrays(), parameters)


@functools.cache
def _usage_insert_from_arrays() -> Any:
    usage = Usage.__table__
    rows = (
        func.unnest(*[bindparam(column, type_=ARRAY(BigInteger)) for column in _USAGE_COLUMNS])
        .table_valued(*_USAGE_COLUMNS)
        .render_derived()
    )
    return (
        insert(usage)
        .from_select(
            [*_USAGE_COLUMNS, "report_id", "period_start", "period_end"],
            select(
                *[rows.c[column] for column in _USAGE_COLUMNS],
                bindparam("report_id", type_=usage.c.report_id.type),
                bindparam("period_start", type_=usage.c.period_start.type),
                bindparam("period_end", type_=usage.c.period_end.type),
            ),
        )
        .execution_options(**PREPARED)
    )


def _add_used_bytes(session: Session, moved: dict[int, int]) -> None:
    """used_bytes += MOVED[id] for every config in MOVED, in one UPDATE, in SQL: concurrent reports for one config
    add up instead of overwriting. On PostgreSQL ids and amounts travel as two arrays (a constant statement);
    SQLite gets a CASE over the ids (IN)."""
    if not moved:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        ids = sorted(moved)
        connection.execute(_USED_BYTES_FROM_ARRAYS, {"ids": ids, "amounts": [moved[config_id] for config_id in ids]})
        return
    parameters = {}
    for number, config_id in enumerate(sorted(moved)):
        parameters[f"id_{number}"] = config_id
        parameters[f"bytes_{number}"] = moved[config_id]
    count = len(moved)
    statement = _cached_used_bytes_update(count) if count <= MAX_CACHED_USED_BYTES else _used_bytes_update(count)
    connection.execute(statement, parameters)


def _used_bytes_from_arrays() -> Any:
    """PostgreSQL: used_bytes += n for each (id, n) of unnest(:ids, :amounts); :ids sorted, so the configs are
    read, and locked, in id order."""
    configs = UserConfig.__table__
    moved = (
        func.unnest(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("amounts", type_=ARRAY(BigInteger)))
        .table_valued("id", "amount")
        .render_derived()
    )
    return (
        update(configs)
        .where(configs.c.id == moved.c.id)
        .values(used_bytes=configs.c.used_bytes + moved.c.amount)
        .execution_options(**PREPARED)
    )


_USED_BYTES_FROM_ARRAYS = _used_bytes_from_arrays()


# The reports of a heartbeat interval name a few dozen configs at most, so their counts repeat: those statements
# are kept. A larger report builds its own: a statement keeps three expression objects per config, and a node
# choosing its report sizes must not grow every worker's memory.
MAX_CACHED_USED_BYTES = 64


@functools.lru_cache(maxsize=MAX_CACHED_USED_BYTES)
def _cached_used_bytes_update(count: int) -> Any:
    return _used_bytes_update(count)


def _used_bytes_update(count: int) -> Any:
    """The UPDATE of _add_used_bytes for COUNT configs, with parameters :id_0, :bytes_0, ..."""
    configs = UserConfig.__table__
    ids = [bindparam(f"id_{number}", type_=configs.c.id.type) for number in range(count)]
    added = case(
        *[(configs.c.id == ids[number], bindparam(f"bytes_{number}", type_=BigInteger())) for number in range(count)],
        else_=0,
    )
    return update(configs).where(configs.c.id.in_(ids)).values(used_bytes=configs.c.used_bytes + added)
