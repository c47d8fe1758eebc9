"""One dispatcher for both modes: RQ on Redis (production) or a thread pool (embedded default).

    queue = JobQueue.from_settings(settings)          # after the transaction that bumped the revision
    queue.enqueue_node_sync(node_id)                  # True: queued; False: coalesced into a queued job

Coalescing (DESIGN.md §2): the job id is `sync-node-<id>` (`provision-node-<id>`) and RQ's
`unique=True` refuses a second job with that id while the first is queued, scheduled for a retry or
running. `result_ttl=0` deletes a finished job at once, so the next change queues again. A change
committed while the job runs is coalesced too: the job itself syncs again while the node still lags
(tasks.MAX_DRAIN_PASSES), and the sweep catches whatever is left. A job kept in the failed registry
(retries exhausted, `failure_ttl`) does not block new work: it is replaced.

Embedded mode: the same job functions run on a small ThreadPoolExecutor; an id already waiting is
not queued twice, runs of one id never overlap, and failures are retried on the same intervals.

Jobs are named, not imported (SYNC_JOB, PROVISION_JOB): RQ stores the name and the worker imports
it, and the in-process queue imports it when a job first runs. So the API process, which only
enqueues, never loads the job modules or ansible-runner (with Redis, never at all).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from ..config import Settings
from ..errors import ServiceUnavailable
from .context import WorkerContext

log = logging.getLogger(__name__)


class QueueUnavailable(ServiceUnavailable):
    """Redis is down and the job cannot wait for the sweep (provisioning): the caller gets a 503."""


NODES_QUEUE = "nodes"
# Every queue the workers listen on (`rq worker --with-scheduler nodes default`); cron.py uses "default".
QUEUES = (NODES_QUEUE, "default")
RETRY_INTERVALS = [2, 5, 15, 30, 60]
JOB_TIMEOUT_SECONDS = 600
# A change coalesced into a running sync job gets one more sync this much later (RedisJobQueue).
FOLLOW_UP_SECONDS = 2
FAILURE_TTL_SECONDS = 24 * 3600
_REPLACEABLE = {JobStatus.FAILED, JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.CANCELED}
# A job's status as RQ keeps it in the job's hash.
_QUEUED, _STARTED, _SCHEDULED = (
    status.value.encode() for status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED)
)
SYNC_JOB = "control_api.jobs.tasks.sync_node_job"
SYNC_FOLLOW_UP_JOB = "control_api.jobs.tasks.sync_node_if_lagging_job"
SYNC_FLEET_JOB = "control_api.jobs.tasks.sync_fleet_job"
SYNC_FLEET_JOB_ID = "sync-fleet"
PROVISION_JOB = "control_api.jobs.tasks.provision_node_job"
MIGRATE_JOB = "control_api.jobs.tasks.migrate_node_job"
# Webhook deliveries run on the "default" queue (the one the sweep runs on), so no worker needs a new queue name.
WEBHOOK_QUEUE = "default"
WEBHOOK_JOB = "control_api.jobs.webhooks.deliver_webhook_job"
WEBHOOK_JOB_TIMEOUT_SECONDS = 60
# The jobs rq cron queues (cron.py registers the functions themselves).
SWEEP_JOBS = ("control_api.jobs.sweep.run_sweep", "control_api.jobs.sweep.run_fleet_check")
# Every job a worker may run, by name: worker.PreloadedWorker imports their modules before its first fork.
JOB_NAMES = (SYNC_JOB, SYNC_FOLLOW_UP_JOB, SYNC_FLEET_JOB, PROVISION_JOB, MIGRATE_JOB, WEBHOOK_JOB, *SWEEP_JOBS)


def job_module(name: str) -> str:
    """The module of a job NAME ("package.module.function")."""
    return name.rpartition(".")[0]


def job_function(name: str) -> Callable[..., Any]:
    """The function a job NAME ("package.module.function") refers to, imported now."""
    return getattr(importlib.import_module(job_module(name)), name.rpartition(".")[2])


def sync_job_id(node_id: int) -> str:
    return f"sync-node-{int(node_id)}"


def provision_job_id(node_id: int) -> str:
    return f"provision-node-{int(node_id)}"


def migrate_job_id(node_id: int) -> str:
    return f"migrate-node-{int(node_id)}"


def queue_figures(connection: redis.Redis) -> dict[str, Any]:
    """For /metrics: per queue, the jobs waiting, running, scheduled (retries) and kept as failed, and the
    number of live workers. Raises redis.RedisError when Redis does not answer."""
    queues = {}
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        queues[name] = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
    return {"queues": queues, "workers": Worker.count(connection=connection)}


def webhook_job_id(delivery_id: int, attempts: int) -> str:
    """One job id per delivery and attempt: the sweep's re-queue of a due delivery coalesces with the retry
    its last attempt scheduled, while the job that schedules the next attempt still holds its own id."""
    return f"webhook-{int(delivery_id)}-{int(attempts)}"


class JobQueue(ABC):
    """The interface; `from_settings` picks RQ when REDIS_URL is set, threads otherwise."""

    @staticmethod
    def from_settings(settings: Settings, context: WorkerContext | None = None) -> JobQueue:
        if settings.redis_url:
            # Short timeouts: an API request that enqueues must not hang on a dead Redis.
            return RedisJobQueue(redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2))
        return InProcessJobQueue(context or WorkerContext.from_settings(settings))

    def enqueue_node_sync(self, node_id: int) -> bool:
        return self._enqueue(SYNC_JOB, sync_job_id(node_id), node_id)

    def enqueue_node_syncs(self, node_ids: list[int]) -> bool:
        """Sync NODE_IDS: one node's own job for one node, one batched run (`sync-fleet`, which reads every
        lagging node when it starts) for several. True if a job was queued."""
        ids = sorted(set(node_ids))
        if len(ids) == 1:
            return self.enqueue_node_sync(ids[0])
        return bool(ids) and self._enqueue(SYNC_FLEET_JOB, SYNC_FLEET_JOB_ID, 0)

    def enqueue_migration(self, node_id: int) -> bool:
        """Move dynamic configs off an alerting or draining node; a lost one is queued again by the fleet check."""
        return self._enqueue(MIGRATE_JOB, migrate_job_id(node_id), node_id)

    def enqueue_provision(self, node_id: int) -> bool:
        """Like a sync, but nothing re-enqueues a lost provisioning: raises QueueUnavailable instead."""
        return self._enqueue(PROVISION_JOB, provision_job_id(node_id), node_id, required=True)

    @abstractmethod
    def enqueue_webhook_delivery(self, delivery_id: int, attempts: int, at: datetime | None = None) -> bool:
        """Queue delivery DELIVERY_ID's next attempt (ATTEMPTS made so far), now or AT; True if queued.
        Never raises for a dead queue: the sweep re-queues due pending deliveries."""

    def reap_abandoned(self) -> None:  # noqa: B027 - a no-op unless the queue outlives its workers (RQ)
        """Let go of jobs whose worker died mid-run (RQ only; threads die with their process)."""

    @abstractmethod
    def _enqueue(self, func: str, job_id: str, node_id: int, required: bool = False) -> bool:
        """Queue the job function named FUNC, FUNC(node_id), under JOB_ID unless that job is already waiting;
        True if queued."""


def ensure_queue(context: WorkerContext) -> JobQueue | None:
    """CONTEXT's queue (the in-process one sets itself), or RQ's built from its REDIS_URL on first use: where a
    worker's jobs queue follow-up work and the webhook deliveries their commits wrote. None without either:
    the sweep finds the work."""
    if context.queue is None and context.redis_url:
        context.queue = RedisJobQueue(
            redis.Redis.from_url(context.redis_url, socket_timeout=5, socket_connect_timeout=2)
        )
    return context.queue


class RedisJobQueue(JobQueue):
    def __init__(self, connection: redis.Redis, name: str = NODES_QUEUE) -> None:
        self.connection = connection
        self.queue = Queue(name, connection=connection)
        self.webhook_queue = Queue(WEBHOOK_QUEUE, connection=connection)

    def _enqueue(self, func: str, job_id: str, node_id: int, required: bool = False) -> bool:
        try:
            return self._enqueue_unique(func, job_id, node_id)
        except redis.RedisError as exc:
            if required:
                raise QueueUnavailable(f"The job queue is unavailable ({type(exc).__name__}); try again.") from exc
            # The change is committed and the node's revision bumped: the sweep re-enqueues it once
            # Redis is back. Refusing the caller's write now would gain nothing.
            log.warning("could not queue %s (%s); the sweep will catch up", job_id, type(exc).__name__)
            return False

    def enqueue_webhook_delivery(self, delivery_id: int, attempts: int, at: datetime | None = None) -> bool:
        job_id = webhook_job_id(delivery_id, attempts)
        options: dict[str, Any] = {
            "job_id": job_id,
            "unique": True,
            "result_ttl": 0,
            "failure_ttl": FAILURE_TTL_SECONDS,
            "job_timeout": WEBHOOK_JOB_TIMEOUT_SECONDS,
        }
        try:
            for attempt in range(2):
                try:
                    if at is None:
                        self.webhook_queue.enqueue(WEBHOOK_JOB, int(delivery_id), **options)
                    else:
                        self.webhook_queue.enqueue_at(at, WEBHOOK_JOB, int(delivery_id), **options)
                    return True
                except DuplicateJobError:
                    if attempt or not self._drop_if_done(job_id):
                        return False
        except redis.RedisError as exc:
            log.warning("could not queue %s (%s); the sweep will catch up", job_id, type(exc).__name__)
        return False

    def _enqueue_unique(self, func: str, job_id: str, node_id: int) -> bool:
        if func == SYNC_JOB and self._sync_already_covered(job_id):
            log.debug("%s coalesced into the waiting job", job_id)
            return False
        for attempt in range(2):
            try:
                self.queue.enqueue(
                    func,
                    int(node_id),
                    job_id=job_id,
                    unique=True,
                    result_ttl=0,
                    failure_ttl=FAILURE_TTL_SECONDS,
                    job_timeout=JOB_TIMEOUT_SECONDS,
                    retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                )
                return True
            except DuplicateJobError:
                if attempt or not self._drop_if_done(job_id):
                    log.debug("%s coalesced into the queued job", job_id)
                    if func == SYNC_JOB:
                        self._follow_up_if_running(job_id, node_id)
                    return False
        return False

    def _sync_already_covered(self, job_id: str) -> bool:
        """Whether a sync job that has not started yet will see this change (committed before the call): the
        node's job waits in the queue, or it runs (its worker's heartbeat is fresh) and its follow-up waits.
        That is what the full path below concludes too, in one round trip where RQ's enqueue, refused as a
        duplicate, and the checks after it take seven or more: a burst of sales on one node dispatches its
        sync once per sale. Anything else (no job, a kept record, an abandoned run, no follow-up yet) takes the
        full path."""
        with self.connection.pipeline(transaction=False) as pipeline:
            pipeline.hget(Job.key_for(job_id), "status")
            pipeline.hget(Job.key_for(f"{job_id}-again"), "status")
            pipeline.zrangebyscore(self.queue.started_job_registry.key, time.time(), "+inf")
            status, follow_up, running = pipeline.execute()
        if status == _QUEUED:
            return True
        if status != _STARTED or follow_up not in (_QUEUED, _SCHEDULED):
            return False
        # The started registry's members are "<job id>:<execution id>", each scored by its heartbeat's expiry.
        return any(member.decode().rsplit(":", 1)[0] == job_id for member in running)

    def _follow_up_if_running(self, job_id: str, node_id: int) -> None:
        """A change coalesced into a sync job that is already running: the job drains what it finds lagging,
        but a change committed after its last look (its tail: the follow-up work after the run) would wait
        for the sweep. So one more sync of the node is scheduled FOLLOW_UP_SECONDS later under its own id
        (unique too: any number of such changes make one); it finds the node in sync and ends at once when
        the running job did catch it (sync_node_if_lagging_job)."""
        try:
            if Job.fetch(job_id, connection=self.connection).get_status(refresh=True) != JobStatus.STARTED:
                return
        except NoSuchJobError:
            return
        with contextlib.suppress(DuplicateJobError):
            self.queue.enqueue_in(
                timedelta(seconds=FOLLOW_UP_SECONDS),
                SYNC_FOLLOW_UP_JOB,
                int(node_id),
                job_id=f"{job_id}-again",
                unique=True,
                result_ttl=0,
                failure_ttl=FAILURE_TTL_SECONDS,
                job_timeout=JOB_TIMEOUT_SECONDS,
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            )

    def reap_abandoned(self) -> None:
        """A worker killed mid-job (SIGKILL, OOM, a lost host) leaves its job STARTED, and RQ's
        uniqueness would refuse that id for good. Once the job's heartbeat has lapsed (RQ's TTL: the
        job monitoring interval, 30 s, plus 60 s), the job is deleted, so its id can be queued again
        at once: the sweep re-finds lagging nodes and the fleet check unfinished migrations. (Not
        RQ's own cleanup: its retry waits for a scheduler, and a killed worker's scheduler lock keeps
        the restarted one from scheduling for up to 10 minutes.) A lost provisioning is logged: an
        admin asks again."""
        registry = StartedJobRegistry(self.queue.name, connection=self.connection)
        try:
            for job_id in registry.get_expired_job_ids():
                try:
                    job = Job.fetch(job_id, connection=self.connection)
                except NoSuchJobError:
                    continue
                if job.get_status(refresh=True) == JobStatus.STARTED:
                    log.warning("job %s was abandoned by a worker that died; dropped so it can run again", job_id)
                    self._forget(job, registry)
            registry.cleanup()  # the expired entries left (none of them STARTED now)
        except redis.RedisError as exc:
            log.warning("could not reap abandoned jobs (%s)", type(exc).__name__)

    def _forget(self, job: Job, registry: StartedJobRegistry) -> None:
        """Delete an abandoned job. Its execution record may have expired with its heartbeat, which
        Job.delete() cannot cope with; then its keys and registry entries go by hand."""
        try:
            job.delete()
            return
        except ValueError:  # "Execution ... not found in Redis"
            pass
        mine = [m for m in self.connection.zrange(registry.key, 0, -1) if m.decode().rsplit(":", 1)[0] == job.id]
        with self.connection.pipeline() as pipeline:
            if mine:
                pipeline.zrem(registry.key, *mine)
            pipeline.delete(job.key, job.dependents_key, job.dependencies_key, job.execution_registry.key)
            pipeline.execute()

    def _drop_if_done(self, job_id: str) -> bool:
        """Delete JOB_ID if it is only a kept failed/finished record (not queued/scheduled/running);
        a STARTED one whose worker died is reaped first (reap_abandoned)."""
        try:
            job = Job.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return True  # gone meanwhile: try again
        if job.get_status(refresh=True) == JobStatus.STARTED:
            self.reap_abandoned()
            # Gone: it was abandoned, queue it again. Still there: its worker's heartbeat is fresh.
            return not Job.exists(job_id, connection=self.connection)
        if job.get_status(refresh=True) in _REPLACEABLE:
            job.delete()
            return True
        return False


class InProcessJobQueue(JobQueue):
    """Embedded default: jobs run in this process on a few threads, coalesced by job id."""

    def __init__(self, context: WorkerContext, max_workers: int = 2) -> None:
        self.context = context
        # Jobs that queue further jobs (a sync that finishes a migration step) use this same queue.
        context.queue = self
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rayfleet-job")
        self._lock = threading.Lock()
        self._waiting: set[str] = set()
        self._running: dict[str, threading.Lock] = {}
        self._closed = False
        self.futures: list[Future[Any]] = []

    def _enqueue(self, func: str, job_id: str, node_id: int, required: bool = False, attempt: int = 0) -> bool:
        with self._lock:
            if self._closed or job_id in self._waiting:
                return False
            self._waiting.add(job_id)
            future = self.executor.submit(self._run, func, job_id, int(node_id), attempt)
            self.futures = [f for f in self.futures if not f.done()] + [future]
        return True

    def enqueue_webhook_delivery(self, delivery_id: int, attempts: int, at: datetime | None = None) -> bool:
        job_id = webhook_job_id(delivery_id, attempts)
        delay = 0.0 if at is None else (at - datetime.now(UTC)).total_seconds()
        if delay <= 0:
            return self._enqueue(WEBHOOK_JOB, job_id, delivery_id)
        timer = threading.Timer(delay, self._enqueue, (WEBHOOK_JOB, job_id, delivery_id))
        timer.daemon = True
        timer.start()
        return True

    def _run(self, func: str, job_id: str, node_id: int, attempt: int) -> Any:
        with self._lock:
            serial = self._running.setdefault(job_id, threading.Lock())
        with serial:  # runs of one id never overlap; a change arriving now queues one more run
            with self._lock:
                self._waiting.discard(job_id)
            try:
                return job_function(func)(node_id, context=self.context)
            except Exception:
                log.exception("job %s failed (attempt %s)", job_id, attempt + 1)
                if attempt < len(RETRY_INTERVALS):
                    timer = threading.Timer(
                        RETRY_INTERVALS[attempt],
                        self._enqueue,
                        (func, job_id, node_id),
                        {"attempt": attempt + 1},
                    )
                    timer.daemon = True
                    timer.start()
                raise

    def wait(self, timeout: float | None = None) -> None:
        """Block until every job submitted so far has finished (tests, shutdown)."""
        with self._lock:
            futures = list(self.futures)
        for future in futures:
            future.exception(timeout=timeout)  # a failure was logged by _run already

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True  # pending retry timers become no-ops
        self.executor.shutdown(wait=True)
