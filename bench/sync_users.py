"""How long a user change takes to reach a node, by node size: playbooks/sync_users.yml on a podman node.

    .venv/bin/python bench/sync_users.py [--runs 5]

Starts one systemd container from the node image (scripts/node_image.sh) on a network of its own,
provisions it with the xray role (real V2Ray core), then times, over --runs runs each:
  - adding 1 user to a node that already serves 1,000 users, and one that serves 10,000;
  - a full resync of 10,000 users onto a node that serves none.
Each figure is the wall time of one `ansible-playbook playbooks/sync_users.yml --limit node` (what an
RQ job runs), and, inside it, the users module's own time (ANSIBLE's json callback task duration).
Prints p50/p95 and the ratio of the +1 sync at 10,000 vs 1,000 users. The container is removed at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from control_api.runners.ansible import link_collection  # noqa: E402
from harness.podman_node import build_node_image, molecule_lock, start_node  # noqa: E402

VENV_BIN = Path(sys.prefix) / "bin"
NODE = "rayfleet-bench-node"
ENV = {
    **os.environ,
    "CONTAINERS_CONF": str(REPO / "molecule" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
}
INBOUNDS = [
    {"profile": "vless-tcp-tls", "port": 8443},
    {"profile": "vless-ws-tls", "port": 8444, "path": "/ws"},
    {"profile": "vmess-ws-tls", "port": 8445, "path": "/vm"},
]


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=ENV, check=True, text=True, capture_output=True, **kwargs)


def users(count: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {"email": f"cfg-{n}", "id": str(uuid.UUID(int=n + 1, version=4)), "protocol": "vless" if n % 4 else "vmess"}
        for n in range(start, start + count)
    ]


def sync(workdir: Path, inventory: Path, user_list: list[dict[str, str]]) -> tuple[float, float]:
    """(playbook wall seconds, users-module seconds) for one sync_users.yml run."""
    extravars = workdir / "users.json"
    extravars.write_text(json.dumps({"xray_users": user_list}))
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/sync_users.yml",
            "--limit",
            NODE,
            "-e",
            f"@{extravars}",
        ],
        cwd=REPO,
        env={**ENV, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        text=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"sync failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    module = next(task for task in tasks if task["hosts"].get(NODE, {}).get("action") == "rayfleet.fleet.core_users")
    duration = module["task"]["duration"]
    seconds = datetime.fromisoformat(duration["end"].rstrip("Z")) - datetime.fromisoformat(
        duration["start"].rstrip("Z")
    )
    return wall, seconds.total_seconds()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.2f} s   p95 {p95:6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    build_node_image()
    # The playbooks use the collection rayfleet.fleet: ansible.cfg looks for it in .ansible/collections.
    link_collection(REPO / ".ansible" / "collections")
    # The node on a network of its own (start_node), under the lock every podman test takes.
    with (
        molecule_lock(),
        start_node(NODE, "bench_sync_users", "rayfleet-bench-sync"),
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
    ):
        workdir = Path(tmp)
        inventory = workdir / "inventory.json"
        host = {
            "ansible_connection": "containers.podman.podman",
            "xray_core": "v2ray",
            "xray_tls_self_signed": True,
            "xray_tls_server_name": "bench.rayfleet.test",
            "xray_inbounds": INBOUNDS,
        }
        inventory.write_text(json.dumps({"vpn_nodes": {"hosts": {NODE: host}}}))
        playbook = workdir / "provision.yml"
        playbook.write_text("- hosts: vpn_nodes\n  become: true\n  roles: [{role: rayfleet.fleet.xray}]\n")
        print("provisioning the bench node (real V2Ray core) ...", flush=True)
        provision = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
        )
        if provision.returncode != 0:
            raise SystemExit(f"provisioning failed:\n{provision.stdout[-3000:]}")
        figures: dict[str, list[tuple[float, float]]] = {}
        for size in (1000, 10000):
            base = users(size)
            sync(workdir, inventory, base)  # the node now serves SIZE users
            samples = []
            for run_number in range(args.runs):
                samples.append(sync(workdir, inventory, base + users(1, start=size + run_number)))
                sync(workdir, inventory, base)  # back to SIZE users, untimed
            figures[f"+1 user on a node with {size:>6,} users"] = samples
        full = []
        for _ in range(args.runs):
            sync(workdir, inventory, [])
            full.append(sync(workdir, inventory, users(10000)))
        figures["full resync of 10,000 users onto an empty node"] = full

    print(f"\nsync_users.yml on one podman node, V2Ray 4.34, {args.runs} runs each (wall = whole playbook run)")
    for label, samples in figures.items():
        print(
            f"  {label:48s} wall {percentiles([s[0] for s in samples])}   module {percentiles([s[1] for s in samples])}"
        )
    small = statistics.median(s[0] for s in figures["+1 user on a node with  1,000 users"])
    large = statistics.median(s[0] for s in figures["+1 user on a node with 10,000 users"])
    print(f"  ratio of the +1 sync, 10,000 vs 1,000 users: {large / small:.2f}x")


if __name__ == "__main__":
    main()
