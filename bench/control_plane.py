"""The control plane at fleet scale: the 5-minute sweep over 100,000 configs, and GET /nodes with 1,000 nodes.

    .venv/bin/python bench/control_plane.py [--nodes 1000] [--configs 100000] [--metrics-per-node 720]
                                            [--requests 200] [--workers 3] [--threads 4]

Runs the control plane alone (harness/control_plane.py): its own PostgreSQL and Redis and gunicorn serving
`control_api:create_app()` on loopback. The fleet is bulk-inserted with SQL (a few seconds), not built through
the API: --nodes active nodes that were seen just now, each with --metrics-per-node heartbeat rows (one a
minute; NODE_METRICS_RETENTION_DAYS keeps 14 days of them in production) and a succeeded sync run; --configs
configs spread over the nodes, one customer each, 10 GB plans: 90% active, 4% pending, 3% suspended,
3% expired, their expiries spread over the next 30 days with 50 already due, 50 over their cap and 200 past
80% of it. Then:

1. the sweep, as the cron's worker runs it (control_api/jobs/sweep.py run_sweep with the environment's
   settings), twice: the first run does the work a sweep finds after the bulk load (the due expiries, the cap
   suspensions, every expiry warning of the next 3 days: far more than a 5-minute slice would hold); the
   second is the steady state (little left to do, the same queries over the same 100,000 rows);
2. GET /api/v1/nodes as an admin, --requests times one after the other (after 5 not counted).

Targets (issue #19): the sweep < 10 s; GET /nodes p99 < 100 ms. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

FLEET_SQL = [
    # Nodes: active, seen now, in sync.
    """INSERT INTO nodes (name, public_ip, region, location_tag, status, core, capacity_score, client_id, jwt_secret,
                          desired_revision, applied_revision, created_at, last_seen_at)
       SELECT 'bench-' || n, '198.18.' || (n / 250) || '.' || (n % 250 + 1), 'bench', 'bench', 'active', 'xray',
              1000, 'bench-client-' || n, 'not-a-hash', 5, 5, now() - interval '60 days', now()
       FROM generate_series(1, :nodes) AS n""",
    """INSERT INTO plans (name, location_tag, duration_days, max_devices, data_limit_mb, is_constant_ip, price_cents,
                          is_active, created_at)
       VALUES ('bench plan', 'bench', 30, 3, 10000, false, 500, true, now())""",
    """INSERT INTO users (telegram_id, language, is_admin, subscription_token, created_at)
       SELECT 5000000 + n, 'en', false, md5('sub' || n), now() - interval '40 days'
       FROM generate_series(1, :configs) AS n""",
    # Configs: one per customer, round-robin over the nodes; status by n % 100; expiries over the next 30 days.
    """INSERT INTO user_configs (user_id, node_id, plan_id, uuid, alter_id, protocol, status, kind, data_limit_mb,
                                 created_at, expires_at, used_bytes, auto_renew)
       SELECT u.id, (SELECT min(id) FROM nodes) + (n % :nodes), (SELECT min(id) FROM plans),
              md5('uuid' || n)::uuid::text, 0, 'vless',
              CASE WHEN n % 100 < 90 THEN 'active' WHEN n % 100 < 94 THEN 'pending'
                   WHEN n % 100 < 97 THEN 'suspended' ELSE 'expired' END,
              'full', 10000, now() - interval '1 day',
              now() + interval '2 minutes' + (n * interval '30 days' / :configs),
              (n % 1000) * 1000, false
       FROM generate_series(1, :configs) AS n JOIN users u ON u.telegram_id = 5000000 + n""",
    # 50 active configs due now, 50 over their cap, 200 past 80% of it.
    """UPDATE user_configs SET expires_at = now() - interval '1 minute'
       WHERE id IN (SELECT id FROM user_configs WHERE status = 'active' ORDER BY id LIMIT 50)""",
    """UPDATE user_configs SET used_bytes = data_limit_mb * 1048576 + 1
       WHERE id IN (SELECT id FROM user_configs WHERE status = 'active' ORDER BY id DESC LIMIT 50)""",
    """UPDATE user_configs SET used_bytes = data_limit_mb * 1048576 * 85 / 100
       WHERE id IN (SELECT id FROM user_configs WHERE status = 'active' ORDER BY id DESC OFFSET 50 LIMIT 200)""",
    """UPDATE user_configs SET suspend_reason = 'admin' WHERE status = 'suspended'""",
    # A heartbeat a minute per node, newest now.
    """INSERT INTO node_metrics (node_id, cpu, mem, bandwidth_in, bandwidth_out, latency_ms, timestamp)
       SELECT node.id, 20 + (m % 30), 40, 1000000, 2000000, 12.5, now() - m * interval '1 minute'
       FROM nodes node, generate_series(0, :metrics - 1) AS m ORDER BY m DESC, node.id""",
    # The newest of them on the node row, as the heartbeat keeps it there.
    """UPDATE nodes SET last_metrics_at = m.timestamp, last_cpu = m.cpu, last_mem = m.mem,
              last_bandwidth_in = m.bandwidth_in, last_bandwidth_out = m.bandwidth_out, last_latency_ms = m.latency_ms
       FROM node_metrics m WHERE m.id = (SELECT max(id) FROM node_metrics WHERE node_id = nodes.id)""",
    """INSERT INTO sync_runs (node_id, revision, status, rc, changed, added, removed, duration_ms, started_at,
                              finished_at)
       SELECT id, 5, 'succeeded', 0, 1, 3, 0, 2500, now() - interval '1 hour', now() - interval '1 hour'
       FROM nodes""",
    # What autovacuum has done to a table of this age in production (PostgreSQL 13+ also vacuums after inserts):
    # statistics, and the visibility map that lets each node's newest-row probe skip the heap.
    "VACUUM ANALYZE",
]


def load_fleet(database_url: str, nodes: int, configs: int, metrics: int) -> float:
    from sqlalchemy import text

    from control_api.database import make_engine

    engine = make_engine(database_url)
    started = time.monotonic()
    with engine.begin() as connection:
        for statement in FLEET_SQL[:-1]:
            connection.execute(text(statement), {"nodes": nodes, "configs": configs, "metrics": metrics})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(FLEET_SQL[-1]))
    engine.dispose()
    return time.monotonic() - started


def time_sweep(env: dict[str, str]) -> tuple[float, Any]:
    """One run_sweep as the cron's worker runs it (settings from the environment), in this process."""
    from control_api.config import Settings
    from control_api.jobs.context import WorkerContext, set_worker_context
    from control_api.jobs.sweep import run_sweep

    settings = Settings.from_env(env)
    set_worker_context(WorkerContext.from_settings(settings, env))
    try:
        started = time.monotonic()
        result = run_sweep(settings)
        return time.monotonic() - started, result
    finally:
        set_worker_context(None)


def time_list(client: Any, count: int) -> tuple[list[float], int]:
    for _ in range(5):
        client.call("GET", "/nodes", expect=200)
    latencies, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        response = client.session.get(f"{client.base_url}/api/v1/nodes", timeout=60)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        size = len(response.content)
    return latencies, size


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--configs", type=int, default=100_000)
    parser.add_argument("--metrics-per-node", type=int, default=720, help="heartbeat rows per node (one a minute)")
    parser.add_argument("--requests", type=int, default=200, help="GET /nodes requests timed")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    from harness.control_plane import control_plane

    with (
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
        control_plane(Path(tmp), workers=args.workers, threads=args.threads) as plane,
    ):
        loaded = load_fleet(plane.database_url, args.nodes, args.configs, args.metrics_per_node)
        print(
            f"bulk load: {args.nodes} nodes, {args.configs} configs, {args.nodes * args.metrics_per_node} metric "
            f"rows in {loaded:.1f} s",
            flush=True,
        )
        sweeps = [time_sweep(plane.env) for _ in range(2)]
        latencies, size = time_list(plane.client, args.requests)

    ms = sorted(value * 1000 for value in latencies)
    print(
        f"\ncontrol plane at scale (PostgreSQL + Redis + gunicorn {args.workers}x{args.threads} on loopback, "
        f"{os.cpu_count()} CPUs)"
    )
    for number, (seconds, result) in enumerate(sweeps, start=1):
        kind = "after the bulk load" if number == 1 else "steady state"
        lagging = "skipped (lock held)" if result is None else f"{len(result)} lagging nodes re-enqueued"
        print(f"  sweep {number} ({kind:19s})  {seconds:6.2f} s   target < 10 s   ({lagging})")
    print(
        f"  GET /api/v1/nodes ({args.nodes} nodes, {size / 1024:.0f} KiB)   p50 {statistics.median(ms):6.1f} ms   "
        f"p95 {percentile(ms, 0.95):6.1f} ms   p99 {percentile(ms, 0.99):6.1f} ms   max {ms[-1]:6.1f} ms   "
        f"(n={len(ms)})   target p99 < 100 ms"
    )


if __name__ == "__main__":
    main()
