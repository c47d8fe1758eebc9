"""Bring a node to its desired user set: read revision R and its users, run playbooks/sync_users.yml, record.

DESIGN.md §2. sync_node is what the RQ job `sync-node-<id>` calls; it takes ids and reloads state. Besides the
users (xray_users) it sends the client addresses refused for one config each (xray_device_blocks: email,
address, until as unix seconds; services/devices.py), read in the same transaction.
How revisions stay consistent with concurrent writers: services/revisions.py. After the run,
applied_revision is raised to R only, so a bump during the run is left for the next sync.

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
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Node, SyncRun, UserConfig, utcnow
from ..runners.ansible import PlaybookResult, run_playbook, scrub
from ..services import identity_pool
from ..services.revisions import desired_device_blocks, desired_users
from .context import NODE_GROUP, NodeVars, Runner, SessionFactory

log = logging.getLogger(__name__)

SYNC_PLAYBOOK = "sync_users.yml"
DEFAULT_TIMEOUT_SECONDS = 300


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


def sync_node(
    session_factory: SessionFactory,
    node_id: int,
    runner: Runner | None = None,
    node_vars: NodeVars | None = None,
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    pool_size: int = 0,
) -> SyncRun:
    """Sync NODE_ID to its desired revision; return the finished SyncRun (succeeded or failed).

    RUNNER defaults to the real one (runners.run_playbook: ansible-runner).

    A failed run is recorded, not raised: configs stay pending and applied_revision does not move,
    so the caller (the job) decides about retries from run.status.

    POOL_SIZE: the warm identity pool's size per protocol (services/identity_pool.py), refilled first.
    """
    _refill_pool(session_factory, node_id, pool_size)
    with session_factory() as session:
        with session.begin():
            revision, users = desired_users(session, node_id)
            blocks = desired_device_blocks(session, node_id, utcnow())
            node = session.get(Node, node_id)
            assert node is not None
            inventory = node_inventory(node, node_vars)
            node_name = node.name
            run = SyncRun(node_id=node_id, revision=revision, status="running")
            session.add(run)
        run_id = run.id
    config_ids = [int(user["email"].removeprefix("cfg-")) for user in users if user["email"].startswith("cfg-")]

    started = time.monotonic()
    try:
        result: PlaybookResult | None = (runner or run_playbook)(
            SYNC_PLAYBOOK,
            inventory,
            {"xray_users": users, "xray_device_blocks": blocks, "rayfleet_revision": revision},
            limit=node_name,
            timeout=timeout,
        )
        error = result.error
    except Exception as exc:  # any crash of the runner is a failed sync, recorded readably
        log.exception("sync of node %s crashed", node_id)
        result, error = None, scrub(f"the playbook run crashed: {type(exc).__name__}: {exc}")
    duration_ms = result.duration_ms if result else int((time.monotonic() - started) * 1000)

    with session_factory() as session:
        with session.begin():
            run = session.get(SyncRun, run_id)
            assert run is not None
            run.finished_at = utcnow()
            run.duration_ms = duration_ms
            if result is not None:
                run.rc, run.changed, run.added, run.removed = result.rc, result.changed, result.added, result.removed
            if result is not None and result.ok:
                _record_success(session, node_id, revision, config_ids)
                identity_pool.mark_ready(session, node_id, revision, (user["email"] for user in users))
                run.status = "succeeded"
            else:
                run.status, run.error = "failed", error or "the sync failed"
        session.refresh(run)
        session.expunge(run)
    log.info("sync of node %s to revision %s: %s in %s ms", node_id, revision, run.status, duration_ms)
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
