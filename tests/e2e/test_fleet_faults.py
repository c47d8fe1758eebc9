"""Faults on the whole fleet (harness/fleet.py): an unreachable node, a control API that is down
for several heartbeats, and a Redis outage. Each ends with the system back in sync by itself: the
job's retries, the agent's journal and the reconciliation sweep (called here as one `rq cron` tick).

The fleet of this module has its own redis-server (never the session's shared one), so that a test
can stop it; PostgreSQL is the session's. One node for the module, provisioned by the API's job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from rq.job import Job

from control_api.jobs import sync_job_id
from control_api.jobs.queue import RETRY_INTERVALS
from harness.fleet import (
    AGENT_INTERVAL_SECONDS,
    BIG_BODY,
    Fleet,
    FleetSpec,
    RedisServer,
    link_for,
    start_fleet,
    wait_for,
)
from harness.singbox import ProxyError
from tests.conftest import reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPEC = FleetSpec(
    container="rayfleet-e2e-faults", label="e2e_fleet_faults", node_name="faults-node", address="10.89.250.12"
)
JOURNAL = "/var/lib/rayfleet-agent/journal.jsonl"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(
    migrated_postgres: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    reset_postgres(migrated_postgres)
    with start_fleet(SPEC, tmp_path_factory.mktemp("fleet"), migrated_postgres, redis_server.url) as running:
        yield running


@pytest.fixture(scope="module")
def plan(fleet: Fleet) -> dict:
    return fleet.create_plan()


def new_config(fleet: Fleet, plan: dict, telegram_id: int) -> dict:
    user = fleet.create_user(telegram_id)
    return fleet.create_config(user["id"], plan["id"], protocol="vless")


def test_an_unreachable_node_fails_retries_and_the_sweep_applies_everything_when_it_returns(fleet: Fleet, plan):
    before = fleet.last_sync_run_id()
    fleet.node.stop()
    try:
        config = new_config(fleet, plan, 9101)
        assert config["status"] == "pending"
        # The job fails, and RQ's Retry runs it again (2 s later, then 5 s, ...): two failed runs at least.
        wait_for(
            lambda: fleet.sync_runs("failed", since_id=before) >= 2,
            lambda: f"the sync job was not retried; worker log:\n{fleet.worker.tail()}",
            timeout=90,
        )
        job = Job.fetch(sync_job_id(fleet.node_id), connection=redis.Redis.from_url(fleet.redis_url))
        assert job.retries_left is not None and job.retries_left < len(RETRY_INTERVALS)  # RQ's Retry at work
        view = fleet.node_view()
        assert (view["sync_state"], view["last_sync"]["status"]) == ("failing", "failed")
        assert view["applied_revision"] < view["desired_revision"]
        assert view["pending_configs"] >= 1
        assert fleet.config_status(config["id"]) == "pending"
        assert fleet.sync_runs("succeeded", since_id=before) == 0
    finally:
        fleet.node.start()

    fleet.node.wait_booted(units=("rayfleet-core", "rayfleet-agent"))
    # One cron tick: the node lags, so the sweep queues its sync (or finds the retry already queued).
    assert fleet.sweep() == [fleet.node_id]
    fleet.wait_config(config["id"], "active", timeout=150)
    assert fleet.wait_node_in_sync()["last_sync"]["status"] == "succeeded"
    fetched = fleet.fetch(link_for(config))
    assert (fetched["status"], fetched["bytes"]) == (200, BIG_BODY)


def test_traffic_during_an_api_outage_is_journaled_and_counted_once(fleet: Fleet, plan):
    config = new_config(fleet, plan, 9201)
    fleet.wait_config(config["id"], "active")
    link = link_for(config)

    fleet.api.stop()
    try:
        fetched = fleet.fetch(link)  # the data plane does not need the control plane
        assert (fetched["status"], fetched["bytes"]) == (200, BIG_BODY)
        time.sleep(3 * AGENT_INTERVAL_SECONDS + 1)  # several heartbeats fail meanwhile
        journal = fleet.node.exec("cat", JOURNAL, check=True).stdout
        assert f'"cfg-{config["id"]}"' in journal
        assert fleet.usage_bytes(config["id"]) == 0
    finally:
        fleet.api.start()

    # The agent's backoff is capped at 10 intervals: delivered within that after the API returns.
    metered = wait_for(
        lambda: fleet.usage_bytes(config["id"]),
        lambda: f"the journaled traffic was never delivered; journal:\n{fleet.node.exec('cat', JOURNAL).stdout}",
        timeout=15 * AGENT_INTERVAL_SECONDS,
    )
    wait_for(
        lambda: f'"cfg-{config["id"]}"' not in fleet.node.exec("cat", JOURNAL).stdout,
        "the journal kept the delivered report",
        timeout=10 * AGENT_INTERVAL_SECONDS,
    )
    time.sleep(2 * AGENT_INTERVAL_SECONDS + 1)  # later heartbeats must not count it again
    assert fleet.usage_bytes(config["id"]) == metered
    assert abs(metered - BIG_BODY) <= BIG_BODY * 0.01, (metered, BIG_BODY)


def test_writes_succeed_while_redis_is_down_and_the_sweep_catches_up(fleet: Fleet, plan, redis_server: RedisServer):
    live = new_config(fleet, plan, 9301)
    fleet.wait_config(live["id"], "active")
    fleet.wait_node_in_sync()
    user = fleet.create_user(9302)

    redis_server.stop()
    try:
        created = fleet.create_config(user["id"], plan["id"], protocol="vless")  # asserts 201
        assert created["status"] == "pending"
        suspended = fleet.suspend(live["id"])  # asserts 200
        assert suspended["status"] == "suspended"
        view = fleet.node_view()
        assert view["applied_revision"] < view["desired_revision"]
        assert fleet.config_status(created["id"]) == "pending"
    finally:
        redis_server.start()

    # A worker that lost Redis may have exited; production's systemd unit restarts it, so does this.
    fleet.restart_worker_if_dead()
    assert fleet.sweep() == [fleet.node_id]
    fleet.wait_config(created["id"], "active", timeout=150)
    fleet.wait_node_in_sync()
    fetched = fleet.fetch(link_for(created))
    assert (fetched["status"], fetched["bytes"]) == (200, BIG_BODY)
    with pytest.raises(ProxyError):
        fleet.fetch(link_for(live), timeout=10)
