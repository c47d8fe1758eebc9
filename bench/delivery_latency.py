"""How fast a sale becomes a working link: API call -> first byte through the node, and a 200-config burst.

    .venv/bin/python bench/delivery_latency.py [--configs 20] [--burst 200] [--samples 3] [--rounds 2]

Runs the e2e harness (harness/fleet.py) on its own PostgreSQL and Redis (harness/services.py):
gunicorn serving the control API, an `rq worker --with-scheduler` process, and one podman systemd node
(real V2Ray) provisioned by the API's provision job. Then:

(a) --configs times each, one at a time, a sale with the node's warm identity pool (IDENTITY_POOL_SIZE,
    services/identity_pool.py: the config adopts an identity the node already serves) and a sale with an
    empty pool (its identities retired in the database just before, so the sale takes a fresh UUID and waits
    for the sync), in turn: POST /users/{id}/configs, take the vless:// link from the answer and start a
    sing-box client with it, fetching a 4 KiB body from an origin on the host until one arrives.
    Figures, per pool state: seconds from the API call to those first bytes (p50/p95/max), and the API call
    alone; measured --rounds times, each round printed (how much the figures move between runs).
(b) --burst configs created at once (8 concurrent API clients) on the same node: seconds until every one
    of them is `active` (the sync that served it succeeded), until --samples of their links (the last
    ones created) carry bytes, and how many playbook runs (`sync_runs` rows) the burst cost.

Targets (DESIGN.md §2, issues #4 and #19): p95 < 1 s for (a) with a warm pool, <= 5 s with an empty one;
<= 3 playbook runs for (b) (--burst 0 skips it). Prints figures only,
no pass/fail. Holds both container locks (machine_lock) while its container exists; removes only it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.2f} s   p95 {p95:6.2f} s   max {ordered[-1]:6.2f} s   (n={len(ordered)})"


def empty_the_pool(fleet: Any) -> None:
    """Make the node's warm pool look empty to the next sale: its unadopted identities retired in the database
    only (no revision bump), so the sale misses (identity_pool.take) and takes today's path; the sync that sale
    queues drops them from the node and refills the pool."""
    from sqlalchemy import update

    from control_api.models import PoolIdentity, utcnow

    with fleet.engine.begin() as connection:
        connection.execute(
            update(PoolIdentity)
            .where(
                PoolIdentity.node_id == fleet.node_id,
                PoolIdentity.adopted_at.is_(None),
                PoolIdentity.retired_at.is_(None),
            )
            .values(retired_at=utcnow())
        )


def wait_quiet(fleet: Any, harness: Any) -> None:
    """The node in sync and no sync job left in RQ (queued, running or in its tail): a sale queued while the
    previous job finishes its tail is coalesced into it and then waits for the sweep (a race of the queue's
    coalescing, reported in issue 19's notes), which would measure the sweep, not delivery."""
    import redis
    from rq.job import Job

    from control_api.jobs import sync_job_id

    fleet.wait_node_in_sync()
    connection = redis.Redis.from_url(fleet.redis_url)
    try:
        harness.wait_for(
            lambda: not Job.exists(sync_job_id(fleet.node_id), connection=connection),
            "the sync job never left the queue",
            timeout=120,
            interval=0.05,
        )
    finally:
        connection.close()
    fleet.wait_node_in_sync()


def from_the_pool(fleet: Any, config_id: int) -> bool:
    from sqlalchemy import func, select

    from control_api.models import PoolIdentity

    with fleet.engine.connect() as connection:
        return bool(connection.scalar(select(func.count()).where(PoolIdentity.adopted_config_id == config_id)))


def one_at_a_time(
    fleet: Any, harness: Any, plan_id: int, count: int, first_user: int = 800_000
) -> dict[str, tuple[list[float], list[float]]]:
    """{"warm" | "empty": (API call -> first byte seconds, API call seconds)} for COUNT configs of each, created
    one after the other, a warm-pool sale and an empty-pool sale in turn (so both see the same machine load)."""
    users = [fleet.create_user(first_user + n)["id"] for n in range(2 * count)]
    figures: dict[str, tuple[list[float], list[float]]] = {"warm": ([], []), "empty": ([], [])}
    for number, user_id in enumerate(users):
        kind = "warm" if number % 2 == 0 else "empty"
        wait_quiet(fleet, harness)  # each sale starts from a quiet node (its pool served and ready)
        if kind == "empty":
            empty_the_pool(fleet)
        started = time.monotonic()
        config = fleet.create_config(user_id, plan_id)
        api_call = time.monotonic() - started
        first_byte = fleet.time_to_first_bytes(harness.link_for(config), started)
        pooled = from_the_pool(fleet, config["id"])
        if pooled != (kind == "warm"):
            print(
                f"  (config {config['id']}: expected a {kind} pool, got {'a pool' if pooled else 'no pool'} identity)"
            )
        figures[kind][0].append(first_byte)
        figures[kind][1].append(api_call)
        print(
            f"  config {number // 2 + 1:3d}/{count} ({kind:5s} pool): first byte after {first_byte:5.2f} s", flush=True
        )
    return figures


def run_durations(fleet: Any, since_id: int) -> list[float]:
    """Seconds each successful playbook run took (ansible-runner start-up included) after SINCE_ID."""
    from sqlalchemy import select

    from control_api.models import SyncRun

    with fleet.engine.connect() as connection:
        rows = connection.scalars(
            select(SyncRun.duration_ms).where(SyncRun.id > since_id, SyncRun.status == "succeeded")
        ).all()
    return [ms / 1000 for ms in rows]


def run_timeline(fleet: Any, since_id: int, origin: datetime) -> list[str]:
    """Each playbook run after SINCE_ID: when it started and ended, seconds after ORIGIN, and what it carried."""
    from sqlalchemy import select

    from control_api.models import SyncRun

    with fleet.engine.connect() as connection:
        rows = connection.execute(
            select(SyncRun.started_at, SyncRun.finished_at, SyncRun.added, SyncRun.removed, SyncRun.status)
            .where(SyncRun.id > since_id)
            .order_by(SyncRun.id)
        ).all()
    lines = []
    for started_at, finished_at, added, removed, status in rows:
        start = (started_at - origin).total_seconds()
        end = f"{(finished_at - origin).total_seconds():5.2f}" if finished_at else "  -  "
        lines.append(f"run {start:5.2f} -> {end} s   +{added} -{removed}   {status}")
    return lines


def burst(fleet: Any, harness: Any, plan_id: int, count: int, samples: int) -> dict[str, Any]:
    users = [fleet.create_user(900_000 + n)["id"] for n in range(count)]
    fleet.wait_node_in_sync()
    token = fleet.client.session.headers["Authorization"]
    runs_before = fleet.last_sync_run_id()
    clients: dict[int, Any] = {}

    def create(user_id: int) -> dict[str, Any]:
        client = clients.setdefault(threading.get_ident(), harness.ApiClient(fleet.api.url))
        client.session.headers["Authorization"] = token
        body = {"plan_id": plan_id, "protocol": "vless", "node_id": fleet.node_id}
        return client.call("POST", f"/users/{user_id}/configs", json=body, expect=201)

    origin = datetime.now(UTC)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        configs = list(pool.map(create, users))
    accepted = time.monotonic() - started
    ids = [config["id"] for config in configs]

    def all_active() -> bool:
        from sqlalchemy import func, select

        from control_api.models import UserConfig

        with fleet.engine.connect() as connection:
            active = connection.scalar(
                select(func.count()).where(UserConfig.id.in_(ids), UserConfig.status == "active")
            )
        return active == len(ids)

    harness.wait_for(all_active, f"the {count} configs did not all become active", timeout=600, interval=0.1)
    live = time.monotonic() - started
    for config in configs[-samples:]:
        fleet.time_to_first_bytes(harness.link_for(config), started)
    sampled = time.monotonic() - started
    fleet.wait_node_in_sync()
    return {
        "accepted": accepted,
        "active": live,
        "sampled": sampled,
        "runs": fleet.sync_runs(since_id=runs_before),
        "failed_runs": fleet.sync_runs("failed", since_id=runs_before),
        "timeline": run_timeline(fleet, runs_before, origin),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=20, help="configs created one at a time, for (a)")
    parser.add_argument("--burst", type=int, default=200, help="configs created at once, for (b)")
    parser.add_argument("--samples", type=int, default=3, help="links of the burst checked for bytes")
    parser.add_argument("--rounds", type=int, default=2, help="times (a) is measured, each printed")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the harness package (harness/) lives at the repo root

    from control_api import migrate
    from control_api.database import make_engine
    from harness import fleet as harness
    from harness.podman_node import machine_lock
    from harness.services import postgres_server, redis_server

    spec = harness.FleetSpec(
        container="rayfleet-bench-fleet", label="bench_delivery", node_name="bench-node", address="10.89.250.13"
    )
    with (
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
        postgres_server() as database_url,
        redis_server() as redis_url,
    ):
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        print("starting the fleet and provisioning the node through the API (a few minutes) ...", flush=True)
        with harness.start_fleet(spec, Path(tmp), database_url, redis_url, lock=machine_lock) as fleet:
            provisioned = fleet.provision_seconds
            plan_id = fleet.create_plan()["id"]
            print(f"fleet up; the provision job took the node to in_sync in {provisioned:.0f} s", flush=True)
            rounds = []
            for round_number in range(1, args.rounds + 1):
                print(
                    f"(a) round {round_number}: {args.configs} configs each with a warm and an empty pool", flush=True
                )
                before = fleet.last_sync_run_id()
                one = one_at_a_time(fleet, harness, plan_id, args.configs, first_user=800_000 + 10_000 * round_number)
                fleet.wait_node_in_sync()  # the last run's row is written just after its users went live
                rounds.append((one, run_durations(fleet, before)))
            figures = None
            if args.burst:
                print(f"(b) {args.burst} configs in one burst ...", flush=True)
                figures = burst(fleet, harness, plan_id, args.burst, args.samples)

    rows = []
    for round_number, (one, run_seconds) in enumerate(rounds, start=1):
        rows += [
            (f"(a) round {round_number}: API call -> first byte", ""),
            ("    warm pool (the link works at once)", f"{percentiles(one['warm'][0])}   target p95 < 1 s"),
            ("    empty pool (waits for the sync)", f"{percentiles(one['empty'][0])}   target p95 <= 5 s"),
            ("    the API call alone, warm pool", percentiles(one["warm"][1])),
            ("    the API call alone, empty pool", percentiles(one["empty"][1])),
            ("    each playbook run (sync_runs.duration_ms)", percentiles(run_seconds)),
        ]
    if figures is not None:
        rows += [
            (f"(b) {args.burst} configs in one burst:", ""),
            ("    all API calls answered (201)", f"{figures['accepted']:6.2f} s"),
            (f"    all {args.burst} configs active", f"{figures['active']:6.2f} s"),
            (f"    {args.samples} sampled links carry bytes", f"{figures['sampled']:6.2f} s"),
            (
                "    playbook runs (sync_runs rows)",
                f"{figures['runs']:6d}   (failed: {figures['failed_runs']})   target <= 3",
            ),
        ]
        for number, line in enumerate(figures["timeline"]):
            rows.append(("    the runs, from the first call" if number == 0 else "", line))
    print("\ndelivery through the whole fleet (gunicorn + rq worker + podman node, V2Ray 4.34)")
    print(f"  (POST /nodes/{{id}}/provision -> node active and in sync: {provisioned:.0f} s)")
    for label, value in rows:
        print(f"  {label:46s} {value}".rstrip())


if __name__ == "__main__":
    main()
