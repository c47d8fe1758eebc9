"""What a user change costs on the production path, by node size: the sync job's sync_node on a podman node.

    .venv/bin/python bench/sync_users.py [--runs 3] [--sizes 1000,10000,100000] [--full-sizes 10000,100000]

Production path, end to end: a real PostgreSQL holds the node and its configs; each change is a config
inserted and the node's revision bumped, then control_api.jobs.sync.sync_node (what the RQ job
`sync-node-<id>` calls) reads the desired set, plans the delta (services/deltas.py) and runs
playbooks/sync_users.yml through control_api/runners/ansible.py (ansible-runner, extravars in a private
file on tmpfs) against one systemd container from the node image, provisioned with the xray role (real
V2Ray core).

Figures, over --runs runs each (p50 / p95):
  - +1 user on a node that serves 1,000, 10,000 and 100,000 users (a delta);
  - a full resync of 10,000 and 100,000 users onto a node that serves none (every user an API call), and
    the same set sent in full again (the usual resync: a node whose state is unknown but serves them);
  - for comparison, +1 sent as the full set (what every sync sent before delta syncs);
  - the floor: the runner with an empty play, and with one ping of the node.
Each as three times: the whole sync_node call (database reads and writes included), the playbook run
(ansible-runner's wall time), and the users module's own time on the node. Ratios of the +1 figures are
from the same process and node, side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import delete, insert, select, text, update  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from control_api import migrate  # noqa: E402
from control_api.database import make_engine  # noqa: E402
from control_api.jobs.sync import sync_node  # noqa: E402
from control_api.models import Node, User, UserConfig  # noqa: E402
from control_api.runners.ansible import PlaybookResult, link_collection, run_playbook  # noqa: E402
from harness.podman_node import CONTAINERS_CONF, build_node_image, machine_lock, start_node  # noqa: E402
from harness.services import postgres_server  # noqa: E402

NODE = "rayfleet-bench-node"
INBOUNDS = [
    {"profile": "vless-tcp-tls", "port": 8443},
    {"profile": "vless-ws-tls", "port": 8444, "path": "/ws"},
    {"profile": "vmess-ws-tls", "port": 8445, "path": "/vm"},
]
# How Ansible reaches the bench node: rayfleet.fleet.podman_pipelined sends each module on standard input
# (one `podman exec`), as production's SSH with pipelining does (ansible.cfg); --connection
# containers.podman.podman gives the figures of before, four `podman exec` per module.
CONNECTION = "rayfleet.fleet.podman_pipelined"
NODE_VARS = {
    "ansible_connection": CONNECTION,
    "ansible_host": NODE,
    "ansible_python_interpreter": "/usr/bin/python3",
    "xray_core": "v2ray",
    "xray_tls_self_signed": True,
    "xray_tls_server_name": "bench.rayfleet.test",
    "xray_inbounds": INBOUNDS,
}
Sample = tuple[float, float, float]  # (sync_node seconds, playbook seconds, users module seconds)


class Bench:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self.results: list[PlaybookResult] = []
        with session_factory() as session, session.begin():
            node = Node(
                name=NODE,
                region="local",
                location_tag="bench",
                core="v2ray",
                client_id=f"bench-{uuid.uuid4().hex[:8]}",
                secret_hash="unused",  # noqa: S106 - no agent logs in to the bench node
                status="active",
            )
            user = User(telegram_id=4242, subscription_token=uuid.uuid4().hex)
            session.add_all([node, user])
            session.flush()
            self.node_id, self.user_id = node.id, user.id

    def runner(self, *args: Any, **kwargs: Any) -> PlaybookResult:
        result = run_playbook(*args, **kwargs)
        self.results.append(result)
        return result

    def add_configs(self, count: int) -> None:
        """COUNT new active configs on the node (one INSERT per 10,000), and one revision bump."""
        with self.session_factory() as session, session.begin():
            rows = [
                {
                    "user_id": self.user_id,
                    "node_id": self.node_id,
                    "uuid": str(uuid.uuid4()),
                    "protocol": "vmess" if n % 4 == 0 else "vless",
                    "kind": "full",
                    "status": "active",
                }
                for n in range(count)
            ]
            for start in range(0, len(rows), 10_000):
                session.execute(insert(UserConfig), rows[start : start + 10_000])
            self.bump(session)

    def analyze(self) -> None:
        """Statistics after a bulk load, as autovacuum gathers them within a minute or so on a live fleet: without
        them PostgreSQL may plan a sync's reads for a table it believes empty."""
        with self.session_factory() as session, session.begin():
            session.execute(text("ANALYZE user_configs, node_served_users"))

    def clear(self) -> None:
        with self.session_factory() as session, session.begin():
            session.execute(delete(UserConfig).where(UserConfig.node_id == self.node_id))
            self.bump(session)

    def bump(self, session: Session) -> None:
        session.execute(update(Node).where(Node.id == self.node_id).values(desired_revision=Node.desired_revision + 1))

    def served(self) -> int:
        with self.session_factory() as session:
            return len(session.scalars(select(UserConfig.id).where(UserConfig.node_id == self.node_id)).all())

    def sync(self, full: bool = False) -> Sample:
        """One sync_node call; (its seconds, the playbook's, the users module's)."""
        self.results.clear()
        started = time.perf_counter()
        run = sync_node(
            self.session_factory, self.node_id, runner=self.runner, node_vars=lambda _n: NODE_VARS, full=full
        )
        elapsed = time.perf_counter() - started
        if run.status != "succeeded":
            raise SystemExit(f"the sync failed: {run.error}")
        playbook = sum(result.duration_ms for result in self.results) / 1000
        module = sum(result.users_module_seconds for result in self.results)
        if len(self.results) > 1:  # the node refused the delta: the sync sent the full set in a second run
            refusals = "; ".join(reason for result in self.results for reason in result.resync_hosts.values())
            print(f"    (this sync took {len(self.results)} playbook runs: {refusals})", flush=True)
        return elapsed, playbook, module


def floor(workdir: Path) -> dict[str, list[float]]:
    """The runner's cost with nothing to do: an empty play, and one ping of the node (connection + module)."""
    inventory = {"all": {"children": {"vpn_nodes": {"hosts": {NODE: NODE_VARS}}}}}
    plays = {
        "empty play (the runner's floor)": [],
        "one ping of the node": [{"name": "ping", "ansible.builtin.ping": {}}],
    }
    figures: dict[str, list[float]] = {}
    for label, tasks in plays.items():
        playbook = workdir / f"floor-{len(figures)}.yml"
        playbook.write_text(
            f'[{{"hosts": "vpn_nodes", "become": true, "gather_facts": false, "tasks": {tasks!r}}}]'.replace("'", '"')
        )
        samples = []
        for _ in range(5):
            result = run_playbook(str(playbook), inventory, {}, limit=NODE, timeout=120)
            if not result.ok:
                raise SystemExit(f"the floor play failed: {result.error}")
            samples.append(result.duration_ms / 1000)
        figures[label] = samples
    return figures


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(label: str, samples: list[Sample]) -> str:
    parts = []
    for name, index in (("sync_node", 0), ("playbook", 1), ("module", 2)):
        values = [sample[index] for sample in samples]
        parts.append(f"{name} {statistics.median(values):6.2f}/{pct(values, 0.95):6.2f} s")
    return f"  {label:44s} " + "   ".join(parts)


def measure(bench: Bench, runs: int, sizes: list[int], full_sizes: list[int], say: Callable[[str], None]) -> None:
    plus_one: dict[int, list[Sample]] = {}
    as_full: dict[int, list[Sample]] = {}
    for size in sizes:
        bench.clear()
        bench.add_configs(size)
        bench.sync(full=True)  # the node serves SIZE users, the control plane knows it
        bench.analyze()
        samples = []
        for _ in range(runs):
            bench.add_configs(1)
            samples.append(bench.sync())
        plus_one[size] = samples
        if size <= 10_000:
            comparison = []
            for _ in range(runs):
                bench.add_configs(1)
                comparison.append(bench.sync(full=True))
            as_full[size] = comparison
        say(line(f"+1 user at {size:>7,} users (delta)", samples))
    full_samples: dict[int, list[Sample]] = {}
    known_samples: dict[int, list[Sample]] = {}
    for size in full_sizes:
        samples, known = [], []
        for _ in range(runs):
            bench.clear()
            bench.sync(full=True)  # a node that serves none
            bench.add_configs(size)
            samples.append(bench.sync(full=True))
            known.append(bench.sync(full=True))  # the usual resync: the node serves them, its state is unknown
        full_samples[size] = samples
        known_samples[size] = known
        say(line(f"full resync of {size:>7,} users", samples))
        say(line(f"full resync, node serves all {size:>7,}", known))

    print(
        f"\nsync_node -> run_playbook -> sync_users.yml, one podman node ({NODE_VARS['ansible_connection']}), "
        f"V2Ray 4.34, {runs} runs each"
    )
    print("  figure (p50/p95)                             whole sync_node      playbook run         users module")
    for size, samples in plus_one.items():
        print(line(f"+1 user at {size:>7,} users (delta)", samples))
    for size, samples in full_samples.items():
        print(line(f"full resync of {size:>7,} users", samples))
        print(line(f"full resync, node serves all {size:>7,}", known_samples[size]))
    for size, samples in as_full.items():
        print(line(f"comparison: +1 at {size:>6,} sent as the full set", samples))
    smallest = min(plus_one)
    for size in plus_one:
        if size == smallest:
            continue
        ratios = [
            statistics.median(s[i] for s in plus_one[size]) / statistics.median(s[i] for s in plus_one[smallest])
            for i in range(3)
        ]
        print(
            f"  ratio +1 at {size:,} vs +1 at {smallest:,}: sync_node {ratios[0]:.2f}x  playbook {ratios[1]:.2f}x"
            f"  module {ratios[2]:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--full-sizes", default="10000,100000")
    parser.add_argument("--connection", default=CONNECTION, help="the node's ansible_connection")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    full_sizes = [int(size) for size in args.full_sizes.split(",") if size]
    NODE_VARS["ansible_connection"] = args.connection
    os.environ["CONTAINERS_CONF"] = str(CONTAINERS_CONF)  # ansible-runner's child (the podman connection)
    build_node_image()
    link_collection(REPO / ".ansible" / "collections")
    with (
        postgres_server() as database_url,
        machine_lock(),
        start_node(NODE, "bench_sync_users", "rayfleet-bench-sync"),
        tempfile.TemporaryDirectory(prefix="rayfleet-bench-") as tmp,
    ):
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        workdir = Path(tmp)
        provision = workdir / "provision.yml"
        provision.write_text('[{"hosts": "vpn_nodes", "become": true, "roles": ["rayfleet.fleet.xray"]}]')
        inventory = {"all": {"children": {"vpn_nodes": {"hosts": {NODE: NODE_VARS}}}}}
        print("provisioning the bench node (real V2Ray core) ...", flush=True)
        result = run_playbook(str(provision), inventory, {"xray_users": []}, limit=NODE, timeout=600)
        if not result.ok:
            raise SystemExit(f"provisioning failed: {result.error}")
        floors = floor(workdir)
        bench = Bench(sessionmaker(engine, expire_on_commit=False))
        measure(bench, args.runs, sizes, full_sizes, lambda text: print(text, flush=True))
        for label, samples in floors.items():
            print(f"  floor: {label:37s} p50 {statistics.median(samples):6.2f} s   p95 {pct(samples, 0.95):6.2f} s")
        engine.dispose()


if __name__ == "__main__":
    main()
