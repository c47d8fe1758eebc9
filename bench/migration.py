"""How fast a tripped node's customers are live elsewhere: 200 dynamic configs moved make-before-break.

    .venv/bin/python bench/migration.py [--configs 200] [--sampled 20] [--samplers 5] [--grace 600]

Runs the e2e harness (harness/fleet.py) with two podman nodes in one tier, on its own PostgreSQL and
Redis (harness/services.py): gunicorn serving the control API, an `rq worker --with-scheduler` process,
and two podman systemd nodes (real V2Ray) provisioned by the API's provision job. Then:

1. --configs dynamic configs (plan is_constant_ip false) are sold on node 1 (8 concurrent API clients)
   and go live there;
2. --samplers of them are used continuously through their old links (a sing-box client each, a new
   connection every 0.2 s: harness/link_sampler.py);
3. node 1 is tripped for real (PATCH /nodes/{id} {"thresholds": {"latency_ms": 0}}: every real heartbeat
   breaches it) and GET /nodes/alerts is polled until it lists node 1; the alert's "since" is time zero;
4. for --sampled configs spread over the set, a sing-box client with the config's link on node 2 (same
   inbounds, node 2's address) fetches a 4 KiB body until one arrives.

Figures: seconds from the alert until each sampled config's new link first carried bytes (p50/p95/max),
until all --configs were live on node 2 (the config's migration.live_on_target; read from the
database), the longest gap any sampled old link saw (goal 0 s: make-before-break), and how many
playbook runs (`sync_runs` rows) it took, per node. The grace window (--grace, MIGRATION_GRACE_SECONDS)
outlasts the bench, so the old links must keep working throughout. Prints figures only, no pass/fail.
Holds both container locks (machine_lock) while its containers exist; removes only them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HEARTBEATS = 3


def percentiles(values: list[float]) -> str:
    if not values:
        return "no values"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.2f} s   p95 {p95:6.2f} s   max {ordered[-1]:6.2f} s   (n={len(ordered)})"


def sell(fleet: Any, harness: Any, plan_id: int, count: int) -> list[dict[str, Any]]:
    """COUNT configs on the first node, one customer each, 8 API clients at once; wait until all are active."""
    from sqlalchemy import func, select

    from control_api.models import UserConfig

    users = [fleet.create_user(1_400_000 + n)["id"] for n in range(count)]
    token = fleet.client.session.headers["Authorization"]
    clients: dict[int, Any] = {}

    def create(user_id: int) -> dict[str, Any]:
        client = clients.setdefault(threading.get_ident(), harness.ApiClient(fleet.api.url))
        client.session.headers["Authorization"] = token
        body = {"plan_id": plan_id, "protocol": "vless", "node_id": fleet.node_id}
        return client.call("POST", f"/users/{user_id}/configs", json=body, expect=201)

    with ThreadPoolExecutor(max_workers=8) as pool:
        configs = list(pool.map(create, users))
    ids = [config["id"] for config in configs]

    def all_active() -> bool:
        with fleet.engine.connect() as connection:
            active = connection.scalar(
                select(func.count()).where(UserConfig.id.in_(ids), UserConfig.status == "active")
            )
        return active == len(ids)

    harness.wait_for(all_active, f"the {count} configs did not all become active", timeout=600, interval=0.2)
    fleet.wait_node_in_sync()
    return configs


def live_on(fleet: Any, ids: list[int], node_id: int) -> int:
    """How many of IDS are live on NODE_ID: moved there and its sync applied (or the move already ended)."""
    from sqlalchemy import func, or_, select

    from control_api.models import UserConfig

    with fleet.engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).where(
                    UserConfig.id.in_(ids),
                    UserConfig.node_id == node_id,
                    or_(UserConfig.migration_live_at.is_not(None), UserConfig.previous_node_id.is_(None)),
                )
            )
        )


def first_byte(fleet: Any, link: str, deadline: float, seen: dict[str, float]) -> None:
    """Fetch a small body through LINK until one arrives; record time.time() then in SEEN[link]."""
    from harness.singbox import ProxyError, fetch, singbox_client

    with singbox_client(link) as proxy:
        while time.time() < deadline:
            try:
                result = fetch(proxy, fleet.small_url, timeout=3)
                if result["status"] == 200:
                    seen[link] = time.time()
                    return
            except ProxyError:
                pass
            time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=200, help="dynamic configs on the tripped node")
    parser.add_argument("--sampled", type=int, default=20, help="configs whose new link's first byte is timed")
    parser.add_argument("--samplers", type=int, default=5, help="old links used continuously during the move")
    parser.add_argument("--grace", type=int, default=600, help="MIGRATION_GRACE_SECONDS (outlasts the bench)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for all configs to move")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the harness package (harness/) lives at the repo root

    from control_api import migrate
    from control_api.database import make_engine
    from harness import fleet as harness
    from harness import migration
    from harness.link_sampler import LinkSampler
    from harness.podman_node import machine_lock
    from harness.services import postgres_server, redis_server

    spec = harness.FleetSpec(
        container="rayfleet-bench-migration",
        label="bench_migration",
        node_name="bench-mig-1",
        address="10.89.250.16",
        extra_nodes=(
            harness.NodeSpec(container="rayfleet-bench-migration-2", node_name="bench-mig-2", address="10.89.250.17"),
        ),
    )
    env = {
        "MIGRATION_GRACE_SECONDS": str(args.grace),
        "HEALTH_WINDOW_HEARTBEATS": str(HEARTBEATS),
        # The agents in the containers report the host's CPU, which the playbook runs peg on 2 cores:
        # only the latency override trips a node here.
        "HEALTH_CPU_PERCENT": "100",
    }
    with (
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
        postgres_server() as database_url,
        redis_server() as redis_url,
    ):
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        print("starting the fleet and provisioning two nodes through the API (a few minutes) ...", flush=True)
        with harness.start_fleet(
            spec, Path(tmp), database_url, redis_url, env_overrides=env, lock=machine_lock
        ) as fleet:
            node1, node2 = (node.node_id for node in fleet.nodes)
            address1, address2 = (node.container.address for node in fleet.nodes)
            provisioned = [node.provision_seconds for node in fleet.nodes]
            print(f"fleet up; provisioning took {provisioned[0]:.0f} s and {provisioned[1]:.0f} s", flush=True)
            plan_id = fleet.create_plan(is_constant_ip=False, data_limit_mb=100_000)["id"]
            print(f"selling {args.configs} dynamic configs on node 1 ...", flush=True)
            configs = sell(fleet, harness, plan_id, args.configs)
            ids = [config["id"] for config in configs]
            step = max(1, len(configs) // args.sampled)
            sampled = configs[::step][: args.sampled]
            old_links = [migration.link_on(config, address1) for config in sampled]
            new_links = [link.replace(f"@{address1}:", f"@{address2}:", 1) for link in old_links]

            samplers = [
                LinkSampler(link, fleet.small_url, expect_bytes=harness.SMALL_BODY, interval=0.2).start()
                for link in old_links[: args.samplers]
            ]
            runs_before = fleet.last_sync_run_id()
            print(f"tripping node 1 (latency_ms: 0, {HEARTBEATS} heartbeats) ...", flush=True)
            tripped = time.time()
            migration.trip(fleet, node1)
            alert = migration.wait_alert(fleet, node1, "latency", timeout=120)
            since = migration.since_epoch(alert["since"])
            print(f"alert listed {time.time() - tripped:.1f} s after the PATCH; moving ...", flush=True)

            seen: dict[str, float] = {}
            deadline = time.time() + args.timeout
            watchers = [
                threading.Thread(target=first_byte, args=(fleet, link, deadline, seen), daemon=True)
                for link in new_links
            ]
            for watcher in watchers:
                watcher.start()
            all_live_at = None
            while time.time() < deadline:
                if live_on(fleet, ids, node2) == len(ids):
                    all_live_at = time.time()
                    break
                time.sleep(0.2)
            for watcher in watchers:
                watcher.join(timeout=max(1.0, deadline - time.time()))
            gaps = [sampler.stop() and sampler.longest_gap() for sampler in samplers]
            failures = sum(len(sampler.failures) for sampler in samplers)
            # Served at the end: the sampler's last successful fetch came less than a second before it stopped.
            old_still = sum(
                1 for sampler in samplers if sampler.successes and sampler.stopped - sampler.successes[-1] < 1
            )
            runs = {node: fleet.sync_runs(since_id=runs_before, node_id=node) for node in (node1, node2)}
            failed = sum(fleet.sync_runs("failed", since_id=runs_before, node_id=node) for node in (node1, node2))
            moved_live = live_on(fleet, ids, node2)

    first_bytes = [seen[link] - since for link in new_links if link in seen]
    rows = [
        ("alert listed after the PATCH", f"{since - tripped:6.2f} s (alert since)   [{HEARTBEATS} heartbeats, 2 s]"),
        (f"{len(new_links)} sampled new links: first byte", percentiles(first_bytes)),
        ("  sampled links that never carried bytes", f"{len(new_links) - len(first_bytes):6d}"),
        (
            f"all {args.configs} configs live on node 2",
            f"{all_live_at - since:6.2f} s" if all_live_at else f"not within {args.timeout:.0f} s ({moved_live} live)",
        ),
        (
            f"longest gap on {len(samplers)} old links",
            f"{max(gaps, default=0.0):6.2f} s   (failed fetches: {failures}; each link sampled every 0.2 s)   goal 0 s",
        ),
        ("  old links still served at the end", f"{old_still} of {len(samplers)} (grace {args.grace} s)"),
        (
            "playbook runs (sync_runs rows)",
            f"node 1: {runs[node1]}   node 2: {runs[node2]}   (failed: {failed})",
        ),
    ]
    print(f"\nmigration of {args.configs} dynamic configs off a tripped node (2 podman nodes, V2Ray 4.34)")
    print("  (time zero: the alert's since; node 1 keeps serving the old links for the grace window)")
    for label, value in rows:
        print(f"  {label:44s} {value}".rstrip())


if __name__ == "__main__":
    main()
