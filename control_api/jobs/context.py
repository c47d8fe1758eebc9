"""What a job needs besides its ids: sessions, the playbook runner and the per-node Ansible variables.

A worker process has no Flask app, so the first job in a process builds a WorkerContext from the
environment (Settings.from_env: DATABASE_URL, …) and keeps it for the life of the process. The
in-process queue (embedded default) passes the app's own context instead.

Per-node Ansible variables (the production `node_vars` hook, see control_api/jobs/README.md):

- `$RAYFLEET_NODE_VARS_DIR/<node name>.yml` (default `inventory/host_vars`, relative to the
  worker's working directory): that node's host vars (ansible_user, xray_inbounds, …);
- `inventory/group_vars/vpn_nodes.yml` next to it (i.e. `<dir>/../group_vars/vpn_nodes.yml`),
  if present: vars shared by every node; the node's own file wins.

Both are optional; a missing file contributes nothing. Values override the database row's.

This module does not import the playbook runner (ansible-runner): the API process builds a context
for its in-process queue without loading Ansible until a job actually runs (sync.py resolves it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from ..database import Database
from ..models import Node
from ..services.node_health import HealthPolicy
from ..services.webhooks import DeliveryPolicy, dispatch_after_commit

NODE_GROUP = "vpn_nodes"
DEFAULT_NODE_VARS_DIR = "inventory/host_vars"

NodeVars = Callable[[Node], Mapping[str, Any]]
Runner = Callable[..., Any]  # run_playbook's signature, returning a PlaybookResult
SessionFactory = Callable[[], Session]


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
    """What a job needs besides its ids. RUNNER None means the real one (runners.run_playbook)."""

    session_factory: SessionFactory
    runner: Runner | None = None
    node_vars: NodeVars | None = None
    database: Database | None = field(default=None, repr=False)
    # The API's URL as agents reach it (RAYFLEET_NODE_API_URL); provisioning requires it.
    node_api_url: str = ""
    node_api_allow_insecure_http: bool = False
    # Health limits and migration knobs (HEALTH_*, MIGRATION_*): what the migration job and the fleet check use.
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    # Where jobs queue follow-up jobs: the in-process queue sets itself; a worker builds RQ's from REDIS_URL.
    queue: Any = field(default=None, repr=False)
    redis_url: str = ""
    # WEBHOOK_*: timeouts, attempts, backoff and whether internal targets are allowed (jobs/webhooks.py).
    webhook_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # IDENTITY_POOL_SIZE: the warm identity pool each sync refills (services/identity_pool.py); 0: none.
    identity_pool_size: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> WorkerContext:
        env = os.environ if env is None else env
        database = Database(settings.database_url)
        vars_dir = env.get("RAYFLEET_NODE_VARS_DIR", "").strip() or DEFAULT_NODE_VARS_DIR
        factory = sessionmaker(database.engine, expire_on_commit=False)
        context = cls(
            session_factory=factory,
            node_vars=YamlNodeVars(vars_dir),
            database=database,
            node_api_url=settings.node_api_url,
            node_api_allow_insecure_http=settings.node_api_allow_insecure_http,
            policy=HealthPolicy.from_settings(settings),
            redis_url=settings.redis_url,
            webhook_policy=DeliveryPolicy.from_settings(settings),
            identity_pool_size=settings.identity_pool_size,
        )
        context.queue_webhooks_after_commit(factory)
        return context

    def queue_webhooks_after_commit(self, factory: Any) -> None:
        """Queue the webhook deliveries each commit of FACTORY's sessions wrote (services/webhooks.py) on this
        context's queue: the in-process one sets itself, a worker's jobs set RQ's (queue.ensure_queue)."""

        def enqueue(delivery_id: int, attempts: int, at: Any) -> None:
            # Every job entry point sets the queue first (queue.ensure_queue); without one the sweep queues it.
            if self.queue is not None:
                self.queue.enqueue_webhook_delivery(delivery_id, attempts, at)

        dispatch_after_commit(factory, enqueue)


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
