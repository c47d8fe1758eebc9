"""The 5-minute sweep: the sales rules (services/lifecycle.py: auto-accept, expiry, quotas, warnings),
then reconciliation: re-enqueue every node whose applied revision lags (DESIGN.md §2, step 5).

`rq cron control_api.jobs.cron` enqueues `run_sweep` every 5 minutes; a worker runs it. `rq cron`
has no lock between processes, so run_sweep takes one: a Redis key set with NX and a TTL, holding a
random token, deleted only by its owner (compare-and-delete in Lua). A second sweep that finds the
lock held does nothing. The embedded default (no Redis) uses a process lock instead.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..models import Node
from ..services.lifecycle import run_lifecycle
from .context import worker_context
from .queue import JobQueue

log = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "rayfleet:lock:sweep"
SWEEP_LOCK_TTL_SECONDS = 240  # shorter than the 5-minute period: a crashed sweep never blocks the next
SKIPPED_STATUSES = ("disabled",)

_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""

_process_lock = threading.Lock()


def reconcile(session: Session, queue: JobQueue) -> list[int]:
    """Enqueue a sync for every lagging, not disabled node; return their ids (coalesced ones included)."""
    lagging = session.scalars(
        select(Node.id)
        .where(Node.applied_revision < Node.desired_revision, Node.status.not_in(SKIPPED_STATUSES))
        .order_by(Node.id)
    ).all()
    for node_id in lagging:
        queue.enqueue_node_sync(node_id)
    if lagging:
        log.info("sweep re-enqueued %d lagging node(s): %s", len(lagging), list(lagging))
    return list(lagging)


@contextmanager
def redis_lock(connection: redis.Redis, key: str, ttl_seconds: int) -> Iterator[bool]:
    """Yield True if this caller took KEY (SET NX EX), False if another holds it; release only our own."""
    token = secrets.token_hex(16)
    acquired = bool(connection.set(key, token, nx=True, ex=ttl_seconds))
    try:
        yield acquired
    finally:
        if acquired:
            connection.eval(_RELEASE, 1, key, token)


@contextmanager
def process_lock() -> Iterator[bool]:
    acquired = _process_lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            _process_lock.release()


def run_sweep(settings: Settings | None = None, queue: JobQueue | None = None) -> list[int] | None:
    """The cron entry point: reconcile under the sweep lock; None when another sweep holds it.

    The embedded default passes its app's InProcessJobQueue (one executor per process).
    """
    settings = settings or Settings.from_env()
    context = worker_context()
    queue = queue or JobQueue.from_settings(settings, context=context)
    if settings.redis_url:
        lock = redis_lock(redis.Redis.from_url(settings.redis_url), SWEEP_LOCK_KEY, SWEEP_LOCK_TTL_SECONDS)
    else:
        lock = process_lock()
    with lock as acquired:
        if not acquired:
            log.info("another sweep holds the lock; skipping")
            return None
        with context.session_factory() as session:
            # Sales first: its expiries and quota suspensions bump revisions that reconcile then sees.
            run_lifecycle(session, queue.enqueue_node_sync)
            return reconcile(session, queue)
