"""What one node heartbeat costs the API's code and PostgreSQL, without gunicorn, threads or the network.

    .venv/bin/python bench/heartbeat_cost.py [--configs 20] [--heartbeats 500] [--rounds 3] [--profile FILE]

bench/heartbeats.py measures the whole control plane under load, where the figures move with the scheduler and
with the machine's speed from one minute to the next. This bench runs the request path alone, one heartbeat at a
time, so that two versions of the code can be compared run for run: the Flask app in this process (its test
client; its own request building costs a few tenths of a millisecond of what is printed), on its own PostgreSQL
and Redis (harness/services.py). A node is created and logs in through the API, --configs configs are sold on
it, and each heartbeat carries host metrics and one traffic report of all of them (a fresh report_id), as the
agent sends it.

Prints, per round of --heartbeats heartbeats: CPU ms per heartbeat in this process (the API's code) and in
PostgreSQL (postmaster and backends), and the statements the API sent per heartbeat. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=20, help="configs on the node, all in each report")
    parser.add_argument("--heartbeats", type=int, default=500, help="heartbeats per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the rounds (pstats) to FILE")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from sqlalchemy import event

    from control_api import create_app, migrate
    from control_api.database import make_engine
    from harness.services import cpu_seconds, postgres_server, postmaster_of, redis_server

    with postgres_server() as database_url, redis_server() as redis_url:
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        os.environ.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            JWT_SECRET_KEY=secrets.token_urlsafe(48),
            LOG_LEVEL="WARNING",
            ACCESS_TOKEN_TTL_SECONDS="7200",  # noqa: S106 (a lifetime, not a secret)
        )
        for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL", "JWT_SECRET_KEY_FILE"):
            os.environ.pop(name, None)
        app = create_app()
        client = app.test_client()
        node_headers, config_ids = _node_with_configs(app, client, args.configs)
        rng = random.Random(1)
        bodies = [_heartbeat(config_ids, rng) for _ in range(50)]
        for body in bodies:  # warm-up: compiled caches, prepared statements, the pool
            assert client.post("/api/v1/nodes/heartbeat", headers=node_headers, json=body).status_code == 200

        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(app.extensions["rayfleet.db"].engine, "before_cursor_execute", count)
        postmaster = postmaster_of(database_url)

        def postgres_cpu() -> float:  # the postmaster and its backends, as they are now
            return cpu_seconds([postmaster, *postmaster.children(recursive=True)])

        print("\none heartbeat at a time: Flask test client in this process, PostgreSQL + Redis on loopback")
        print(f"  {args.configs} configs in each heartbeat's report; {args.heartbeats} heartbeats a round")
        api_ms, postgres_ms = [], []
        # CPU time, not wall time: waiting on PostgreSQL is not the API's cost.
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for number in range(1, args.rounds + 1):
            bodies = [_heartbeat(config_ids, rng) for _ in range(args.heartbeats)]
            statements = 0
            database_before, api_before = postgres_cpu(), time.process_time()
            if profiler:
                profiler.enable()
            for body in bodies:
                response = client.post("/api/v1/nodes/heartbeat", headers=node_headers, json=body)
                assert response.status_code == 200, response.json
                assert response.json["accepted"], response.json
            if profiler:
                profiler.disable()
            api_ms.append(1000 * (time.process_time() - api_before) / args.heartbeats)
            postgres_ms.append(1000 * (postgres_cpu() - database_before) / args.heartbeats)
            print(
                f"  round {number}: CPU ms per heartbeat   API {api_ms[-1]:5.2f}   PostgreSQL {postgres_ms[-1]:5.2f}"
                f"   statements sent per heartbeat {statements / args.heartbeats:.1f}"
            )
        api, database = statistics.median(api_ms), statistics.median(postgres_ms)
        load = os.getloadavg()[0]
        print(f"  median of rounds:      API {api:5.2f}   PostgreSQL {database:5.2f}   (load average {load:.1f})")
        if profiler:
            profiler.dump_stats(args.profile)
            print(f"  profile of the rounds (the profiler's own cost inflates the figures above): {args.profile}")


def _node_with_configs(app: Any, client: Any, count: int) -> tuple[dict[str, str], list[int]]:
    output = app.test_cli_runner().invoke(args=["create-admin", "bench-admin"]).output
    password = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)["password"]
    login = {"kind": "admin", "username": "bench-admin", "password": password}
    admin = {"Authorization": f"Bearer {client.post('/api/v1/auth/token', json=login).json['access_token']}"}
    plan = {"name": "bench", "location_tag": "bench", "duration_days": 30, "max_devices": 3}
    plan = client.post("/api/v1/plans", headers=admin, json={**plan, "data_limit_mb": 1_000_000, "price_cents": 500})
    node = {
        "name": "n1",
        "region": "bench",
        "location_tag": "bench",
        "public_ip": "198.18.0.1",
        "capacity_score": 10000,
    }
    node = client.post("/api/v1/nodes", headers=admin, json=node).json
    secret = {"client_id": node["client_id"], "client_secret": node["client_secret"]}
    token = client.post("/api/v1/nodes/register", json=secret).json["access_token"]
    config_ids = []
    for number in range(count):
        user = client.put(f"/api/v1/users/telegram/{7_000_000 + number}", headers=admin, json={}).json
        sale = {"plan_id": plan.json["id"], "protocol": "vless", "node_id": node["id"]}
        config_ids.append(client.post(f"/api/v1/users/{user['id']}/configs", headers=admin, json=sale).json["id"])
    return {"Authorization": f"Bearer {token}"}, config_ids


def _heartbeat(config_ids: list[int], rng: random.Random) -> dict[str, Any]:
    end = datetime.now(UTC)
    usage = [
        {"email": f"cfg-{config_id}", "uplink": rng.randrange(1, 50_000), "downlink": rng.randrange(1, 500_000)}
        for config_id in config_ids
    ]
    report = {
        "report_id": str(uuid.uuid4()),
        "period_start": (end - timedelta(seconds=60)).isoformat(),
        "period_end": end.isoformat(),
        "usage": usage,
    }
    metrics = {"cpu": 12.5, "mem": 30.1, "bandwidth_in": 100_000, "bandwidth_out": 200_000, "latency_ms": 12.3}
    return {**metrics, "core_active": True, "incidents": [], "devices": [], "reports": [report]}


if __name__ == "__main__":
    main()
