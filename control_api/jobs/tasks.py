"""The job functions a worker runs: `sync_node_job(node_id)` and `provision_node_job(node_id)`.

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
from ..models import Node
from ..runners.ansible import PlaybookResult, run_playbook
from .context import Runner, WorkerContext, worker_context
from .provisioning import mark_provisioned, rotate_agent_secret
from .sync import sync_node

log = logging.getLogger(__name__)

PROVISION_PLAYBOOK = "provision_node.yml"
# After a successful run, sync again while the node still lags (a change committed during the
# run was coalesced into this job): at most this many extra passes, then the sweep takes over.
MAX_DRAIN_PASSES = 3


class SyncFailed(RuntimeError):
    """A sync or provisioning run failed; raised so that RQ retries the job."""


def sync_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `sync-node-<id>`: bring the node to its desired revision; raise SyncFailed on failure."""
    return _run(node_id, context or worker_context(), runner_override=None)


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

    outcome = _run(node_id, ctx, runner_override=provision)
    mark_provisioned(ctx.session_factory, node_id)
    return outcome


def _run(node_id: int, ctx: WorkerContext, runner_override: Runner | None) -> dict[str, Any]:
    runner = runner_override or ctx.runner
    for _ in range(1 + MAX_DRAIN_PASSES):
        run = sync_node(ctx.session_factory, node_id, runner=runner, node_vars=ctx.node_vars)
        if run.status != "succeeded":
            raise SyncFailed(f"node {node_id} revision {run.revision}: {run.error or 'the run failed'}")
        if not _lags(ctx, node_id):
            break
        runner = ctx.runner  # later passes only sync users, even after a provisioning run
    return {"node_id": node_id, "revision": run.revision, "sync_run_id": run.id}


def _lags(ctx: WorkerContext, node_id: int) -> bool:
    with ctx.session_factory() as session:
        row = session.execute(
            select(Node.applied_revision, Node.desired_revision).where(Node.id == node_id)
        ).one_or_none()
    return row is not None and row.applied_revision < row.desired_revision
