"""What a fleet-wide change costs: one playbook run per node vs one batched run over every dirty node.

    .venv/bin/python bench/fleet_sync.py [--nodes 10] [--users 200] [--runs 3] [--forks 10]

--nodes systemd containers from the node image on one podman network of the bench's own, provisioned in one
run with the xray role (real V2Ray cores); a real PostgreSQL holds them and --users configs each. Then, --runs
times each, every node gets one more config at once (all dirty, as after an outage, a ban touching many nodes
or a migration wave) and is synced:
  - one run per node: control_api.jobs.sync.sync_node for each node in turn (what one worker does with the
    per-node jobs);
  - batched: control_api.jobs.sync.sync_nodes over all of them, one playbook run with --forks.
Printed: wall seconds and CPU seconds (this process and its children: ansible-playbook, its forks, podman),
p50 over the runs, their ratios, and an estimate for 1,000 nodes from the per-node figures. The containers
and the network are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert, update  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from control_api import migrate  # noqa: E402
from control_api.database import make_engine  # noqa: E402
from control_api.jobs.sync import sync_node, sync_nodes  # noqa: E402
from control_api.models import Node, User, UserConfig  # noqa: E402
from control_api.runners.ansible import link_collection, run_playbook  # noqa: E402
from harness.podman_node import CONTAINERS_CONF, build_node_image, join_node, machine_lock, start_node  # noqa: E402
from harness.services import postgres_server  # noqa: E402

NETWORK = "rayfleet-bench-fleet-sync"
LABEL = "bench_fleet_sync"
# rayfleet.fleet.podman_pipelined: one `podman exec` per module, as production's pipelined SSH;
# --connection containers.podman.podman gives the figures of before.
ROLE_VARS = {
    "ansible_connection": "rayfleet.fleet.podman_pipelined",
    "ansible_python_interpreter": "/usr/bin/python3",
    "xray_core": "v2ray",
    "xray_tls_self_signed": True,
    "xray_tls_server_name": "bench.rayfleet.test",
    "xray_inbounds": [
        {"profile": "vless-tcp-tls", "port": 8443},
        {"profile": "vmess-ws-tls", "port": 8444, "path": "/vm"},
    ],
}


def node_vars(node: Node) -> dict[str, Any]:
    return {**ROLE_VARS, "ansible_host": node.name}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_fleet(session_factory: sessionmaker, names: list[str], users: int) -> list[int]:
    with session_factory() as session, session.begin():
        user = User(telegram_id=777, subscription_token=uuid.uuid4().hex)
        nodes = [
            Node(
                name=name,
                region="local",
                location_tag="bench",
                core="v2ray",
                client_id=f"bench-{uuid.uuid4().hex[:8]}",
                secret_hash="unused",  # noqa: S106 - no agent logs in to a bench node
                status="active",
                desired_revision=1,
            )
            for name in names
        ]
        session.add(user)
        session.add_all(nodes)
        session.flush()
        rows = [
            {"user_id": user.id, "node_id": node.id, "uuid": str(uuid.uuid4()), "kind": "full", "status": "active"}
            for node in nodes
            for _ in range(users)
        ]
        session.execute(insert(UserConfig), rows)
        return [node.id for node in nodes]


def dirty_all(session_factory: sessionmaker, node_ids: list[int]) -> None:
    """One new config on every node, one revision bump each, in one transaction."""
    with session_factory() as session, session.begin():
        user_id = session.query(User.id).scalar()
        rows = [
            {"user_id": user_id, "node_id": node_id, "uuid": str(uuid.uuid4()), "kind": "full"} for node_id in node_ids
        ]
        session.execute(insert(UserConfig), rows)
        session.execute(update(Node).where(Node.id.in_(node_ids)).values(desired_revision=Node.desired_revision + 1))


def timed(action: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    action()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--connection", default=ROLE_VARS["ansible_connection"], help="the nodes' ansible_connection")
    args = parser.parse_args()
    ROLE_VARS["ansible_connection"] = args.connection
    os.environ["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    build_node_image()
    link_collection(REPO / ".ansible" / "collections")
    names = [f"rayfleet-bench-fs-{n}" for n in range(args.nodes)]
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_server())
        stack.enter_context(machine_lock())
        stack.enter_context(start_node(names[0], LABEL, NETWORK))
        for name in names[1:]:
            stack.enter_context(join_node(name, LABEL, NETWORK))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rayfleet-bench-")))
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        session_factory = sessionmaker(engine, expire_on_commit=False)
        playbook = tmp / "provision.yml"
        playbook.write_text('[{"hosts": "vpn_nodes", "become": true, "roles": ["rayfleet.fleet.xray"]}]')
        hosts = {name: {**ROLE_VARS, "ansible_host": name} for name in names}
        print(f"provisioning {args.nodes} nodes in one run ...", flush=True)
        provisioned = run_playbook(
            str(playbook),
            {"all": {"children": {"vpn_nodes": {"hosts": hosts}}}},
            {"xray_users": []},
            limit=",".join(names),
            timeout=1800,
            forks=args.forks,
        )
        if not provisioned.ok:
            raise SystemExit(f"provisioning failed: {provisioned.error}")
        node_ids = make_fleet(session_factory, names, args.users)
        first = sync_nodes(session_factory, node_ids, node_vars=node_vars, forks=args.forks)  # full sets
        assert all(run.status == "succeeded" for run in first.values()), [run.error for run in first.values()]

        def per_node() -> None:
            for node_id in node_ids:
                run = sync_node(session_factory, node_id, node_vars=node_vars)
                assert run.status == "succeeded", run.error

        def batched() -> None:
            runs = sync_nodes(session_factory, node_ids, node_vars=node_vars, forks=args.forks)
            failed = [run.error for run in runs.values() if run.status != "succeeded"]
            if len(runs) != len(node_ids) or failed:
                raise SystemExit(f"the batched sync failed: {failed}")

        figures: dict[str, list[tuple[float, float]]] = {"one run per node": [], "batched": []}
        for _ in range(args.runs):
            for label, action in (("one run per node", per_node), ("batched", batched)):
                dirty_all(session_factory, node_ids)
                figures[label].append(timed(action))
                print(
                    f"  {label:17s} wall {figures[label][-1][0]:6.2f} s  cpu {figures[label][-1][1]:6.2f} s", flush=True
                )
        engine.dispose()

    wall = {label: statistics.median(sample[0] for sample in samples) for label, samples in figures.items()}
    cpu = {label: statistics.median(sample[1] for sample in samples) for label, samples in figures.items()}
    cores = os.cpu_count() or 1
    print(
        f"\n{args.nodes} podman nodes ({args.connection}) dirty at once, +1 config each ({args.users} served), "
        f"{args.runs} runs, p50"
    )
    print(f"  {'':18s} {'wall s':>8s} {'CPU s':>8s}")
    for label in figures:
        print(f"  {label:18s} {wall[label]:8.2f} {cpu[label]:8.2f}")
    print(
        f"  batched / per node: wall {wall['batched'] / wall['one run per node']:.2f}x,"
        f" CPU {cpu['batched'] / cpu['one run per node']:.2f}x"
    )
    per_node_cpu = cpu["one run per node"] / args.nodes
    batched_cpu = cpu["batched"] / args.nodes
    print(
        "  on paper, 1,000 nodes dirty at once (CPU per node scales linearly; wall = CPU / cores when the forks keep"
        f" the {cores} cores busy):"
    )
    print(
        f"    one run per node: {per_node_cpu * 1000:7.0f} CPU s, {wall['one run per node'] / args.nodes * 1000:7.0f} s"
        " wall on one worker"
    )
    print(f"    batched:          {batched_cpu * 1000:7.0f} CPU s, {batched_cpu * 1000 / cores:7.0f} s wall at best")


if __name__ == "__main__":
    main()
