"""How many node heartbeats the control plane takes: heartbeats/s and latency under concurrent load.

    .venv/bin/python bench/heartbeats.py [--nodes 100] [--configs 20] [--seconds 20] [--clients 16]
                                          [--rate 0] [--workers 3] [--threads 4] [--retry-every 10]

Runs the control plane alone (harness/control_plane.py): its own PostgreSQL and Redis (harness/services.py) and
gunicorn serving `control_api:create_app()` on loopback, as production does (no worker: the syncs that
config creation queues stay queued). Then:

1. --nodes nodes are created through the API (POST /nodes) and each agent logs in with its own credentials
   (POST /nodes/register, the agent's path: agent/reporter.py), and --configs configs are sold on each
   (POST /users/{id}/configs);
2. for --seconds, --clients load-generator threads in this process (they share the 2 cores with the API and
   PostgreSQL) each drive their share of the nodes round-robin over one keep-alive connection, sending the
   agent's heartbeat (agent/__main__.py): host metrics plus ONE traffic report (a fresh report_id) of the
   node's --configs configs; closed loop (each client sends its next heartbeat once the last was answered:
   the most the machine takes), or with --rate, paced at that many heartbeats/s in all. Every
   --retry-every'th heartbeat of a node re-sends its previous report (a lost answer, retried) with new
   metrics: the API must name it a duplicate and store nothing.
3. afterwards, the database must hold every accepted report exactly once: usage_reports rows, usage rows and
   their byte sums, and user_configs.used_bytes all equal what the API accepted.

4. the stack's floor, for --floor-seconds each, closed loop with the same clients, workers and CPU accounting:
   GET /health (no token; one SELECT 1 and one Redis PING: gunicorn and Flask alone); GET /nodes/{id} of another
   node with a node's token, answered 403 (the token checks a heartbeat passes, and nothing else: what
   authentication adds); and GET /nodes/{id} of its own (those checks and a read of the node's record).

Prints heartbeats/s, p50/p95/p99/max latency, errors, the stored-exactly-once check, and the floor's
requests/s and CPU ms per request. Target (issue #19): >= 330 heartbeats/s with p99 < 50 ms on a 2-core
machine. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class SimNode:
    node_id: int
    token: str
    config_ids: list[int]
    previous: dict[str, Any] | None = None  # the last report sent, for a retry
    beats: int = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # report id -> (rows, in, out)
    per_config: dict[int, int] = field(default_factory=dict)  # config id -> bytes accepted
    duplicates: int = 0
    retries: int = 0


def setup(plane: Any, nodes: int, configs: int) -> list[SimNode]:
    """NODES nodes through the API, each agent logged in with its own credentials, CONFIGS configs on each."""
    from harness.processes import ApiClient

    admin = plane.client
    plan = admin.call(
        "POST",
        "/plans",
        json={
            "name": "bench plan",
            "location_tag": "bench",
            "duration_days": 30,
            "max_devices": 3,
            "data_limit_mb": 1_000_000,
            "price_cents": 500,
        },
        expect=201,
    )
    token = admin.session.headers["Authorization"]
    local = threading.local()

    def api() -> ApiClient:
        if not hasattr(local, "client"):
            local.client = ApiClient(plane.url)
            local.client.session.headers["Authorization"] = token
        return local.client

    def one_node(number: int) -> SimNode:
        body = {
            "name": f"bench-{number}",
            "region": "bench",
            "location_tag": "bench",
            "public_ip": f"198.18.{number // 250}.{number % 250 + 1}",
            "capacity_score": 10_000,
        }
        node = api().call("POST", "/nodes", json=body, expect=201)
        # The agent's own login (agent/reporter.py), with the credentials POST /nodes handed out.
        login = {"client_id": node["client_id"], "client_secret": node["client_secret"]}
        response = api().session.post(f"{plane.url}/api/v1/nodes/register", json=login, timeout=30)
        response.raise_for_status()
        ids = []
        for index in range(configs):
            user = api().call("PUT", f"/users/telegram/{7_000_000 + number * 1000 + index}", json={})
            config_body = {"plan_id": plan["id"], "protocol": "vless", "node_id": node["id"]}
            ids.append(api().call("POST", f"/users/{user['id']}/configs", json=config_body, expect=201)["id"])
        return SimNode(node["id"], response.json()["access_token"], ids)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one_node, range(nodes)))


def heartbeat_body(node: SimNode, rng: random.Random, retry: bool) -> dict[str, Any]:
    """The agent's heartbeat (agent/__main__.py Agent.heartbeat) with one traffic report of the node's configs."""
    if retry and node.previous is not None:
        report = node.previous
    else:
        end = datetime.now(UTC)
        report = {
            "report_id": str(uuid.uuid4()),
            "period_start": (end - timedelta(seconds=60)).isoformat(),
            "period_end": end.isoformat(),
            "usage": [
                {"email": f"cfg-{config_id}", "uplink": rng.randrange(1, 50_000), "downlink": rng.randrange(1, 500_000)}
                for config_id in node.config_ids
            ],
        }
        node.previous = report
    return {
        "cpu": round(rng.uniform(5, 40), 1),
        "mem": round(rng.uniform(20, 60), 1),
        "bandwidth_in": rng.randrange(10_000, 10_000_000),
        "bandwidth_out": rng.randrange(10_000, 10_000_000),
        "latency_ms": round(rng.uniform(5, 30), 2),
        "core_active": True,
        "incidents": [],
        "reports": [report],
        "devices": [],
    }


def drive(
    port: int,
    nodes: list[SimNode],
    deadline: float,
    retry_every: int,
    tally: Tally,
    lock: threading.Lock,
    interval: float = 0.0,
) -> None:
    """One load-generator thread: its NODES round-robin over one keep-alive connection until DEADLINE, one
    heartbeat every INTERVAL seconds (0: the next as soon as the last was answered)."""
    rng = random.Random(os.getpid() ^ threading.get_ident())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors, accepted, per_config = [], {}, {}, {}
    duplicates = retries = 0
    turn = 0
    due = time.monotonic() + rng.random() * interval  # the clients' beats spread over the interval
    while time.monotonic() < deadline:
        if interval:
            due += interval
            pause = due - interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        node = nodes[turn % len(nodes)]
        turn += 1
        node.beats += 1
        retry = retry_every > 0 and node.beats % retry_every == 0 and node.previous is not None
        body = heartbeat_body(node, rng, retry)
        payload = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/nodes/heartbeat", body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors[f"HTTP {response.status}"] = errors.get(f"HTTP {response.status}", 0) + 1
            continue
        answer = json.loads(data)
        retries += retry
        duplicates += len(answer["duplicates"])
        report = body["reports"][0]
        if report["report_id"] in answer["accepted"]:
            usage = report["usage"]
            accepted[report["report_id"]] = (
                len(usage),
                sum(entry["uplink"] for entry in usage),
                sum(entry["downlink"] for entry in usage),
            )
            for entry in usage:
                config_id = int(entry["email"][4:])
                per_config[config_id] = per_config.get(config_id, 0) + entry["uplink"] + entry["downlink"]
    connection.close()
    with lock:
        tally.latencies += latencies
        tally.accepted.update(accepted)
        tally.duplicates += duplicates
        tally.retries += retries
        for key, count in errors.items():
            tally.errors[key] = tally.errors.get(key, 0) + count
        for config_id, moved in per_config.items():
            tally.per_config[config_id] = tally.per_config.get(config_id, 0) + moved


def verify(database_url: str, tally: Tally) -> list[str]:
    """The database against what the API accepted: each report once, every byte once. Returns the mismatches."""
    from sqlalchemy import func, select

    from control_api.database import make_engine
    from control_api.models import Usage, UsageReport, UserConfig

    engine = make_engine(database_url)
    problems = []
    with engine.connect() as db:
        stored = {
            report_id: count
            for report_id, count in db.execute(
                select(UsageReport.report_id, func.count()).group_by(UsageReport.report_id)
            )
        }
        if set(stored) != set(tally.accepted):
            problems.append(f"report ids: {len(stored)} stored, {len(tally.accepted)} accepted")
        if any(count != 1 for count in stored.values()):
            problems.append("a report id stored more than once")
        total_in, total_out = func.coalesce(func.sum(Usage.bytes_in), 0), func.coalesce(func.sum(Usage.bytes_out), 0)
        rows, bytes_in, bytes_out = db.execute(select(func.count(), total_in, total_out)).one()
        sent = tuple(sum(values[i] for values in tally.accepted.values()) for i in range(3))
        if (rows, bytes_in, bytes_out) != sent:
            problems.append(f"usage rows/in/out {(rows, bytes_in, bytes_out)} != accepted {sent}")
        used = {
            config_id: moved
            for config_id, moved in db.execute(
                select(UserConfig.id, UserConfig.used_bytes).where(UserConfig.used_bytes > 0)
            )
        }
        if used != tally.per_config:
            problems.append(f"used_bytes differs for {len(set(used.items()) ^ set(tally.per_config.items()))} configs")
        return [*problems, f"stored: {len(stored)} reports, {rows} usage rows, {bytes_in + bytes_out} bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--configs", type=int, default=20, help="configs per node, one usage entry each per report")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16, help="load-generator threads (one connection each)")
    parser.add_argument(
        "--rate", type=float, default=0, help="offered heartbeats/s (paced); 0: closed loop, each client sends on"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--retry-every", type=int, default=10, help="every Nth heartbeat of a node retries a report")
    parser.add_argument(
        "--floor-seconds", type=float, default=10, help="seconds of each floor request (0: no floor figures)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    from harness.control_plane import control_plane

    with (
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
        control_plane(Path(tmp), workers=args.workers, threads=args.threads) as plane,
    ):
        started = time.monotonic()
        nodes = setup(plane, args.nodes, args.configs)
        print(
            f"{args.nodes} nodes registered, {args.nodes * args.configs} configs sold in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        port = int(plane.url.rsplit(":", 1)[1])
        shares = [nodes[index :: args.clients] for index in range(args.clients)]
        # A short warm-up (every worker's connections and caches), not counted.
        warm = Tally()
        drive_all(port, shares, 2.0, 0, warm)
        for node in nodes:
            node.previous, node.beats = None, 0
        tally = Tally(per_config=dict(warm.per_config), accepted=dict(warm.accepted))
        warm_count = len(warm.latencies)
        tally_run = Tally()
        trees = process_trees(plane.api.process.pid, plane.database_url)
        cpu_before = cpu_seconds(trees)
        begun = time.monotonic()
        drive_all(port, shares, args.seconds, args.retry_every, tally_run, args.rate)
        elapsed = time.monotonic() - begun
        cpu = {name: spent - cpu_before[name] for name, spent in cpu_seconds(trees).items()}
        tally.accepted.update(tally_run.accepted)
        for config_id, moved in tally_run.per_config.items():
            tally.per_config[config_id] = tally.per_config.get(config_id, 0) + moved
        checks = verify(plane.database_url, tally)
        floors = []
        if args.floor_seconds > 0:
            for label, status, request in floor_requests():
                floor_tally = Tally()
                floor_cpu = cpu_seconds(trees)
                floor_begun = time.monotonic()
                drive_reads(port, shares, args.floor_seconds, request, status, floor_tally)
                floor_elapsed = time.monotonic() - floor_begun
                spent = {name: value - floor_cpu[name] for name, value in cpu_seconds(trees).items()}
                floors.append((label, floor_tally, floor_elapsed, spent))

    ordered = sorted(tally_run.latencies)
    ms = [value * 1000 for value in ordered]
    pacing = f"paced at {args.rate:g}/s in all" if args.rate else "closed loop"
    print("\nheartbeats against gunicorn + PostgreSQL + Redis on loopback (load generator on the same machine)")
    print(
        f"  gunicorn: {args.workers} workers x {args.threads} threads (gthread); load: {args.clients} client "
        f"threads ({pacing}), {args.nodes} nodes x {args.configs} configs, one report of {args.configs} per heartbeat"
    )
    print(f"  CPUs: {os.cpu_count()}; warm-up: {warm_count} heartbeats in 2 s, not counted")
    print(
        f"  heartbeats answered      {len(ordered):7d} in {elapsed:.1f} s = {len(ordered) / elapsed:7.1f} /s"
        "   target >= 330 /s"
    )
    if ms:
        print(
            f"  latency ms               p50 {statistics.median(ms):6.1f}   p95 {percentile(ms, 0.95):6.1f}   "
            f"p99 {percentile(ms, 0.99):6.1f}   max {ms[-1]:6.1f}   target p99 < 50"
        )
    cores = "   ".join(f"{name} {spent / elapsed:4.2f} cores" for name, spent in cpu.items())
    print(f"  CPU during the run       {cores}")
    if ordered:
        per_beat = "   ".join(f"{name} {spent / len(ordered) * 1000:4.1f}" for name, spent in cpu.items())
        print(f"  CPU ms per heartbeat     {per_beat}")
    print(f"  errors                   {sum(tally_run.errors.values())} {tally_run.errors or ''}".rstrip())
    print(f"  retried reports          {tally_run.retries} sent, {tally_run.duplicates} answered as duplicates")
    problems, summary = checks[:-1], checks[-1]
    print(f"  stored exactly once      {'yes' if not problems else 'NO: ' + '; '.join(problems)} ({summary})")
    if floors:
        print(f"\nthe stack's floor: the same clients and workers, closed loop, {args.floor_seconds:g} s each")
    for label, floor_tally, floor_elapsed, spent in floors:
        answered = sorted(value * 1000 for value in floor_tally.latencies)
        if not answered:
            print(f"  {label:26s} no request answered as expected {floor_tally.errors}")
            continue
        rate = len(answered) / floor_elapsed
        per_request = " + ".join(f"{value / len(answered) * 1000:.1f}" for value in spent.values())
        print(
            f"  {label:26s} {rate:7.1f} /s ({len(ordered) / elapsed / rate:.2f}x of it in heartbeats)   "
            f"p99 {percentile(answered, 0.99):6.1f} ms   CPU ms per request {per_request}   "
            f"errors {sum(floor_tally.errors.values())}"
        )


def process_trees(api_pid: int, database_url: str) -> dict[str, list[Any]]:
    """The processes whose CPU time the run costs: gunicorn (master + workers), PostgreSQL (postmaster + backends),
    and this process (the load generator)."""
    import psutil

    from harness.services import postmaster_of

    postmaster = postmaster_of(database_url)
    api = psutil.Process(api_pid)
    return {
        "gunicorn": [api, *api.children(recursive=True)],
        "postgres": [postmaster, *postmaster.children(recursive=True)],
        "load generator": [psutil.Process()],
    }


def cpu_seconds(trees: dict[str, list[Any]]) -> dict[str, float]:
    from harness.services import cpu_seconds as processes_cpu_seconds

    return {name: processes_cpu_seconds(processes) for name, processes in trees.items()}


def floor_requests() -> list[tuple[str, int, Callable[[SimNode], tuple[str, dict[str, str]]]]]:
    """The floor's requests, each (label, the status it must answer, node -> (path, headers))."""

    def bearer(node: SimNode) -> dict[str, str]:
        return {"Authorization": f"Bearer {node.token}"}

    return [
        ("GET /health, no token", 200, lambda node: ("/api/v1/health", {})),
        ("token checks only (403)", 403, lambda node: (f"/api/v1/nodes/{node.node_id + 1_000_000}", bearer(node))),
        ("GET /nodes/{own id}", 200, lambda node: (f"/api/v1/nodes/{node.node_id}", bearer(node))),
    ]


def drive_reads(
    port: int,
    shares: list[list[SimNode]],
    seconds: float,
    request: Callable[[SimNode], Any],
    status: int,
    tally: Tally,
) -> None:
    """One closed-loop thread per share sending REQUEST (node -> (path, headers)) round-robin over its nodes;
    an answer other than STATUS counts as an error."""
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(nodes: list[SimNode]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, errors = [], {}
        turn = 0
        while time.monotonic() < deadline:
            path, headers = request(nodes[turn % len(nodes)])
            turn += 1
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status != status:
                errors[f"HTTP {response.status}"] = errors.get(f"HTTP {response.status}", 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
        connection.close()
        with lock:
            tally.latencies += latencies
            for key, count in errors.items():
                tally.errors[key] = tally.errors.get(key, 0) + count

    in_threads(shares, run)


def in_threads(shares: list[list[SimNode]], work: Callable[[list[SimNode]], None]) -> None:
    """WORK(share) in one thread per non-empty share, all at once; returns when every one has."""
    threads = [threading.Thread(target=work, args=(share,)) for share in shares if share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drive_all(
    port: int, shares: list[list[SimNode]], seconds: float, retry_every: int, tally: Tally, rate: float = 0.0
) -> None:
    """Every share driven by its own thread; RATE heartbeats/s in all (spread evenly), or closed-loop when 0."""
    interval = len(shares) / rate if rate else 0.0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    in_threads(shares, lambda share: drive(port, share, deadline, retry_every, tally, lock, interval))


if __name__ == "__main__":
    main()
