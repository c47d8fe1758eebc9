"""The job functions a worker runs: `sync_node_job(node_id)`, `sync_fleet_job()`, `provision_node_job(node_id)`
and `migrate_node_job(node_id)`.

Jobs take ids and reload state (DESIGN.md §2); their context (sessions, runner, node vars) comes
from context.py. A failed SyncRun RAISES SyncFailed, so RQ's Retry (see queue.py) schedules the
next attempt. The queue refers to these functions by name (queue.SYNC_JOB, queue.PROVISION_JOB), so
the process that enqueues them (the API) never imports this module, nor ansible-runner through it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from ..config import node_api_url_problem
from ..models import Node, utcnow
from ..runners.ansible import PlaybookResult, run_playbook
from ..services import migration
from .context import Runner, WorkerContext, worker_context
from .provisioning import mark_provisioned, rotate_agent_secret
from .queue import ensure_queue
from .sync import sync_node, sync_nodes

log = logging.getLogger(__name__)

PROVISION_PLAYBOOK = "provision_node.yml"
# After a successful run, sync again while the node still lags (a change committed during the
# run was coalesced into this job): at most this many extra passes, then the sweep takes over.
MAX_DRAIN_PASSES = 3
# Nodes one batched run syncs at most; more lagging nodes than that wait for the job's next pass.
FLEET_BATCH_MAX = 200
# A node's status that keeps it out of any sync (as the sweep's reconcile).
NOT_SYNCED = ("disabled",)


class SyncFailed(RuntimeError):
    """A sync or provisioning run failed; raised so that RQ retries the job."""


def sync_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `sync-node-<id>`: bring the node to its desired revision; raise SyncFailed on failure."""
    ctx = context or worker_context()
    ensure_queue(ctx)  # where the webhook deliveries its commits write are queued
    outcome = _run(node_id, ctx, runner_override=None)
    after_sync(ctx)
    return outcome


def sync_fleet_job(_unused: int = 0, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `sync-fleet`: every lagging node in one playbook run (jobs/sync.py sync_nodes), then again while
    nodes still lag (changes during the run), at most MAX_DRAIN_PASSES more times. The nodes are read when
    the job runs, not when it was queued, so a coalesced request loses nothing. A node that failed is
    left to its own retry: its sync job is queued (RQ's retries, as for any failed sync)."""
    ctx = context or worker_context()
    queue = ensure_queue(ctx)
    synced: dict[int, str] = {}
    for _ in range(1 + MAX_DRAIN_PASSES):
        lagging = [node_id for node_id in _lagging_nodes(ctx) if synced.get(node_id) != "failed"]
        if not lagging:
            break
        runs = sync_nodes(
            ctx.session_factory,
            lagging,
            runner=ctx.runner,
            node_vars=ctx.node_vars,
            pool_size=ctx.identity_pool_size,
        )
        synced.update({node_id: run.status for node_id, run in runs.items()})
        if not runs:
            break  # every lagging node is held by another run, which drains it
    failed = sorted(node_id for node_id, status in synced.items() if status == "failed")
    if failed and queue is not None:
        for node_id in failed:
            queue.enqueue_node_sync(node_id)
    after_sync(ctx)
    return {"synced": sorted(node_id for node_id, status in synced.items() if status == "succeeded"), "failed": failed}


def _lagging_nodes(ctx: WorkerContext) -> list[int]:
    with ctx.session_factory() as session:
        return list(
            session.scalars(
                select(Node.id)
                .where(Node.applied_revision < Node.desired_revision, Node.status.not_in(NOT_SYNCED))
                .order_by(Node.id)
                .limit(FLEET_BATCH_MAX)
            )
        )


def sync_node_if_lagging_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `sync-node-<id>-again` (queue.py): a change was coalesced into a running sync job; sync the node
    only if it still lags (the running job usually caught the change)."""
    ctx = context or worker_context()
    if not _lags(ctx, node_id):
        return {"node_id": node_id, "skipped": "in sync"}
    return sync_node_job(node_id, context=ctx)


def migrate_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `migrate-node-<id>`: step every move on, then move the next batch of NODE_ID's dynamic
    configs (services/migration.py) and queue the syncs that carry them."""
    ctx = context or worker_context()
    ensure_queue(ctx)
    now = utcnow()
    with ctx.session_factory() as session:
        touched = set(migration.advance(session, ctx.policy, now))
        run = migration.migrate_off(session, node_id, ctx.policy, now)
        session.commit()
    touched |= set(run.touched)
    _follow_up(ctx, sync=sorted(touched), migrate=[])
    return {"node_id": node_id, "moved": len(run.moved), "stranded": run.stranded, "pinned": run.pinned}


def after_sync(ctx: WorkerContext) -> None:
    """A node applied a revision: moves it completes go live (customers told) or end (their sources
    synced); migrations with configs left queue their next batch."""
    with ctx.session_factory() as session:
        touched = migration.advance(session, ctx.policy, utcnow())
        work = migration.nodes_with_work(session)
        session.commit()
    _follow_up(ctx, sync=touched, migrate=work)


def _follow_up(ctx: WorkerContext, sync: list[int], migrate: list[int]) -> None:
    """Queue the jobs a job's outcome calls for (nothing is lost without a queue: the sweep re-finds it)."""
    if not (sync or migrate):
        return
    queue = ensure_queue(ctx)
    if queue is None:
        log.info("no job queue in this context; the sweep will sync %s and migrate off %s", sync, migrate)
        return
    if sync:
        queue.enqueue_node_syncs(sync)  # a migration wave: one batched run
    for node_id in migrate:
        queue.enqueue_migration(node_id)


def provision_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `provision-node-<id>`: run provision_node.yml (base + core + users + agent), recorded like a sync.

    Each run hands the agent fresh credentials (the old secret stops working at once, so a copy
    that leaked from an earlier install is useless); on success the node becomes active.
    """
    ctx = context or worker_context()
    problem = node_api_url_problem(ctx.node_api_url, ctx.node_api_allow_insecure_http)
    if problem:
        raise SyncFailed(problem)
    client_id, secret = rotate_agent_secret(ctx.session_factory, node_id)
    agent_vars = {
        "node_agent_api_url": ctx.node_api_url,
        "node_agent_client_id": client_id,
        "node_agent_client_secret": secret,
        "node_agent_allow_insecure_http": ctx.node_api_url.startswith("http://"),
    }
    runner = ctx.runner or run_playbook

    def provision(_playbook: str, inventory: Any, extravars: dict[str, Any], **kwargs: Any) -> PlaybookResult:
        return runner(PROVISION_PLAYBOOK, inventory, {**extravars, **agent_vars}, **kwargs)

    outcome = _run(node_id, ctx, runner_override=provision, full=True)
    mark_provisioned(ctx.session_factory, node_id)
    after_sync(ctx)
    return outcome


def _run(node_id: int, ctx: WorkerContext, runner_override: Runner | None, full: bool = False) -> dict[str, Any]:
    runner = runner_override or ctx.runner
    for _ in range(1 + MAX_DRAIN_PASSES):
        run = sync_node(
            ctx.session_factory,
            node_id,
            runner=runner,
            node_vars=ctx.node_vars,
            full=full,
            pool_size=ctx.identity_pool_size,
        )
        if run.status != "succeeded":
            raise SyncFailed(f"node {node_id} revision {run.revision}: {run.error or 'the run failed'}")
        if not _lags(ctx, node_id):
            break
        runner, full = ctx.runner, False  # later passes only sync users, even after a provisioning run
    return {"node_id": node_id, "revision": run.revision, "sync_run_id": run.id}


def _lags(ctx: WorkerContext, node_id: int) -> bool:
    with ctx.session_factory() as session:
        row = session.execute(
            select(Node.applied_revision, Node.desired_revision).where(Node.id == node_id)
        ).one_or_none()
    return row is not None and row.applied_revision < row.desired_revision
