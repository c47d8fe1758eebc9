"""Issue 14 end to end: node health alerts and make-before-break migration between two podman nodes of
one tier (harness/fleet.py with FleetSpec.extra_nodes), a real `rq worker`, real V2Ray on both nodes and
real sing-box clients carrying bytes.

Node 1 is driven over a threshold for real: a per-node override `latency_ms: 0` that every measured
heartbeat breaches (HEALTH_WINDOW_HEARTBEATS of them, 2 s apart). Its dynamic configs become live on
node 2 while a customer keeps using an old link (sampled without a gap); after the grace window
(MIGRATION_GRACE_SECONDS=20 here) and a sweep, node 1 refuses the old links and still serves the
constant-IP config. Then node 2 is drained back onto node 1, and a worker killed in the middle of a
migration leaves no config served by neither node.

Both nodes are provisioned once for the module (≈90 s each on 2 cores); the tests run in order.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from sqlalchemy import select

from control_api.models import SyncRun
from control_api.runners.ansible import _memory_tmp
from harness.fleet import BIG_BODY, SMALL_BODY, Fleet, FleetSpec, NodeSpec, link_for, start_fleet, wait_for
from harness.link_sampler import LinkSampler
from harness.migration import (
    alert_of,
    clear,
    config_view,
    is_live_on,
    link_host,
    link_on,
    served_config_ids,
    since_epoch,
    subscription_links,
    trip,
    wait_alert,
    wait_alert_cleared,
    wait_live,
)
from harness.singbox import ProxyError
from tests.conftest import reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPEC = FleetSpec(
    container="rayfleet-e2e-migration",
    label="e2e_migration",
    node_name="mig-node-1",
    address="10.89.250.14",
    extra_nodes=(NodeSpec(container="rayfleet-e2e-migration-2", node_name="mig-node-2", address="10.89.250.15"),),
)
GRACE_SECONDS = 20
ENV = {
    "MIGRATION_GRACE_SECONDS": str(GRACE_SECONDS),
    "HEALTH_WINDOW_HEARTBEATS": "3",
    # The agents in the containers report the host's CPU, which one provisioning run pegs on 2 cores:
    # only the latency override trips a node here.
    "HEALTH_CPU_PERCENT": "100",
}
# The longest stretch a sampled customer may go without a fetch through the old link: the sampler's
# own cadence (a fetch every 0.1 s, each a new tunnel) plus scheduling noise on 2 busy cores. A gap
# caused by the move (the source dropping the user before the target serves it) lasts a whole sync.
MAX_GAP_SECONDS = 1.5


@pytest.fixture(scope="module")
def fleet(migrated_postgres: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()  # no job an earlier test left in the shared Redis
    workdir = tmp_path_factory.mktemp("fleet")
    with start_fleet(SPEC, workdir, migrated_postgres, redis_url, env_overrides=ENV) as running:
        yield running


@pytest.fixture(scope="module")
def plans(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {"dynamic": fleet.create_plan(is_constant_ip=False), "constant": fleet.create_plan(is_constant_ip=True)}


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What one test leaves for the next (the module's tests run in order on one fleet)."""
    return {}


def node_ids(fleet: Fleet) -> tuple[int, int]:
    first, second = fleet.nodes
    return first.node_id, second.node_id


def assert_carries(fleet: Fleet, link: str) -> None:
    fetched = fleet.fetch(link)
    assert (fetched["status"], fetched["bytes"]) == (200, BIG_BODY), fetched


def assert_refused(fleet: Fleet, link: str) -> None:
    with pytest.raises(ProxyError):
        fleet.fetch(link, url=fleet.small_url, timeout=10)


def test_both_nodes_of_the_tier_are_provisioned_and_carry_bytes(fleet: Fleet):
    first, second = fleet.nodes
    assert (first.node_id, first.container) == (fleet.node_id, fleet.node)
    assert second.node_id != first.node_id
    plan = fleet.create_plan()
    for number, node in enumerate(fleet.nodes):
        view = fleet.node_view(node.node_id)
        assert (view["status"], view["sync_state"], view["location_tag"]) == ("active", "in_sync", "abroad")
        assert view["alert_since"] is None  # (the contract's "alert": null; the API names it alert_since)
        user = fleet.create_user(14_000 + number)
        config = fleet.create_config(user["id"], plan["id"], node_id=node.node_id)
        link = link_for(config)
        assert link_host(link) == node.container.address
        fleet.wait_config(config["id"], "active")
        assert_carries(fleet, link)
        assert fleet.sync_runs("succeeded", node_id=node.node_id) >= 2  # the provision run, then this sync


def test_a_tripped_node_moves_its_dynamic_configs_make_before_break(fleet: Fleet, plans, state):
    node1, node2 = node_ids(fleet)
    address1, address2 = (node.container.address for node in fleet.nodes)
    # Two customers: A has two dynamic configs; B one dynamic and one constant-IP config.
    user_a, user_b = fleet.create_user(14_101), fleet.create_user(14_102)
    dynamic = [
        fleet.create_config(user_a["id"], plans["dynamic"]["id"], node_id=node1),
        fleet.create_config(user_a["id"], plans["dynamic"]["id"], node_id=node1),
        fleet.create_config(user_b["id"], plans["dynamic"]["id"], node_id=node1),
    ]
    pinned = fleet.create_config(user_b["id"], plans["constant"]["id"], node_id=node1)
    for config in [*dynamic, pinned]:
        fleet.wait_config(config["id"], "active")
    old_links = {config["id"]: link_on(config, address1) for config in dynamic}
    pinned_link = link_on(pinned, address1)
    dynamic_ids = set(old_links)
    assert dynamic_ids | {pinned["id"]} <= served_config_ids(fleet, node1)

    sampled = dynamic[0]["id"]
    with LinkSampler(old_links[sampled], fleet.small_url, expect_bytes=SMALL_BODY) as sampler:
        tripped_at = time.time()
        trip(fleet, node1)
        alert = wait_alert(fleet, node1, "latency", timeout=10 * 2 * 3)
        latency = next(item for item in alert["breached"] if item["threshold"] == "latency")
        assert latency["limit"] == 0 and latency["value"] > 0, latency
        assert since_epoch(alert["since"]) >= tripped_at - 1
        assert (alert["node_name"], alert["location_tag"], alert["draining"]) == ("mig-node-1", "abroad", False)
        # The constant-IP config stays, and is named.
        assert pinned["id"] in alert["constant_ip_config_ids"]
        assert {"code": "constant_ip_pinned", "count": 1} in alert["actions"], alert["actions"]
        assert fleet.node_view(node1)["alert_since"] is not None

        # As soon as a config is live on node 2 the subscription serves node 2's link; never before.
        waiting = set(dynamic_ids)
        deadline = time.monotonic() + 180
        while waiting:
            assert time.monotonic() < deadline, f"not live on node 2: {[config_view(fleet, i) for i in waiting]}"
            served_b = subscription_links(fleet, user_b["id"])
            served_a = subscription_links(fleet, user_a["id"])
            for config_id in sorted(waiting):
                view = config_view(fleet, config_id)
                migration = view["migration"]
                uuid = view["uuid"]
                on_sub = {link_host(link) for link in served_a + served_b if f"{uuid}@" in link}
                if migration is None or not migration["live_on_target"]:
                    assert address2 not in on_sub, f"the subscription named node 2 before it served {config_id}"
                    continue
                assert (migration["from_node_id"], migration["to_node_id"]) == (node1, node2), migration
                assert view["node_id"] == node2 and view["node_name"] == "mig-node-2"
                assert {link_host(link) for link in view["links"] if link.startswith("vless://")} == {address2}
                for link in subscription_links(fleet, view["user_id"]):  # read after live: node 2's
                    if f"{uuid}@" in link:
                        assert link_host(link) == address2, link
                waiting.discard(config_id)
            time.sleep(0.2)

        views = {config_id: config_view(fleet, config_id) for config_id in dynamic_ids}
        for view in views.values():
            assert_carries(fleet, link_on(view, address2))  # the new links carry bytes through node 2
        pinned_view = config_view(fleet, pinned["id"])
        assert (pinned_view["node_id"], pinned_view["migration"]) == (node1, None)
        # Make-before-break: both nodes serve the moved configs until the grace window ends.
        assert dynamic_ids <= served_config_ids(fleet, node1) & served_config_ids(fleet, node2)
        for link in old_links.values():
            assert_carries(fleet, link)

        source_until = max(since_epoch(view["migration"]["source_until"]) for view in views.values())
        assert source_until <= time.time() + GRACE_SECONDS + 5
        time.sleep(max(0.0, source_until - time.time()) + 1)
    sampler.stop()
    assert not sampler.failures and sampler.longest_gap() < MAX_GAP_SECONDS, sampler.summary()

    # After the grace window, a cron tick ends the migrations: node 1 drops them and refuses the old links.
    fleet.sweep()
    wait_for(
        lambda: not dynamic_ids & served_config_ids(fleet, node1),
        lambda: f"node 1 still serves moved configs: {served_config_ids(fleet, node1)}",
        timeout=60,
    )
    fleet.wait_node_in_sync(node_id=node1)
    for config_id in dynamic_ids:
        assert config_view(fleet, config_id)["migration"] is None
        assert_refused(fleet, old_links[config_id])
    assert dynamic_ids <= served_config_ids(fleet, node2)
    assert_carries(fleet, pinned_link)  # the constant-IP config still works on node 1 ...
    alert = alert_of(fleet, node1)
    assert alert is not None and alert["constant_ip_config_ids"] == [pinned["id"]]  # ... and is named
    assert alert["configs"]["dynamic"] == 0, alert
    state.update(dynamic_ids=dynamic_ids, pinned=pinned["id"], user_a=user_a["id"])


def test_a_drain_moves_everything_dynamic_and_nothing_is_placed_on_the_draining_node(fleet: Fleet, plans, state):
    node1, node2 = node_ids(fleet)
    address1 = fleet.nodes[0].container.address
    dynamic_ids: set[int] = state["dynamic_ids"]
    clear(fleet, node1)
    wait_alert_cleared(fleet, node1)

    drained = fleet.client.call("POST", f"/nodes/{node2}/drain", json={"now": True}, expect=200)
    assert drained["status"] == "draining"
    listed = wait_alert(fleet, node2)  # a draining node is listed without a breached threshold
    assert (listed["breached"], listed["draining"], listed["status"]) == ([], True, "draining")

    placed = fleet.client.call(
        "POST",
        f"/users/{state['user_a']}/configs",
        json={"plan_id": plans["dynamic"]["id"], "protocol": "vless"},
        expect=201,
    )
    assert (placed["node_id"], placed["node_name"]) == (node1, "mig-node-1")  # never the draining node 2

    wait_live(fleet, dynamic_ids, node1, timeout=180)
    for config_id in dynamic_ids:
        assert_carries(fleet, link_on(config_view(fleet, config_id), address1))
    # now=true: no grace; the migrations end once live (at the target's sync, or this cron tick).
    fleet.sweep()
    wait_for(
        lambda: not dynamic_ids & served_config_ids(fleet, node2),
        lambda: f"the drained node still serves: {served_config_ids(fleet, node2)}",
        timeout=60,
    )
    assert dynamic_ids | {placed["id"], state["pinned"]} <= served_config_ids(fleet, node1)
    fleet.wait_config(placed["id"], "active")
    assert_carries(fleet, link_for(placed))

    assert fleet.client.call("POST", f"/nodes/{node2}/undrain", expect=200)["status"] == "active"
    fleet.client.call("POST", f"/nodes/{node2}/undrain", expect=409)
    wait_alert_cleared(fleet, node2)
    state["dynamic_ids"] = dynamic_ids | {placed["id"]}


class ServedMonitor:
    """Polls what each node must serve (GET /nodes/{id}/configs) and records any moment at which a config
    of CONFIG_IDS is served by neither node. Node 1 (the source) is read first: a config leaves the source
    only after the target serves it, so a sequential read cannot miss it in both."""

    def __init__(self, fleet: Fleet, config_ids: set[int], source: int, target: int) -> None:
        self.fleet, self.config_ids, self.source, self.target = fleet, config_ids, source, target
        self.orphans: list[tuple[float, set[int]]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            served = served_config_ids(self.fleet, self.source) | served_config_ids(self.fleet, self.target)
            missing = self.config_ids - served
            if missing:
                self.orphans.append((time.time(), missing))
            self.samples += 1
            self._stop.wait(0.2)

    def __enter__(self) -> ServedMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def running_sync_of(fleet: Fleet, node_id: int, since_id: int) -> int | None:
    with fleet.engine.connect() as connection:
        return connection.scalar(
            select(SyncRun.id).where(SyncRun.node_id == node_id, SyncRun.id > since_id, SyncRun.status == "running")
        )


def killed_run_dirs(pids: list[int]) -> list[str]:
    parent = Path(_memory_tmp() or tempfile.gettempdir())
    return [path.name for pid in pids for path in parent.glob(f"rayfleet-ansible-{pid}-*")]


def worker_tree(fleet: Fleet) -> list[int]:
    """The pids of the worker and its descendants (the work horse makes a run's private_data_dir)."""
    assert fleet.worker.process is not None
    try:
        root = psutil.Process(fleet.worker.process.pid)
        return [root.pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def test_a_worker_killed_mid_migration_is_completed_by_the_sweep(fleet: Fleet, state):
    node1, node2 = node_ids(fleet)
    address1, address2 = (node.container.address for node in fleet.nodes)
    dynamic_ids: set[int] = state["dynamic_ids"]
    assert dynamic_ids <= served_config_ids(fleet, node1)
    sampled = min(dynamic_ids)
    old_link = link_on(config_view(fleet, sampled), address1)
    before = fleet.last_sync_run_id()

    with (
        LinkSampler(old_link, fleet.small_url, expect_bytes=SMALL_BODY) as sampler,
        ServedMonitor(fleet, dynamic_ids, node1, node2) as monitor,
    ):
        trip(fleet, node1)
        wait_alert(fleet, node1, "latency", timeout=60)
        # The migration's sync of node 2 is running, its playbook run under way (its private_data_dir, with
        # node 2's users, exists): kill the worker, its work horse and the playbook run.
        run_id = wait_for(
            lambda: running_sync_of(fleet, node2, before) if killed_run_dirs(worker_tree(fleet)) else None,
            lambda: f"no sync of node 2 started; worker log:\n{fleet.worker.tail()}",
            timeout=120,
            interval=0.05,
        )
        killed = fleet.worker.kill_tree()
        assert len(killed) >= 2 and not fleet.worker.alive  # the worker and its work horse (and ansible)
        assert killed_run_dirs(killed), "the killed run left no private_data_dir: the check below would prove nothing"
        time.sleep(3)
        assert any(config_view(fleet, config_id)["migration"] for config_id in dynamic_ids)

        # systemd restarts the worker; cron ticks (here every 5 s) find the migration unfinished. The killed
        # job stays STARTED in Redis until its RQ heartbeat lapses (≈90 s); then a tick reaps it and the
        # target's sync runs again.
        assert fleet.restart_worker_if_dead()
        ticks, deadline = 0, time.monotonic() + 240
        while not all(is_live_on(config_view(fleet, config_id), node2) for config_id in dynamic_ids):
            assert not monitor.orphans, monitor.orphans[:5]  # stuck or not, never served by neither node
            if time.monotonic() > deadline:
                raise TimeoutError(f"not live on node 2 after {ticks} sweeps: {alert_of(fleet, node1)}")
            fleet.sweep()
            ticks += 1
            time.sleep(5)
        for config_id in dynamic_ids:
            assert_carries(fleet, link_on(config_view(fleet, config_id), address2))
        # After the grace window (and a tick) node 1 lets go of them; node 2 keeps serving them.
        moving = [config_view(fleet, config_id)["migration"] for config_id in dynamic_ids]
        until = max((since_epoch(item["source_until"]) for item in moving if item), default=0.0)
        time.sleep(max(0.0, until - time.time()) + 1)
        sampler.stop()
        fleet.sweep()
        wait_for(
            lambda: not dynamic_ids & served_config_ids(fleet, node1),
            lambda: f"node 1 still serves moved configs: {served_config_ids(fleet, node1)}",
            timeout=60,
        )
        time.sleep(1)  # the monitor samples the final state too

    assert monitor.samples > 20 and not monitor.orphans, monitor.orphans[:5]
    assert not sampler.failures and sampler.longest_gap() < MAX_GAP_SECONDS, sampler.summary()
    assert dynamic_ids <= served_config_ids(fleet, node2)
    fleet.wait_node_in_sync(node_id=node2)
    fleet.wait_node_in_sync(node_id=node1)
    with fleet.engine.connect() as connection:
        status = connection.scalar(select(SyncRun.status).where(SyncRun.id == run_id))
    assert status != "succeeded", "the killed run cannot have recorded success: was it killed?"
    # The killed run could not delete its private_data_dir (node 2's users' UUIDs, on tmpfs); a later run did.
    assert not killed_run_dirs(killed), "a killed run's private_data_dir outlived the runs after it"
    assert_refused(fleet, old_link)
    clear(fleet, node1)
