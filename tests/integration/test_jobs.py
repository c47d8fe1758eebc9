"""control_api.jobs: coalescing, retries, the sweep and its lock, the in-process mode.

Real Redis and real PostgreSQL (the conftest fixtures start their own; no podman). The jobs' runner
is an injected function returning a PlaybookResult (success or failure) instead of running Ansible:
these tests are about the queueing. The real runner against a real node is covered by
tests/integration/test_sync_node.py.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from control_api.config import Settings
from control_api.database import make_engine
from control_api.jobs import InProcessJobQueue, JobQueue, RedisJobQueue, sync_job_id, tasks
from control_api.jobs.context import WorkerContext, YamlNodeVars, set_worker_context
from control_api.jobs.node_locks import node_locks
from control_api.jobs.sweep import SWEEP_LOCK_KEY, process_lock, reconcile, redis_lock, run_sweep
from control_api.jobs.sync import NodeBusy, sync_node, sync_nodes
from control_api.jobs.tasks import SyncFailed
from control_api.models import AuditLog, Node, SyncRun, User, UserConfig, utcnow
from control_api.runners.ansible import HostStats, PlaybookResult
from control_api.services.credentials import verify_secret

pytestmark = pytest.mark.postgres
NODE_API_URL = "https://api.rayfleet.test"


class FakeRunner:
    """Stands in for run_playbook: records the calls, succeeds or fails as told, may block on a gate."""

    def __init__(self, ok: bool = True, gate: threading.Event | None = None) -> None:
        self.ok = ok
        self.gate = gate
        self.calls: list[tuple[str, str]] = []
        self.extravars: list[dict] = []
        self.inventories: list[dict] = []
        self.failing_hosts: set[str] = set()  # in a run over several hosts, only these fail
        self.host_counts: dict[str, tuple[int, int]] = {}  # what each host's users module reports (added, removed)
        self.lock = threading.Lock()

    def __call__(self, playbook: str, inventory: dict, extravars: dict, **kwargs: Any) -> PlaybookResult:
        if self.gate is not None:
            assert self.gate.wait(10)
        with self.lock:
            self.calls.append((playbook, kwargs["limit"]))
            self.extravars.append(extravars)
            self.inventories.append(inventory)
        hosts = kwargs["limit"].split(",")
        if not self.ok:
            return PlaybookResult(rc=2, status="failed", duration_ms=1, errors=["node unreachable"])
        stats = {host: HostStats(ok=1, failed=int(host in self.failing_hosts)) for host in hosts}
        if any(host in self.failing_hosts for host in hosts):
            errors = [f"{host}: unreachable: no route" for host in hosts if host in self.failing_hosts]
            return PlaybookResult(rc=2, status="failed", duration_ms=1, hosts=stats, errors=errors)
        counts = {host: self.host_counts[host] for host in hosts if host in self.host_counts}
        return PlaybookResult(
            rc=0,
            status="successful",
            duration_ms=1,
            hosts=stats,
            added=sum(added for added, _ in counts.values()),
            removed=sum(removed for _, removed in counts.values()),
            host_counts=counts,
        )


@pytest.fixture
def engine(settings: Settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(settings: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(settings.redis_url)
    yield connection
    connection.close()


@pytest.fixture
def make_context(engine):
    def make(runner: FakeRunner) -> WorkerContext:
        context = WorkerContext(
            session_factory=sessionmaker(engine, expire_on_commit=False), runner=runner, node_api_url=NODE_API_URL
        )
        set_worker_context(context)  # what the in-test SimpleWorker's jobs will use
        return context

    yield make
    set_worker_context(None)


def add_node(engine, name: str, desired: int = 1, applied: int = 0, status: str = "active") -> int:
    with sessionmaker(engine)() as session, session.begin():
        node = Node(
            name=name,
            region="eu-central-1",
            location_tag="abroad",
            public_ip="203.0.113.10",
            status=status,
            client_id=secrets.token_hex(8),
            secret_hash="x",
            desired_revision=desired,
            applied_revision=applied,
        )
        session.add(node)
        session.flush()
        return node.id


def revisions(engine, node_id: int) -> tuple[int, int]:
    with sessionmaker(engine)() as session:
        node = session.get(Node, node_id)
        return node.applied_revision, node.desired_revision


def burst(conn: redis.Redis, *names: str) -> None:
    queues = [Queue(name, connection=conn) for name in names or ("nodes",)]
    SimpleWorker(queues, connection=conn).work(burst=True, with_scheduler=True)


def test_enqueue_coalesces_while_queued_and_queues_again_after_the_run(settings, engine, conn, make_context):
    runner = FakeRunner()
    make_context(runner)
    node_id = add_node(engine, "node-a", desired=3)
    queue = JobQueue.from_settings(settings)
    assert isinstance(queue, RedisJobQueue)

    results = [queue.enqueue_node_sync(node_id) for _ in range(50)]

    assert results.count(True) == 1
    nodes = Queue("nodes", connection=conn)
    assert nodes.job_ids == [sync_job_id(node_id)] == [f"sync-node-{node_id}"]

    burst(conn)
    assert runner.calls == [("sync_users.yml", "node-a")]
    assert revisions(engine, node_id) == (3, 3)
    assert not conn.exists(f"rq:job:sync-node-{node_id}")  # result_ttl=0: nothing kept

    assert queue.enqueue_node_sync(node_id) is True
    assert nodes.job_ids == [f"sync-node-{node_id}"]
    assert queue.enqueue_provision(node_id) is True  # a different id: not coalesced with the sync
    assert nodes.job_ids == [f"sync-node-{node_id}", f"provision-node-{node_id}"]
    burst(conn)
    assert runner.calls[1:] == [("sync_users.yml", "node-a"), ("provision_node.yml", "node-a")]


def test_failed_sync_raises_and_rq_schedules_a_retry(settings, engine, conn, make_context):
    context = make_context(FakeRunner(ok=False))
    node_id = add_node(engine, "node-a", desired=2)

    with pytest.raises(SyncFailed, match="node unreachable"):
        tasks.sync_node_job(node_id, context=context)

    queue = JobQueue.from_settings(settings)
    assert queue.enqueue_node_sync(node_id)
    burst(conn)

    job = Job.fetch(sync_job_id(node_id), connection=conn)
    assert job.retries_left == 4
    nodes = Queue("nodes", connection=conn)
    assert sync_job_id(node_id) in nodes.scheduled_job_registry.get_job_ids()
    assert queue.enqueue_node_sync(node_id) is False  # the scheduled retry coalesces new changes
    with sessionmaker(engine)() as session:
        statuses = session.scalars(select(SyncRun.status).where(SyncRun.node_id == node_id)).all()
    assert statuses == ["failed", "failed"]
    assert revisions(engine, node_id) == (0, 2)


def test_a_kept_failed_job_does_not_block_new_work(settings, engine, conn, make_context):
    make_context(FakeRunner(ok=False))
    node_id = add_node(engine, "node-a")
    nodes = Queue("nodes", connection=conn)
    nodes.enqueue(tasks.sync_node_job, node_id, job_id=sync_job_id(node_id), failure_ttl=600)  # no retry
    burst(conn)
    assert sync_job_id(node_id) in nodes.failed_job_registry.get_job_ids()

    assert JobQueue.from_settings(settings).enqueue_node_sync(node_id) is True
    assert nodes.job_ids == [sync_job_id(node_id)]


def test_a_job_orphaned_by_a_killed_worker_is_replaced_once_its_heartbeat_lapsed(settings, engine, conn, make_context):
    """SIGKILL leaves the job STARTED with no worker; uniqueness must not refuse its id for good."""
    make_context(FakeRunner())
    node_id = add_node(engine, "node-a")
    nodes = Queue("nodes", connection=conn)
    job = nodes.enqueue(tasks.sync_node_job, node_id, job_id=sync_job_id(node_id), failure_ttl=600)
    nodes.remove(job)  # a worker took it off the queue, then died mid-run
    job.set_status(JobStatus.STARTED)
    started = nodes.started_job_registry
    conn.zadd(started.key, {f"{job.id}:orphan": time.time() + 60})  # its heartbeat is still fresh
    # Its execution record expired with the heartbeat while the job still lists it (what SIGKILL leaves).
    conn.zadd(job.execution_registry.key, {"orphan": time.time() + 600})
    queue = JobQueue.from_settings(settings)
    assert queue.enqueue_node_sync(node_id) is False  # maybe still running: coalesced

    conn.zadd(started.key, {f"{job.id}:orphan": time.time() - 1})  # no heartbeat for RQ's TTL: abandoned
    assert queue.enqueue_node_sync(node_id) is True
    assert nodes.job_ids == [sync_job_id(node_id)]
    burst(conn)
    assert revisions(engine, node_id) == (1, 1)  # the replacement ran the sync


def test_a_change_during_the_run_is_synced_by_the_same_job(settings, engine, make_context):
    node_id = add_node(engine, "node-a", desired=1)

    class BumpOnce(FakeRunner):
        def __call__(self, *args: Any, **kwargs: Any) -> PlaybookResult:
            if not self.calls:  # a sale committed while the playbook runs
                with sessionmaker(engine)() as session, session.begin():
                    session.get(Node, node_id).desired_revision = 2
            return super().__call__(*args, **kwargs)

    runner = BumpOnce()
    context = make_context(runner)
    tasks.sync_node_job(node_id, context=context)
    assert len(runner.calls) == 2
    assert revisions(engine, node_id) == (2, 2)


def test_sweep_reenqueues_exactly_the_lagging_nodes_and_skips_when_locked(settings, engine, conn, make_context):
    make_context(FakeRunner())
    lagging = add_node(engine, "lagging", desired=5, applied=3)
    add_node(engine, "disabled", desired=5, applied=3, status="disabled")
    add_node(engine, "current", desired=4, applied=4)
    also_lagging = add_node(engine, "draining", desired=1, applied=0, status="draining")
    nodes = Queue("nodes", connection=conn)

    with sessionmaker(engine)() as session:
        assert reconcile(session, JobQueue.from_settings(settings)) == [lagging, also_lagging]
    assert nodes.job_ids == ["sync-fleet"]  # several lagging nodes: one batched run
    nodes.empty()

    with redis_lock(conn, SWEEP_LOCK_KEY, 60) as held:  # another cron's sweep is running
        assert held
        owner = conn.get(SWEEP_LOCK_KEY)
        assert run_sweep(settings) is None
        with redis_lock(conn, SWEEP_LOCK_KEY, 60) as second:
            assert not second
        assert conn.get(SWEEP_LOCK_KEY) == owner  # the loser did not release the owner's lock
    assert nodes.job_ids == []
    assert not conn.exists(SWEEP_LOCK_KEY)

    assert run_sweep(settings) == [lagging, also_lagging]
    assert nodes.job_ids == ["sync-fleet"]
    assert not conn.exists(SWEEP_LOCK_KEY)


def test_in_process_mode_coalesces_and_runs_the_job(settings, engine, make_context):
    gate = threading.Event()
    runner = FakeRunner(gate=gate)
    context = make_context(runner)
    busy = add_node(engine, "busy", desired=1)
    node_id = add_node(engine, "node-a", desired=7)
    embedded = JobQueue.from_settings(Settings(database_url=settings.database_url, redis_url="", jwt_secret_key="k"))
    assert isinstance(embedded, InProcessJobQueue)
    embedded.shutdown()

    queue = InProcessJobQueue(context, max_workers=1)
    try:
        assert queue.enqueue_node_sync(busy) is True  # occupies the only thread, blocked on the gate
        results = [queue.enqueue_node_sync(node_id) for _ in range(50)]
        assert results.count(True) == 1
        gate.set()
        queue.wait(timeout=10)
        assert sorted(runner.calls) == [("sync_users.yml", "busy"), ("sync_users.yml", "node-a")]
        assert revisions(engine, node_id) == (7, 7)

        assert queue.enqueue_node_sync(node_id) is True  # done: queues again
        queue.wait(timeout=10)
        assert len(runner.calls) == 3
    finally:
        queue.shutdown()


def test_yaml_node_vars_merges_group_and_host_files(tmp_path):
    host_vars = tmp_path / "inventory" / "host_vars"
    group_vars = tmp_path / "inventory" / "group_vars"
    host_vars.mkdir(parents=True)
    group_vars.mkdir()
    (group_vars / "vpn_nodes.yml").write_text("ansible_user: deploy\nxray_log_level: warning\n")
    (host_vars / "node-a.yml").write_text("xray_log_level: debug\nansible_port: 2222\n")
    hook = YamlNodeVars(host_vars)
    assert hook(Node(name="node-a")) == {"ansible_user": "deploy", "xray_log_level": "debug", "ansible_port": 2222}
    assert hook(Node(name="node-b")) == {"ansible_user": "deploy", "xray_log_level": "warning"}


def test_embedded_sweep_uses_a_process_lock(settings, engine, make_context):
    runner = FakeRunner()
    context = make_context(runner)
    lagging = add_node(engine, "lagging", desired=2, applied=1)
    embedded = Settings(database_url=settings.database_url, redis_url="", jwt_secret_key="k")
    queue = InProcessJobQueue(context, max_workers=1)
    try:
        with process_lock() as held:
            assert held
            assert run_sweep(embedded, queue=queue) is None
        assert run_sweep(embedded, queue=queue) == [lagging]
        queue.wait(timeout=10)
        assert runner.calls == [("sync_users.yml", "lagging")]
        assert revisions(engine, lagging) == (2, 2)
    finally:
        queue.shutdown()


def test_provisioning_hands_the_agent_fresh_credentials_and_activates_the_node(engine, make_context):
    runner = FakeRunner()
    context = make_context(runner)
    node_id = add_node(engine, "node-p", desired=1, status="provisioning")
    with sessionmaker(engine)() as session:
        old_hash = session.get(Node, node_id).secret_hash

    tasks.provision_node_job(node_id, context=context)

    assert runner.calls == [("provision_node.yml", "node-p")]
    sent = runner.extravars[0]
    assert sent["node_agent_api_url"] == NODE_API_URL
    assert sent["node_agent_allow_insecure_http"] is False  # https: nothing to allow
    with sessionmaker(engine)() as session:
        node = session.get(Node, node_id)
        assert node.status == "active" and node.applied_revision == 1
        assert sent["node_agent_client_id"] == node.client_id
        assert node.secret_hash != old_hash and verify_secret(node.secret_hash, sent["node_agent_client_secret"])
        assert sent["node_agent_client_secret"] not in str(
            session.scalars(select(AuditLog.details).where(AuditLog.action == "node.agent_secret_rotated")).all()
        )

    # A second run rotates again; a draining node is not reactivated by it.
    with sessionmaker(engine)() as session, session.begin():
        session.get(Node, node_id).status = "draining"
    tasks.provision_node_job(node_id, context=context)
    assert runner.extravars[1]["node_agent_client_secret"] != sent["node_agent_client_secret"]
    with sessionmaker(engine)() as session:
        assert session.get(Node, node_id).status == "draining"


def test_provisioning_refuses_an_http_node_api_url_unless_allowed(engine, make_context):
    """Issue 13, item 13: the agent's fresh secret never goes to a node that would send it in the clear."""
    runner = FakeRunner()
    context = make_context(runner)
    context.node_api_url = "http://api.rayfleet.test"
    node_id = add_node(engine, "node-h", status="provisioning")
    with sessionmaker(engine)() as session:
        before = session.get(Node, node_id).secret_hash
    with pytest.raises(SyncFailed, match="http:// the agent's secret crosses the network unencrypted"):
        tasks.provision_node_job(node_id, context=context)
    assert runner.calls == []
    with sessionmaker(engine)() as session:
        assert session.get(Node, node_id).secret_hash == before
    context.node_api_allow_insecure_http = True
    tasks.provision_node_job(node_id, context=context)
    assert runner.extravars[0]["node_agent_allow_insecure_http"] is True


def test_provisioning_without_the_node_api_url_fails_readably_and_changes_nothing(engine, make_context):
    runner = FakeRunner()
    context = make_context(runner)
    context.node_api_url = ""
    node_id = add_node(engine, "node-q", status="provisioning")
    with sessionmaker(engine)() as session:
        before = session.get(Node, node_id).secret_hash
    with pytest.raises(SyncFailed, match="RAYFLEET_NODE_API_URL is not set"):
        tasks.provision_node_job(node_id, context=context)
    assert runner.calls == []
    with sessionmaker(engine)() as session:
        node = session.get(Node, node_id)
        assert node.secret_hash == before and node.status == "provisioning"


def test_the_cron_sweep_applies_the_sales_rules_then_reconciles(settings, engine, conn, make_context):
    make_context(FakeRunner())
    node_id = add_node(engine, "node-s", desired=0, applied=0)
    with sessionmaker(engine)() as session, session.begin():
        user = User(telegram_id=8100, subscription_token=secrets.token_hex(8))
        session.add(user)
        session.flush()
        config = UserConfig(
            user_id=user.id,
            node_id=node_id,
            uuid=str(uuid.uuid4()),
            kind="full",
            status="active",
            expires_at=utcnow() - timedelta(minutes=1),
        )
        session.add(config)
        session.flush()
        config_id = config.id

    assert run_sweep(settings) == [node_id]  # the expiry bumped the node, so it lags and is re-enqueued

    with sessionmaker(engine)() as session:
        assert session.get(UserConfig, config_id).status == "expired"
        assert session.get(Node, node_id).desired_revision == 1
    assert Queue("nodes", connection=conn).job_ids == [sync_job_id(node_id)]


def test_a_fleet_batch_syncs_every_lagging_node_in_one_run_and_a_failing_host_holds_back_no_other(
    settings, engine, conn, make_context
):
    runner = FakeRunner()
    context = make_context(runner)
    context.redis_url = settings.redis_url  # a worker's: where the failed node's own retry is queued
    first, second, third = (add_node(engine, name, desired=2) for name in ("fra-1", "fra-2", "fra-3"))
    add_node(engine, "off", desired=2, status="disabled")
    runner.failing_hosts = {"fra-2"}

    outcome = tasks.sync_fleet_job(context=context)

    assert runner.calls[0] == ("sync_users.yml", "fra-1,fra-2,fra-3"), runner.calls
    assert len(runner.calls) == 1, "the failed host is not retried inside the batch"
    hosts = runner.inventories[0]["all"]["children"]["vpn_nodes"]["hosts"]
    assert {name: hosts[name]["rayfleet_revision"] for name in hosts} == {"fra-1": 2, "fra-2": 2, "fra-3": 2}
    assert runner.extravars[0] == {}, "each host's revision and users travel as its own host variables"
    assert outcome == {"synced": [first, third], "failed": [second]}
    assert revisions(engine, first) == revisions(engine, third) == (2, 2)
    assert revisions(engine, second) == (0, 2)  # (applied, desired)
    with sessionmaker(engine)() as session:
        run = session.scalars(select(SyncRun).where(SyncRun.node_id == second)).one()
        assert (run.status, run.error) == ("failed", "fra-2: unreachable: no route")
    assert Queue("nodes", connection=conn).job_ids == [sync_job_id(second)], "the failed node retries on its own"


def test_each_node_of_a_batch_records_what_its_own_host_added_and_removed(settings, engine, make_context):
    runner = FakeRunner()
    runner.host_counts = {"fra-1": (3, 1), "fra-2": (0, 2)}
    first, second, quiet = (add_node(engine, name, desired=2) for name in ("fra-1", "fra-2", "fra-3"))

    tasks.sync_fleet_job(context=make_context(runner))

    assert runner.calls == [("sync_users.yml", "fra-1,fra-2,fra-3")]
    with sessionmaker(engine)() as session:
        recorded = {run.node_id: (run.status, run.added, run.removed) for run in session.scalars(select(SyncRun)).all()}
    assert recorded == {
        first: ("succeeded", 3, 1),
        second: ("succeeded", 0, 2),
        quiet: ("succeeded", 0, 0),
    }, "each run records its own host's counts, not the batch's (3 added, 3 removed)"


def test_a_node_another_run_holds_is_left_out_of_a_batch_and_its_own_sync_waits(settings, engine, make_context):
    runner = FakeRunner()
    context = make_context(runner)
    held, free = add_node(engine, "held", desired=1), add_node(engine, "free", desired=1)
    with node_locks(context.session_factory, [held]) as taken:  # e.g. a provisioning run of that node
        assert taken == {held}
        runs = sync_nodes(context.session_factory, [held, free], runner=runner)
        assert set(runs) == {free}
        with pytest.raises(NodeBusy):
            sync_node(context.session_factory, held, runner=runner)
    assert runner.calls == [("sync_users.yml", "free")]
    assert sync_node(context.session_factory, held, runner=runner).status == "succeeded"  # released


def test_a_burst_of_changes_coalesces_into_the_waiting_sync_without_asking_rq_again(
    settings, engine, conn, monkeypatch
):
    """While the node's sync waits in the queue, or runs (fresh heartbeat) with its follow-up waiting, a further
    change is already covered: the enqueue answers from the jobs' status alone (RQ's enqueue is not called).
    A started job without a follow-up, or whose worker's heartbeat lapsed, takes the full path."""
    node_id = add_node(engine, "node-a", desired=1)
    queue = JobQueue.from_settings(settings)
    nodes = Queue("nodes", connection=conn)
    assert queue.enqueue_node_sync(node_id) is True
    calls = []
    real_enqueue = Queue.enqueue
    monkeypatch.setattr(Queue, "enqueue", lambda *args, **kwargs: calls.append(args) or real_enqueue(*args, **kwargs))
    for _ in range(5):
        assert queue.enqueue_node_sync(node_id) is False
    assert calls == [] and nodes.job_ids == [sync_job_id(node_id)]

    job = Job.fetch(sync_job_id(node_id), connection=conn)
    nodes.remove(job)  # a worker took it and runs it
    job.set_status(JobStatus.STARTED)
    conn.zadd(nodes.started_job_registry.key, {f"{job.id}:run": time.time() + 60})
    assert queue.enqueue_node_sync(node_id) is False  # the full path: a follow-up is scheduled
    assert len(calls) == 1
    scheduled = nodes.scheduled_job_registry.get_job_ids()
    assert scheduled == [f"sync-node-{node_id}-again"]
    for _ in range(5):
        assert queue.enqueue_node_sync(node_id) is False
    assert len(calls) == 1 and nodes.scheduled_job_registry.get_job_ids() == scheduled

    conn.zadd(nodes.started_job_registry.key, {f"{job.id}:run": time.time() - 1})  # its worker died
    assert queue.enqueue_node_sync(node_id) is True  # the full path reaps it and queues the sync again
    assert len(calls) == 3 and nodes.job_ids == [sync_job_id(node_id)]  # refused as a duplicate, queued after the reap


def test_a_change_coalesced_into_a_running_sync_gets_a_follow_up_that_syncs_only_if_still_lagging(
    settings, engine, conn, make_context
):
    """A sale committed in a running job's tail (after its last look at the node) is not left for the sweep:
    the coalesced enqueue schedules `sync-node-<id>-again`, which syncs the node if it still lags."""
    runner = FakeRunner()
    context = make_context(runner)
    node_id = add_node(engine, "node-a", desired=1)
    queue = JobQueue.from_settings(settings)
    assert queue.enqueue_node_sync(node_id) is True
    job = Job.fetch(sync_job_id(node_id), connection=conn)
    job.set_status(JobStatus.STARTED)  # as while a worker runs it

    with sessionmaker(engine)() as session, session.begin():  # the sale in the job's tail
        session.get(Node, node_id).desired_revision = 2
    assert queue.enqueue_node_sync(node_id) is False  # coalesced into the running job ...
    scheduled = Queue("nodes", connection=conn).scheduled_job_registry.get_job_ids()
    assert scheduled == [f"sync-node-{node_id}-again"]  # ... which gets one follow-up, however many changes
    assert queue.enqueue_node_sync(node_id) is False
    assert Queue("nodes", connection=conn).scheduled_job_registry.get_job_ids() == scheduled

    assert tasks.sync_node_if_lagging_job(node_id, context=context)["revision"] == 2
    assert revisions(engine, node_id) == (2, 2)
    assert tasks.sync_node_if_lagging_job(node_id, context=context) == {"node_id": node_id, "skipped": "in sync"}
    assert len(runner.calls) == 1
