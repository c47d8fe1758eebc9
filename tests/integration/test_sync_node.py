"""sync_node end to end: real PostgreSQL, real ansible-runner, a real podman systemd node with V2Ray 4.34.

One container for the module (start_node: the flags of the molecule scenarios, on a network of its
own), provisioned once with the xray role through run_playbook. The node's connection
(rayfleet.fleet.podman_pipelined) and the role's shape variables reach the inventory through sync_node's
node_vars hook, as a worker's configuration would.
What the node serves is read from the core's persisted /etc/rayfleet-core/config.json (what the
users module wrote and the core reloads), and one active config carries real traffic from the share
link control_api.links builds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from control_api.database import make_engine
from control_api.jobs.sync import node_inventory, sync_node
from control_api.links import Client, Inbound, build_link
from control_api.models import Node, SyncRun, User, UserConfig
from control_api.runners import run_playbook
from harness.origin import origin_server
from harness.podman_node import (
    CONTAINERS_CONF,
    NodeContainer,
    build_node_image,
    harness_lock,
    podman,
    start_node,
)
from harness.singbox import fetch_via_link

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CONTAINER = "rayfleet-sync-it"
NETWORK = "rayfleet-sync-it"
NODE_NAME = "sync-node"
TLS_NAME = "node1.rayfleet.test"
INBOUNDS = [
    {"profile": "vless-tcp-tls", "port": 8443},
    {"profile": "vmess-ws-tls", "port": 8444, "path": "/vm"},
]
ROLE_VARS = {
    "xray_core": "v2ray",
    "xray_tls_self_signed": True,
    "xray_tls_server_name": TLS_NAME,
    "xray_inbounds": INBOUNDS,
    "xray_blocked_destination_cidrs": ["127.0.0.0/8"],
}
CONNECTION_VARS = {
    "ansible_connection": "rayfleet.fleet.podman_pipelined",
    "ansible_host": CONTAINER,
    "ansible_python_interpreter": "/usr/bin/python3",
}


def node_vars(_node: Node) -> dict[str, Any]:
    return {**CONNECTION_VARS, **ROLE_VARS}


@pytest.fixture(scope="module")
def node_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeContainer]:
    """A provisioned podman node on a network of its own; holds the harness lock while it exists."""
    build_node_image()
    with harness_lock(), pytest.MonkeyPatch.context() as patch:
        # ansible-runner's child inherits the environment: the podman connection plugin needs this too.
        patch.setenv("CONTAINERS_CONF", str(CONTAINERS_CONF))
        with start_node(CONTAINER, "sync_node", NETWORK) as node:
            playbook = tmp_path_factory.mktemp("provision") / "provision.yml"
            playbook.write_text(
                json.dumps(
                    [{"name": "Provision", "hosts": "vpn_nodes", "become": True, "roles": ["rayfleet.fleet.xray"]}]
                )
            )
            inventory = {"all": {"children": {"vpn_nodes": {"hosts": {NODE_NAME: node_vars(None)}}}}}  # type: ignore[arg-type]
            result = run_playbook(str(playbook), inventory, {"xray_users": []}, limit=NODE_NAME, timeout=240)
            assert result.ok, f"provisioning failed: {result.status} rc={result.rc}: {result.error}"
            yield node


@pytest.fixture
def session_factory(settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def served_emails() -> dict[str, set[str]]:
    """inbound tag -> client emails, from the config the core (re)loads."""
    text = podman("exec", CONTAINER, "cat", "/etc/rayfleet-core/config.json", check=True).stdout
    config = json.loads(text)
    return {
        inbound["tag"]: {client["email"] for client in inbound.get("settings", {}).get("clients", [])}
        for inbound in config["inbounds"]
        if inbound.get("tag", "").startswith(("vless-", "vmess-"))
    }


def all_served() -> set[str]:
    return set().union(*served_emails().values())


CORE_API_SOURCE = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "core_api.py"
# Runs inside the node with the core API client's source before it: asks the *running* core, per inbound,
# whether it serves each email. Adding a user with a fresh UUID is refused with "already exists" exactly when
# the core has that email; an addition that succeeds is undone at once.
LIVE_PROBE = """
import json, sys, uuid
config = json.load(open("/etc/rayfleet-core/config.json"))
candidates = json.loads(sys.argv[1])
api = CoreAPI("127.0.0.1:10085", "v2ray")
live = {}
for inbound in config["inbounds"]:
    tag, protocol = inbound.get("tag", ""), inbound.get("protocol")
    if protocol not in ("vless", "vmess"):
        continue
    for email in candidates:
        try:
            api.add_user(tag, protocol, email, str(uuid.uuid4()))
        except CoreAPIError as exc:
            if exc.already_exists:
                live.setdefault(tag, []).append(email)
                continue
            raise
        api.remove_user(tag, email)
print(json.dumps(live))
"""


def live_served(candidates: set[str]) -> dict[str, set[str]]:
    """inbound tag -> which of CANDIDATES the running core serves, asked through the core's own API."""
    script = CORE_API_SOURCE.read_text() + LIVE_PROBE
    probe = podman("exec", "-i", CONTAINER, "python3", "-", json.dumps(sorted(candidates)), stdin=script)
    assert probe.returncode == 0, probe.stderr
    return {tag: set(emails) for tag, emails in json.loads(probe.stdout).items()}


def make_configs(session_factory, address: str) -> tuple[int, list[int]]:
    """A node row, a user and two pending configs (vless, vmess); desired_revision bumped. (node id, config ids)"""
    with session_factory() as session, session.begin():
        node = Node(
            name=NODE_NAME,
            region="local",
            location_tag="test",
            core="v2ray",
            public_ip=address,
            client_id=f"node-{uuid.uuid4().hex[:12]}",
            secret_hash="unused",
            status="active",
        )
        user = User(telegram_id=1001, subscription_token=uuid.uuid4().hex)
        session.add_all([node, user])
        session.flush()
        configs = [
            UserConfig(user_id=user.id, node_id=node.id, uuid=str(uuid.uuid4()), protocol=protocol, kind="full")
            for protocol in ("vless", "vmess")
        ]
        session.add_all(configs)
        node.desired_revision += 1
        session.flush()
        return node.id, [config.id for config in configs]


def bump(session_factory, node_id: int, change: Callable[[Session], None] | None = None) -> int:
    with session_factory() as session, session.begin():
        node = session.get(Node, node_id)
        if change is not None:
            change(session)
        node.desired_revision += 1
        return node.desired_revision


def state(session_factory, node_id: int) -> tuple[Node, dict[int, str]]:
    with session_factory() as session:
        node = session.get(Node, node_id)
        rows = session.execute(select(UserConfig.id, UserConfig.status).where(UserConfig.node_id == node_id)).all()
        statuses = {config_id: status for config_id, status in rows}
        return node, statuses


def sync(session_factory, node_id: int) -> SyncRun:
    return sync_node(session_factory, node_id, node_vars=node_vars, timeout=90)


def test_node_inventory_uses_the_row_and_the_hook():
    node = Node(name="fra-1", public_ip="203.0.113.7", core="xray")
    assert node_inventory(node) == {
        "all": {"children": {"vpn_nodes": {"hosts": {"fra-1": {"ansible_host": "203.0.113.7", "xray_core": "xray"}}}}}
    }
    hooked = node_inventory(node, lambda n: {"ansible_host": f"{n.name}.internal", "ansible_user": "ops"})
    assert hooked["all"]["children"]["vpn_nodes"]["hosts"]["fra-1"] == {
        "ansible_host": "fra-1.internal",
        "ansible_user": "ops",
        "xray_core": "xray",
    }


def test_sync_adds_keeps_and_removes_users_on_a_real_node(node_container, session_factory, tmp_path):
    node_id, (vless_id, vmess_id) = make_configs(session_factory, node_container.address)

    run = sync(session_factory, node_id)
    assert run.status == "succeeded", run.error
    assert (run.rc, run.added, run.removed) == (0, 2, 0)
    assert run.changed >= 1 and run.duration_ms > 0 and run.finished_at is not None
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == node.desired_revision == run.revision
    assert statuses == {vless_id: "active", vmess_id: "active"}
    served = served_emails()
    assert {f"cfg-{vless_id}", f"cfg-{vmess_id}"} == all_served()
    assert any(f"cfg-{vless_id}" in emails for tag, emails in served.items() if tag.startswith("vless-"))
    assert any(f"cfg-{vmess_id}" in emails for tag, emails in served.items() if tag.startswith("vmess-"))

    # Real bytes through the node with the share link of the active VLESS config.
    with session_factory() as session:
        vless = session.get(UserConfig, vless_id)
    link = build_link(
        Inbound("vless-tcp-tls", 8443, "", server_name=TLS_NAME, allow_insecure=True),
        Client(vless.uuid, vless.email),
        node_container.address,
        core="v2ray",
    )
    # The host, as the container sees it: the gateway of the test's own network.
    with origin_server(tmp_path / "origin", host=node_container.gateway) as (url, sha256):
        fetched = fetch_via_link(link, url, timeout=15)
    assert (fetched["status"], fetched["sha256"]) == (200, sha256)

    again = sync(session_factory, node_id)
    assert again.status == "succeeded", again.error
    assert (again.changed, again.added, again.removed) == (0, 0, 0)

    def suspend(session: Session) -> None:
        session.get(UserConfig, vmess_id).status = "suspended"

    revision = bump(session_factory, node_id, suspend)
    removed = sync(session_factory, node_id)
    assert removed.status == "succeeded", removed.error
    assert (removed.revision, removed.added, removed.removed) == (revision, 0, 1)
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == revision
    assert statuses == {vless_id: "active", vmess_id: "suspended"}
    assert all_served() == {f"cfg-{vless_id}"}


def test_a_failed_sync_changes_nothing_and_the_next_one_catches_up(node_container, session_factory):
    node_id, config_ids = make_configs(session_factory, node_container.address)
    podman("stop", "-t", "10", CONTAINER, check=True)
    try:
        failed = sync(session_factory, node_id)
    finally:
        podman("start", CONTAINER, check=True)
    assert failed.status == "failed"
    assert failed.rc not in (None, 0)
    assert failed.error.startswith(f"{NODE_NAME}: unreachable: "), failed.error
    with session_factory() as session:
        uuids = set(session.scalars(select(UserConfig.uuid)))
    assert not any(value in failed.error for value in uuids)
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == 0 < node.desired_revision
    assert set(statuses.values()) == {"pending"}

    node_container.wait_booted(units=("rayfleet-core",))
    recovered = sync(session_factory, node_id)
    assert recovered.status == "succeeded", recovered.error
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == node.desired_revision
    assert set(statuses.values()) == {"active"}
    assert all_served() == {f"cfg-{config_id}" for config_id in config_ids}


def test_a_bump_during_the_run_is_left_for_the_next_sync(node_container, session_factory):
    node_id, config_ids = make_configs(session_factory, node_container.address)
    late: list[int] = []

    def bump_then_run(*args: Any, **kwargs: Any):
        """A sale lands on the node while the playbook runs (after the users were read)."""

        def add_config(session: Session) -> None:
            user_id = session.scalar(select(User.id))
            config = UserConfig(
                user_id=user_id, node_id=node_id, uuid=str(uuid.uuid4()), protocol="vless", kind="trial"
            )
            session.add(config)
            session.flush()
            late.append(config.id)

        late_revision = bump(session_factory, node_id, add_config)
        late.append(late_revision)
        return run_playbook(*args, **kwargs)

    run = sync_node(session_factory, node_id, runner=bump_then_run, node_vars=node_vars, timeout=90)
    assert run.status == "succeeded", run.error
    late_id, late_revision = late
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == run.revision == late_revision - 1
    assert node.desired_revision == late_revision
    assert statuses[late_id] == "pending"
    assert f"cfg-{late_id}" not in all_served()

    caught_up = sync(session_factory, node_id)
    assert caught_up.status == "succeeded", caught_up.error
    assert (caught_up.revision, caught_up.added) == (late_revision, 1)
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == node.desired_revision == late_revision
    assert set(statuses.values()) == {"active"}
    assert all_served() == {f"cfg-{config_id}" for config_id in [*config_ids, late_id]}


def test_a_crashing_runner_is_a_failed_sync_not_an_exception(session_factory):
    node_id, _ = make_configs(session_factory, "203.0.113.9")

    def crash(*_args: Any, **_kwargs: Any):
        raise RuntimeError("ansible-runner could not start")

    run = sync_node(session_factory, node_id, runner=crash)
    assert (run.status, run.rc) == ("failed", None)
    assert run.error == "the playbook run crashed: RuntimeError: ansible-runner could not start"
    with session_factory() as session:
        assert session.scalar(select(SyncRun.status).where(SyncRun.id == run.id)) == "failed"
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == 0
    assert set(statuses.values()) == {"pending"}


def test_delta_syncs_stay_exact_after_a_restored_node_and_a_worker_killed_mid_sync(node_container, session_factory):
    """Each sync sends only the change when the node's state is known; a node restored from an old copy of its
    config, and a node whose last sync ran but was never recorded (the worker died), refuse the delta and get
    the full set at once. After every step the running core serves exactly the desired users, asked through
    its own API."""
    node_id, config_ids = make_configs(session_factory, node_container.address)
    sent: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any):
        sent.append(args[2])
        return run_playbook(*args, **kwargs)

    def sync_recorded() -> SyncRun:
        sent.clear()
        run = sync_node(session_factory, node_id, runner=recording, node_vars=node_vars, timeout=90)
        assert run.status == "succeeded", run.error
        return run

    def add_config(protocol: str = "vless") -> int:
        made: list[int] = []

        def add(session: Session) -> None:
            config = UserConfig(
                user_id=session.scalar(select(User.id)),
                node_id=node_id,
                uuid=str(uuid.uuid4()),
                protocol=protocol,
                kind="full",
                status="pending",
            )
            session.add(config)
            session.flush()
            made.append(config.id)

        bump(session_factory, node_id, add)
        return made[0]

    every: set[str] = set()

    def assert_exact(desired_ids: list[int]) -> None:
        desired = {f"cfg-{config_id}" for config_id in desired_ids}
        every.update(desired)
        live = live_served(every)
        assert set().union(*live.values()) == desired, "the running core serves other users than desired"
        assert all_served() == desired, "the persisted config lists other users than desired"

    sync_recorded()
    assert "xray_users_json" in sent[0], "the first sync of a node the control plane knows nothing of is a full one"
    assert_exact(config_ids)

    third = add_config()
    sync_recorded()
    (sent_delta,) = sent
    assert "xray_users_json" not in sent_delta
    delta = json.loads(sent_delta["xray_users_delta_json"])
    assert [user["email"] for user in delta["add"]] == [f"cfg-{third}"]
    assert delta["remove"] == []
    assert_exact([*config_ids, third])

    # A copy of the node's config and state as of now; then one more revision goes live.
    backup = {
        name: podman("exec", CONTAINER, "cat", f"/etc/rayfleet-core/{name}", check=True).stdout
        for name in ("config.json", "users-state.json")
    }
    fourth = add_config("vmess")
    sync_recorded()
    assert_exact([*config_ids, third, fourth])

    # The node is restored from the copy (the core keeps running and still serves the fourth config); then the
    # first config is suspended and a fifth sold.
    for name, text in backup.items():
        podman("exec", "-i", CONTAINER, "sh", "-c", f"cat > /etc/rayfleet-core/{name}", stdin=text, check=True)

    def suspend_first(session: Session) -> None:
        session.get(UserConfig, config_ids[0]).status = "suspended"

    bump(session_factory, node_id, suspend_first)
    fifth = add_config()
    sync_recorded()
    assert len(sent) == 2, "delta refused, then the full set"
    assert "xray_users_delta_json" in sent[0] and "xray_users_json" in sent[1]
    assert f"cfg-{config_ids[0]}" in json.loads(sent[1]["xray_users_also_remove_json"])
    assert_exact([config_ids[1], third, fourth, fifth])

    # The worker dies after the playbook ran but before it recorded the run: the node is ahead of what the
    # control plane knows.
    sixth = add_config()

    def dies_after_the_run(*args: Any, **kwargs: Any):
        run_playbook(*args, **kwargs)
        raise RuntimeError("the worker was killed")

    killed = sync_node(session_factory, node_id, runner=dies_after_the_run, node_vars=node_vars, timeout=90)
    assert killed.status == "failed"
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision < node.desired_revision and statuses[sixth] == "pending"

    def suspend_third(session: Session) -> None:
        session.get(UserConfig, third).status = "suspended"

    bump(session_factory, node_id, suspend_third)
    sync_recorded()
    assert len(sent) == 2 and "xray_users_json" in sent[1], "the node's state was ahead of the delta's base"
    assert_exact([config_ids[1], fourth, fifth, sixth])
    node, statuses = state(session_factory, node_id)
    assert node.applied_revision == node.desired_revision == node.served_snapshot_revision
