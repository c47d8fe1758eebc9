"""The 5-minute sweep: the sales rules (services/lifecycle.py: auto-accept, expiry, quotas, warnings),
the fleet check (services/fleet_watch.py: dark nodes, migration steps, metric retention; also run
every minute on its own by run_fleet_check), then reconciliation: re-enqueue every node whose
applied revision lags (DESIGN.md §2, step 5), and every due pending webhook delivery (services/webhooks.py;
the every-minute fleet check does that too).

`rq cron control_api.jobs.cron` enqueues `run_sweep` every 5 minutes; a worker runs it. `rq cron`
has no lock between processes, so run_sweep takes one: a Redis key set with NX and a TTL, holding a
random token, deleted only by its owner (compare-and-delete in Lua). A second sweep that finds the
lock held does nothing.

The embedded default (no Redis, no worker, no cron) runs the same run_sweep in the API process:
EmbeddedSweeper, at start-up and every SWEEP_INTERVAL_SECONDS. Its guard is a thread lock plus an
flock on a file beside the database, so that one process sweeps even if several serve the API.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..models import Node, utcnow
from ..services.fleet_watch import FleetCheck, check_fleet
from ..services.lifecycle import run_lifecycle
from ..services.node_health import HealthPolicy
from ..services.proofs import delete_old_proofs
from ..services.reports import post_daily_report
from ..services.webhooks import due_deliveries
from .context import WorkerContext, worker_context
from .queue import JobQueue, ensure_queue

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
    """Enqueue a sync of every lagging, not disabled node (one batched run when there are several); return
    their ids (coalesced ones included)."""
    lagging = session.scalars(
        select(Node.id)
        .where(Node.applied_revision < Node.desired_revision, Node.status.not_in(SKIPPED_STATUSES))
        .order_by(Node.id)
    ).all()
    queue.enqueue_node_syncs(list(lagging))
    if lagging:
        log.info("sweep re-enqueued %d lagging node(s): %s", len(lagging), list(lagging))
    return list(lagging)


def requeue_webhooks(session: Session, queue: JobQueue) -> list[int]:
    """Queue every due pending webhook delivery (one lost with Redis at its commit, or whose scheduled retry
    was lost); one already queued or scheduled for that attempt is coalesced. Returns their ids."""
    due = due_deliveries(session, utcnow())
    session.rollback()  # a read: release the snapshot
    for delivery_id, attempts in due:
        queue.enqueue_webhook_delivery(delivery_id, attempts)
    if due:
        log.info("sweep queued %d due webhook delivery(ies)", len(due))
    return [delivery_id for delivery_id, _attempts in due]


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


def embedded_lock_path(database_url: str) -> Path:
    """The sweep's lock file: beside a SQLite database, else a temp file named for the database URL."""
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        return Path(database_url.removeprefix("sqlite:///").split("?", 1)[0] + ".sweep.lock")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rayfleet-sweep-{digest}.lock"


@contextmanager
def embedded_lock(path: Path) -> Iterator[bool]:
    """The embedded default's sweep lock: this process's thread lock, then an flock on PATH (other processes)."""
    with process_lock() as in_process, contextlib.ExitStack() as stack:
        if not in_process:
            yield False
            return
        handle = stack.enter_context(path.open("a"))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_sweep(
    settings: Settings | None = None, queue: JobQueue | None = None, context: WorkerContext | None = None
) -> list[int] | None:
    """The cron entry point: reconcile under the sweep lock; None when another sweep holds it.

    The embedded default passes its app's InProcessJobQueue and that queue's context.
    """
    settings = settings or Settings.from_env()
    context = context or worker_context()
    queue = queue or JobQueue.from_settings(settings, context=context)
    ensure_queue(context)  # where the webhook deliveries its commits write are queued
    if settings.redis_url:
        lock = redis_lock(redis.Redis.from_url(settings.redis_url), SWEEP_LOCK_KEY, SWEEP_LOCK_TTL_SECONDS)
    else:
        lock = embedded_lock(embedded_lock_path(settings.database_url))
    with lock as acquired:
        if not acquired:
            log.info("another sweep holds the lock; skipping")
            return None
        queue.reap_abandoned()
        with context.session_factory() as session:
            # Sales first: its expiries and quota suspensions bump revisions that reconcile then sees.
            run_lifecycle(session, queue.enqueue_node_sync, settings=settings)
            delete_old_proofs(session, settings)  # PROOF_RETENTION_DAYS after the decision
            if post_daily_report(session, settings, utcnow()):
                session.commit()
            fleet_check(session, queue, context.policy)
            requeue_webhooks(session, queue)
            return reconcile(session, queue)


def fleet_check(session: Session, queue: JobQueue, policy: HealthPolicy) -> FleetCheck:
    """services/fleet_watch.check_fleet, committed, then its syncs and migrations queued."""
    result = check_fleet(session, policy, utcnow())
    session.commit()
    if result.touched:
        queue.enqueue_node_syncs(list(result.touched))
    for node_id in result.migrate:
        queue.enqueue_migration(node_id)
    return result


def run_fleet_check(settings: Settings | None = None, context: WorkerContext | None = None) -> dict[str, object]:
    """The every-minute cron entry point: dark nodes, migration steps, retention (no lock needed:
    each step locks the rows it changes and is idempotent)."""
    settings = settings or Settings.from_env()
    context = context or worker_context()
    queue = JobQueue.from_settings(settings, context=context)
    ensure_queue(context)
    queue.reap_abandoned()
    with context.session_factory() as session:
        result = fleet_check(session, queue, context.policy)
        requeue_webhooks(session, queue)
    return {"synced": result.touched, "migrating": result.migrate, "metrics_dropped": result.metrics_dropped}


class EmbeddedSweeper:
    """The embedded default's cron: run_sweep in a daemon thread, soon after start and then every
    INTERVAL seconds, with the app's own in-process queue. One per process; start() is idempotent."""

    FIRST_RUN_AFTER_SECONDS = 2.0

    def __init__(self, settings: Settings, queue: JobQueue, interval_seconds: float) -> None:
        self.settings, self.queue, self.interval = settings, queue, interval_seconds
        self.last_run_at: datetime | None = None
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="rayfleet-sweep", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = self.FIRST_RUN_AFTER_SECONDS
        while not self._stop.wait(delay):
            started = time.monotonic()
            try:
                run_sweep(self.settings, self.queue, getattr(self.queue, "context", None))
            except Exception:  # a failed sweep is logged; the next one runs on schedule anyway
                log.exception("the in-process sweep failed")
            else:
                self.runs += 1
                self.last_run_at = utcnow()
            delay = max(self.interval - (time.monotonic() - started), 0.0)

    def status(self) -> dict[str, object]:
        return {
            "mode": "in-process",
            "every_seconds": self.interval,
            "runs": self.runs,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
        }
