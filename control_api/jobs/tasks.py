"""The job functions a worker runs: `sync_node_job(node_id)` and `provision_node_job(node_id)`.

Jobs take ids and reload state (DESIGN.md §2). A worker process has no Flask app, so the first job
in a process builds a WorkerContext from the environment (Settings.from_env: DATABASE_URL, …) and
keeps it for the life of the process. The in-process queue (embedded default) passes the app's own
context instead.

A failed SyncRun RAISES SyncFailed, so RQ's Retry (see queue.py) schedules the next attempt.

Per-node Ansible variables (the production `node_vars` hook, see control_api/jobs/README.md):

- `$RAYFLEET_NODE_VARS_DIR/<node name>.yml` (default `inventory/host_vars`, relative to the
  worker's working directory): that node's host vars (ansible_user, xray_inbounds, …);
- `inventory/group_vars/vpn_nodes.yml` next to it (i.e. `<dir>/../group_vars/vpn_nodes.yml`),
  if present: vars shared by every node; the node's own file wins.

Both are optional; a missing file contributes nothing. Values override the database row's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ..config import Settings
from ..extensions import Database
from ..models import Node
from ..runners.ansible import PlaybookResult, run_playbook
from ..services import nodes as node_service
from ..services.sync import NODE_GROUP, NodeVars, Runner, SessionFactory, sync_node

log = logging.getLogger(__name__)

PROVISION_PLAYBOOK = "provision_node.yml"
DEFAULT_NODE_VARS_DIR = "inventory/host_vars"
# After a successful run, sync again while the node still lags (a change committed during the
# run was coalesced into this job): at most this many extra passes, then the sweep takes over.
MAX_DRAIN_PASSES = 3


class SyncFailed(RuntimeError):
    """A sync or provisioning run failed; raised so that RQ retries the job."""


class YamlNodeVars:
    """node -> vars from `<dir>/<node name>.yml` over `<dir>/../group_vars/vpn_nodes.yml`."""

    def __init__(self, host_vars_dir: str | Path) -> None:
        self.host_vars_dir = Path(host_vars_dir)
        self.group_vars_file = self.host_vars_dir.parent / "group_vars" / f"{NODE_GROUP}.yml"

    def __call__(self, node: Node) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        merged.update(_read_yaml(self.group_vars_file))
        merged.update(_read_yaml(self.host_vars_dir / f"{node.name}.yml"))
        return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of variables, not {type(data).__name__}")
    return data


@dataclass
class WorkerContext:
    """What a job needs besides its ids: sessions, the playbook runner and the node vars hook."""

    session_factory: SessionFactory
    runner: Runner = run_playbook
    node_vars: NodeVars | None = None
    database: Database | None = field(default=None, repr=False)
    # The API's URL as agents reach it (RAYFLEET_NODE_API_URL); provisioning requires it.
    node_api_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> WorkerContext:
        env = os.environ if env is None else env
        database = Database(settings.database_url)
        vars_dir = env.get("RAYFLEET_NODE_VARS_DIR", "").strip() or DEFAULT_NODE_VARS_DIR
        factory = sessionmaker(database.engine, expire_on_commit=False)
        return cls(
            session_factory=factory,
            node_vars=YamlNodeVars(vars_dir),
            database=database,
            node_api_url=settings.node_api_url,
        )


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def worker_context() -> WorkerContext:
    """The process's context, built from the environment on first use (a worker has no Flask app)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext.from_settings(Settings.from_env())
        return _context


def set_worker_context(context: WorkerContext | None) -> None:
    """Install (or, with None, forget) the process's context: for tests and embedding."""
    global _context
    with _context_lock:
        _context = context


def sync_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `sync-node-<id>`: bring the node to its desired revision; raise SyncFailed on failure."""
    return _run(node_id, context or worker_context(), runner_override=None)


def provision_node_job(node_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    """RQ job `provision-node-<id>`: run provision_node.yml (base + core + users + agent), recorded like a sync.

    Each run hands the agent fresh credentials (the old secret stops working at once, so a copy
    that leaked from an earlier install is useless); on success the node becomes active.
    """
    ctx = context or worker_context()
    if not ctx.node_api_url:
        raise SyncFailed(
            "RAYFLEET_NODE_API_URL is not set: the worker needs the API's URL as nodes reach it "
            "to configure the node agent (see .env.example)"
        )
    client_id, secret = node_service.rotate_agent_secret(ctx.session_factory, node_id)
    agent_vars = {
        "node_agent_api_url": ctx.node_api_url,
        "node_agent_client_id": client_id,
        "node_agent_client_secret": secret,
    }

    def provision(_playbook: str, inventory: Any, extravars: dict[str, Any], **kwargs: Any) -> PlaybookResult:
        return ctx.runner(PROVISION_PLAYBOOK, inventory, {**extravars, **agent_vars}, **kwargs)

    outcome = _run(node_id, ctx, runner_override=provision)
    node_service.mark_provisioned(ctx.session_factory, node_id)
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
