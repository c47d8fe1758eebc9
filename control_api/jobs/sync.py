"""Bring a node to its desired user set: read revision R and its users, run playbooks/sync_users.yml, record.

DESIGN.md §2. sync_node is what the RQ job `sync-node-<id>` calls; it takes ids and reloads state. Besides the
users (xray_users) it sends the client addresses refused for one config each (xray_device_blocks: email,
address, until as unix seconds; services/devices.py), read in the same transaction.
How revisions stay consistent with concurrent writers: services/revisions.py. After the run,
applied_revision is raised to R only, so a bump during the run is left for the next sync.
What is sent is the change since the node's last successful sync when that is known, else the full set
(services/deltas.py); a node whose users module refuses the delta (its state is not the delta's base) gets
the full set in a second run at once.

Per-node variables (the inventory hook): the node row gives ansible_host (public_ip), xray_core,
and, when set, xray_inbounds, xray_tls_server_name and xray_tls_self_signed (what links are built
from, so the node serves exactly what clients are told). Everything else — how to connect
(ansible_user, ansible_connection, …) and the role's other variables (REALITY keys, …) — comes
from NODE_VARS, a callable `node -> mapping` passed to sync_node/node_inventory (the worker builds
it from its configuration; tests pass a podman connection). Its values override the row's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Node, SyncRun, UserConfig, utcnow
from ..runners.ansible import PlaybookResult, run_playbook, scrub
from ..services import identity_pool
from ..services.deltas import SyncPayload, full_payload, plan_sync, record_served
from ..services.revisions import desired_device_blocks, lock_desired_revision, pending_served_configs
from .context import NODE_GROUP, NodeVars, Runner, SessionFactory
from .node_locks import node_locks

log = logging.getLogger(__name__)

SYNC_PLAYBOOK = "sync_users.yml"
DEFAULT_TIMEOUT_SECONDS = 300
# Hosts a batched run works on at once (ansible's --forks): the worker's processes, not the node's.
DEFAULT_FORKS = 10


def node_inventory(node: Node, node_vars: NodeVars | None = None) -> dict[str, Any]:
    """An inventory of NODE alone, in group vpn_nodes; NODE_VARS(node) overrides the row's host vars."""
    host_vars: dict[str, Any] = {"xray_core": node.core}
    if node.public_ip:
        host_vars["ansible_host"] = node.public_ip
    if node.inbounds:
        host_vars["xray_inbounds"] = [dict(inbound) for inbound in node.inbounds]
    if node.tls_server_name:
        host_vars["xray_tls_server_name"] = node.tls_server_name
    if node.tls_self_signed:
        host_vars["xray_tls_self_signed"] = True
    if node_vars is not None:
        host_vars.update(node_vars(node))
    return {"all": {"children": {NODE_GROUP: {"hosts": {node.name: host_vars}}}}}


class NodeBusy(RuntimeError):
    """Another run (a node's own job, a fleet batch, a provisioning) holds the node's sync lock."""


@dataclass
class _Prepared:
    """One node's part of a run: what was read at its revision, and the SyncRun row that records it."""

    node_id: int
    name: str
    revision: int
    host_vars: dict[str, Any]
    payload: SyncPayload
    blocks: list[dict[str, Any]]
    config_ids: list[int]
    run_id: int

    def variables(self) -> dict[str, Any]:
        return {**self.payload.extravars(), "xray_device_blocks": self.blocks, "rayfleet_revision": self.revision}


def sync_node(
    session_factory: SessionFactory,
    node_id: int,
    runner: Runner | None = None,
    node_vars: NodeVars | None = None,
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    full: bool = False,
    pool_size: int = 0,
) -> SyncRun:
    """Sync NODE_ID to its desired revision; return the finished SyncRun (succeeded or failed).

    RUNNER defaults to the real one (runners.run_playbook: ansible-runner). FULL sends the whole user set
    even when a delta would do (provisioning: the shape may change).

    A failed run is recorded, not raised: configs stay pending and applied_revision does not move,
    so the caller (the job) decides about retries from run.status. NodeBusy is raised when another run
    holds the node (jobs/node_locks.py); the job retries later.

    POOL_SIZE: the warm identity pool's size per protocol (services/identity_pool.py), refilled first.
    """
    with node_locks(session_factory, [node_id]) as held:
        if node_id not in held:
            raise NodeBusy(f"node {node_id} is being synced by another run")
        _refill_pool(session_factory, node_id, pool_size)
        prepared = _prepare(session_factory, node_id, node_vars, full)
        started = time.monotonic()

        def run_once(item: _Prepared) -> PlaybookResult:
            inventory = _inventory({item.name: item.host_vars})
            return (runner or run_playbook)(
                SYNC_PLAYBOOK, inventory, item.variables(), limit=item.name, timeout=timeout
            )

        try:
            result: PlaybookResult | None = run_once(prepared)
            if result.ok and result.resync_hosts:
                why = "; ".join(result.resync_hosts.values())
                log.info("node %s refused the delta (%s); sending the full set", node_id, why)
                _prepare_full(session_factory, prepared, "the node refused the delta")
                result = run_once(prepared)
            error = result.error
        except Exception as exc:  # any crash of the runner is a failed sync, recorded readably
            log.exception("sync of node %s crashed", node_id)
            result, error = None, scrub(f"the playbook run crashed: {type(exc).__name__}: {exc}")
        duration_ms = result.duration_ms if result else int((time.monotonic() - started) * 1000)
        ok = result is not None and result.ok and not result.resync_hosts
        if result is not None and result.ok and result.resync_hosts:
            error = "the node asked for the full set after it was sent"
        return _finish(session_factory, prepared, result, ok, error, duration_ms)


def sync_nodes(
    session_factory: SessionFactory,
    node_ids: list[int],
    runner: Runner | None = None,
    node_vars: NodeVars | None = None,
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    forks: int = DEFAULT_FORKS,
    pool_size: int = 0,
) -> dict[int, SyncRun]:
    """Sync every node of NODE_IDS in one playbook run over all of them (FORKS hosts at a time): the fleet-wide
    change (the sweep after an outage, a ban touching many nodes, a migration wave) costs one run, not one per
    node. Each host gets its own desired revision as host variables; a failing host holds back no other, and
    each node's applied revision moves on its own result. Nodes another run holds are left out (not in the
    answer). Hosts that refuse their delta get their full set in one more run over just them."""
    with node_locks(session_factory, node_ids) as held:
        for node_id in sorted(held):
            _refill_pool(session_factory, node_id, pool_size)
        prepared = [_prepare(session_factory, node_id, node_vars, False) for node_id in sorted(held)]
        if not prepared:
            return {}
        started = time.monotonic()
        outcomes: dict[int, tuple[PlaybookResult | None, bool, str]] = {}
        pending = prepared
        for _attempt in range(2):
            inventory = _inventory({item.name: {**item.host_vars, **item.variables()} for item in pending})
            try:
                result: PlaybookResult | None = (runner or run_playbook)(
                    SYNC_PLAYBOOK,
                    inventory,
                    {},
                    limit=",".join(item.name for item in pending),
                    timeout=timeout,
                    forks=forks,
                )
            except Exception as exc:  # a crashed run fails every host in it, readably
                log.exception("batched sync of nodes %s crashed", [item.node_id for item in pending])
                error = scrub(f"the playbook run crashed: {type(exc).__name__}: {exc}")
                outcomes.update({item.node_id: (None, False, error) for item in pending})
                break
            refused = []
            for item in pending:
                ok, error = _host_outcome(result, item.name)
                if ok and item.name in result.resync_hosts and item.payload.full is False:
                    _prepare_full(session_factory, item, "the node refused the delta")
                    refused.append(item)
                    continue
                if ok and item.name in result.resync_hosts:
                    ok, error = False, "the node asked for the full set after it was sent"
                outcomes[item.node_id] = (result, ok, error)
            if not refused:
                break
            pending = refused
        duration_ms = int((time.monotonic() - started) * 1000)
        return {item.node_id: _finish(session_factory, item, *outcomes[item.node_id], duration_ms) for item in prepared}


def _host_outcome(result: PlaybookResult, host: str) -> tuple[bool, str]:
    """Whether HOST's part of a multi-host run succeeded, and its errors (never another host's)."""
    stats = result.hosts.get(host)
    if result.status in ("timeout", "canceled", "error"):
        return False, scrub(f"the playbook run ended with status {result.status}")
    if stats is None:
        return False, f"{host}: the run reported nothing for this node"
    if stats.failed or stats.unreachable:
        mine = [message for message in result.errors if message.startswith(f"{host}: ")]
        return False, scrub("; ".join(mine) or f"{host}: a task failed")
    return True, ""


def _inventory(hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"all": {"children": {NODE_GROUP: {"hosts": hosts}}}}


def _prepare(session_factory: SessionFactory, node_id: int, node_vars: NodeVars | None, full: bool) -> _Prepared:
    """Read NODE_ID's desired revision, users and blocks consistently, plan the payload, open its SyncRun."""
    with session_factory() as session:
        with session.begin():
            revision = lock_desired_revision(session, node_id)
            node = session.get(Node, node_id)
            assert node is not None
            payload = plan_sync(session, node, full=full)
            blocks = desired_device_blocks(session, node_id, utcnow())
            host_vars = node_inventory(node, node_vars)["all"]["children"][NODE_GROUP]["hosts"][node.name]
            # The configs this run makes live: those it serves that are pending now (read at revision R).
            config_ids = pending_served_configs(session, node_id)
            run = SyncRun(node_id=node_id, revision=revision, status="running")
            session.add(run)
            name = node.name
        run_id = run.id
    return _Prepared(node_id, name, revision, host_vars, payload, blocks, config_ids, run_id)


def _prepare_full(session_factory: SessionFactory, item: _Prepared, reason: str) -> None:
    """ITEM's node refused its delta: read its whole set to send instead. The set is read at the revision desired
    now, as _prepare reads it (the delta's own revision may have been passed meanwhile), and the run records it."""
    with session_factory() as session, session.begin():
        item.revision = lock_desired_revision(session, item.node_id)
        item.payload = full_payload(session, item.node_id, reason)
        item.blocks = desired_device_blocks(session, item.node_id, utcnow())
        item.config_ids = pending_served_configs(session, item.node_id)
        session.execute(update(SyncRun).where(SyncRun.id == item.run_id).values(revision=item.revision))


def _finish(
    session_factory: SessionFactory,
    item: _Prepared,
    result: PlaybookResult | None,
    ok: bool,
    error: str,
    duration_ms: int,
) -> SyncRun:
    """Record ITEM's outcome: on success its applied revision, live configs and served snapshot move on."""
    if result is not None and len(result.hosts) <= 1:
        duration_ms = result.duration_ms
    with session_factory() as session:
        with session.begin():
            run = session.get(SyncRun, item.run_id)
            assert run is not None
            run.finished_at = utcnow()
            run.duration_ms = duration_ms
            if result is not None:
                stats = result.hosts.get(item.name)
                run.rc = result.rc
                run.changed = stats.changed if stats is not None else result.changed
                run.added, run.removed = result.counts_for(item.name)  # its own, not the batch's
            if ok:
                _record_success(session, item.node_id, item.revision, item.config_ids)
                record_served(session, item.node_id, item.payload, item.revision)
                identity_pool.mark_ready(session, item.node_id, item.revision, item.payload.pool_emails)
                run.status = "succeeded"
            else:
                run.status, run.error = "failed", error or "the sync failed"
        session.refresh(run)
        session.expunge(run)
    log.info(
        "sync of node %s to revision %s (%s, %s users): %s in %s ms",
        item.node_id,
        item.revision,
        "full: " + item.payload.reason if item.payload.full else "delta",
        item.payload.size,
        run.status,
        duration_ms,
    )
    return run


def _refill_pool(session_factory: SessionFactory, node_id: int, size: int) -> None:
    """The warm identity pool (services/identity_pool.py), refilled in its own transaction before the users are
    read, so this run serves the new identities. Only a pool that exists or should is touched."""
    with session_factory() as session, session.begin():
        if size > 0 or identity_pool.has_pool(session, node_id):
            identity_pool.refill(session, node_id, size)


def _record_success(session: Session, node_id: int, revision: int, config_ids: list[int]) -> None:
    node = session.scalar(select(Node).where(Node.id == node_id).with_for_update())
    if node is not None and revision > node.applied_revision:
        node.applied_revision = revision
    if config_ids:
        # Only the configs this run served, and only if still pending and still on this node: one
        # suspended or moved meanwhile keeps its new state (its own revision bump syncs it).
        session.execute(
            update(UserConfig)
            .where(UserConfig.id.in_(config_ids), UserConfig.node_id == node_id, UserConfig.status == "pending")
            .values(status="active")
        )
