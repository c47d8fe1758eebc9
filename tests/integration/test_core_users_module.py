"""The module rayfleet.fleet.core_users, run by the real ansible-playbook against a real V2Ray core on loopback.

No containers: each test starts V2Ray 4.34 with the shape the role's filter renders (vless-tcp-tls and
vmess-ws-tls on free ports, the API on a free port, a self-signed certificate), runs the module from
the collection (plugins/modules/core_users.py, by its FQCN, the collection on the collections path)
through ansible-playbook (JSON callback), and proves every live change with a real client: sing-box
driven by the share link control_api.links builds, fetching from a local origin.
A removed user's *new* connection must fail (the API never cuts open ones). No UUID may ever appear in
Ansible's output, at any verbosity.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from control_api.links import Client, Inbound, build_link
from harness.origin import origin_server
from harness.singbox import ByteCounter, ProxyError, fetch_via_link
from tests.fixtures.xray_role import (
    V2RayProcess,
    collection_module,
    collections_dir,
    core_api,
    core_check,
    core_filter,
    free_ports,
    self_signed_certificate,
    v2ray_binary,
)

pytestmark = pytest.mark.slow

TLS_NAME = "node1.rayfleet.test"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ANY_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Destinations users may not reach; not loopback here, because the test origin lives there.
BLOCKED_CIDRS = ["10.0.0.0/8", "169.254.0.0/16"]


@dataclass(frozen=True)
class User:
    email: str
    protocol: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()), repr=False)  # keep UUIDs out of reports

    def as_role_user(self) -> dict[str, str]:
        return {"email": self.email, "id": self.id, "protocol": self.protocol}


@dataclass
class Node:
    """A real core serving the role's shape, and everything a test needs to drive and probe it."""

    workdir: Path
    inbounds: list[dict[str, Any]]  # the role's xray_inbounds
    shape: dict[str, Any]
    core: V2RayProcess
    api_port: int
    origin: tuple[str, str]
    uuids_seen: set[str] = field(default_factory=set, repr=False)

    @property
    def shape_path(self) -> Path:
        return self.workdir / "shape.json"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.json"

    def tag(self, profile: str) -> str:
        return next(item["tag"] for item in self.shape["inbounds"] if item["tag"].startswith(profile + "-"))

    def desired(self, users: list[User]) -> list[dict[str, Any]]:
        """What the module makes the inbounds serve (as in the persisted config)."""
        flt = core_filter()
        return flt.core_desired_users(flt.core_inbound_meta(self.inbounds), [user.as_role_user() for user in users])

    def args(self, users: list[User] | list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
        """The module's arguments, as roles/xray/tasks/users.yml passes them (users as JSON text)."""
        raw = [user.as_role_user() if isinstance(user, User) else user for user in users]
        self.uuids_seen.update(str(user.get("id")) for user in raw)
        return {
            "shape_path": str(self.shape_path),
            "config_path": str(self.config_path),
            "inbounds": core_filter().core_inbound_meta(self.inbounds),
            "users": json.dumps(raw),
            "core": "v2ray",
            "api_address": f"127.0.0.1:{self.api_port}",
            "test_command": [v2ray_binary(), "-test", "-config"],
            "owner": pwd.getpwuid(os.getuid()).pw_name,
            "group": grp.getgrgid(os.getgid()).gr_name,
            "mode": "0640",
            "access_log": str(self.workdir / "access.log"),
            "ports": [int(item["port"]) for item in self.inbounds],
            **overrides,
        }

    def link(self, user: User) -> str:
        profile = "vless-tcp-tls" if user.protocol == "vless" else "vmess-ws-tls"
        entry = next(item for item in self.inbounds if item["profile"] == profile)
        inbound = Inbound(profile, entry["port"], entry.get("path", ""), server_name=TLS_NAME, allow_insecure=True)
        return build_link(inbound, Client(user.id, user.email), "127.0.0.1", core="v2ray")

    def serves(self, user: User) -> bool:
        """Whether a fresh connection of USER through the core fetches the origin's file intact."""
        url, sha256 = self.origin
        try:
            result = fetch_via_link(self.link(user), url, timeout=5)
        except ProxyError:
            return False
        return result["status"] == 200 and result["sha256"] == sha256

    def run(self, *steps: dict[str, Any], check: bool = False, verbosity: int = 0) -> list[dict[str, Any]]:
        """Run the module once per step (in one playbook, failures ignored); return each step's result."""
        return run_playbook(self, list(steps), check=check, verbosity=verbosity)[0]


def run_playbook(
    node: Node, steps: list[dict[str, Any]], check: bool = False, verbosity: int = 0
) -> tuple[list[dict[str, Any]], str]:
    """ansible-playbook with the collection on its path; returns (results, whole output)."""
    run_dir = node.workdir / f"ansible-{len(list(node.workdir.glob('ansible-*')))}"
    run_dir.mkdir()
    tasks = [
        {"name": f"step {index}", "rayfleet.fleet.core_users": args, "ignore_errors": True}
        for index, args in enumerate(steps)
    ]
    playbook = run_dir / "playbook.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], indent=2))
    (run_dir / "inventory").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (run_dir / "ansible.cfg").write_text("[defaults]\n")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"),
        # The collection by its name, as the roles use it: no library or module_utils path.
        "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "local-tmp"),
        "ANSIBLE_REMOTE_TMP": str(run_dir / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    command = [str(ANSIBLE_PLAYBOOK), "-i", str(run_dir / "inventory"), str(playbook)]
    if check:
        command.append("--check")
    if verbosity:
        command.append("-" + "v" * verbosity)
    completed = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    leaked = [value for value in node.uuids_seen if value.lower() in output.lower()]
    assert not leaked, f"{len(leaked)} UUID(s) appear in Ansible's output"
    # With -v.. the JSON document follows Ansible's own lines; it starts at the first line that is "{".
    document = json.loads(completed.stdout[completed.stdout.index("{\n") :] if verbosity else completed.stdout)
    (play,) = document["plays"]
    results = [task["hosts"]["localhost"] for task in play["tasks"]]
    assert len(results) == len(steps)
    return results, output


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with origin_server(tmp_path_factory.mktemp("origin")) as served:
        yield served


@pytest.fixture
def make_node(tmp_path: Path, origin: tuple[str, str]) -> Iterator[Callable[..., Node]]:
    """make_node(users): a running core whose live config already serves USERS."""
    cores: list[V2RayProcess] = []

    def make(
        users: list[User], blocked_cidrs: list[str] = BLOCKED_CIDRS, served_origin: tuple[str, str] = origin
    ) -> Node:
        workdir = tmp_path / "node"
        workdir.mkdir()
        cert, key = self_signed_certificate(workdir, TLS_NAME)
        tcp_port, ws_port, api_port = free_ports(3)
        inbounds = [
            {"profile": "vless-tcp-tls", "port": tcp_port, "listen": "127.0.0.1"},
            {"profile": "vmess-ws-tls", "port": ws_port, "path": "/vm-rf", "listen": "127.0.0.1"},
        ]
        settings = {
            "core": "v2ray",
            "api_port": api_port,
            "tls_cert_path": str(cert),
            "tls_key_path": str(key),
            "tls_server_name": TLS_NAME,
            "blocked_cidrs": blocked_cidrs,
            "log_level": "warning",
            "access_log": str(workdir / "access.log"),
        }
        flt = core_filter()
        shape = flt.core_shape(inbounds, settings)
        assert core_check().xray_config_problems(shape, core="v2ray") == []
        core = V2RayProcess(workdir / "config.json", [tcp_port, ws_port, api_port], workdir / "v2ray.log")
        node = Node(workdir, inbounds, shape, core, api_port, served_origin)
        node.shape_path.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
        node.config_path.write_text(json.dumps(flt.with_users(shape, node.desired(users)), indent=4) + "\n")
        cores.append(core)
        core.start()
        return node

    yield make
    for core in cores:
        core.stop()


def _fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_adding_two_users_goes_live_without_restart_and_the_same_again_changes_nothing(make_node):
    node = make_node([])
    alice, bob = User("cfg-1", "vless"), User("cfg-2", "vmess")
    pid = node.core.pid
    assert not node.serves(alice)

    added, again = node.run(node.args([alice, bob]), node.args([alice, bob]))

    tcp, ws = node.tag("vless-tcp-tls"), node.tag("vmess-ws-tls")
    assert added["changed"] is True, added
    assert added["added"] == [f"{tcp}/cfg-1", f"{ws}/cfg-2"]
    assert added["removed"] == []
    assert added["api_calls"] == 2
    assert added["config_written"] is True
    assert again["changed"] is False, again
    assert (again["added"], again["removed"], again["api_calls"], again["config_written"]) == ([], [], 0, False)

    written = json.loads(node.config_path.read_text())
    assert written == core_filter().with_users(node.shape, node.desired([alice, bob]))  # the filter's view too
    assert core_check().xray_config_problems(written, core="v2ray") == []
    assert oct(node.config_path.stat().st_mode & 0o777) == "0o640"
    assert node.core.running() and node.core.pid == pid, "the core was restarted"
    assert node.serves(alice)
    assert node.serves(bob)
    # The API-added users are counted per email (what billing reads).
    api = core_api().CoreAPI(f"127.0.0.1:{node.api_port}", "v2ray")
    try:
        stats = api.query_stats("user>>>", reset=False)
    finally:
        api.close()
    assert stats.get("user>>>cfg-1>>>traffic>>>downlink", 0) > 0, stats
    assert stats.get("user>>>cfg-2>>>traffic>>>downlink", 0) > 0, stats


def test_removing_one_and_adding_one_changes_exactly_those(make_node):
    alice, bob, carol = User("cfg-1", "vless"), User("cfg-2", "vmess"), User("cfg-3", "vless")
    node = make_node([alice, bob])
    assert node.serves(alice)
    pid = node.core.pid

    (result,) = node.run(node.args([bob, carol]))

    tcp = node.tag("vless-tcp-tls")
    assert result["changed"] is True, result
    assert result["removed"] == [f"{tcp}/cfg-1"]
    assert result["added"] == [f"{tcp}/cfg-3"]
    assert result["api_calls"] == 2
    assert result["config_written"] is True
    assert node.core.running() and node.core.pid == pid
    assert node.serves(carol)
    assert not node.serves(alice), "a removed user opened a new connection"
    assert node.serves(bob)


def test_a_removed_users_open_download_is_cut_and_nobody_elses(make_node, tmp_path: Path):
    """The core's API refuses only new connections: the module closes the removed user's open ones
    (issue 17, item 2), within its own run, while another user's download on the same core completes
    intact and the core keeps its PID."""
    alice, bob = User("cfg-1", "vless"), User("cfg-2", "vless")
    size, rate = 48 * 1024 * 1024, 3 * 1024 * 1024  # 16 s each, read slowly by the client
    with origin_server(tmp_path / "big", size=size) as (url, sha256):
        node = make_node([alice, bob], served_origin=(url, sha256))
        pid = node.core.pid
        progress = {alice.email: ByteCounter(), bob.email: ByteCounter()}
        outcomes: dict[str, Any] = {}
        ended_at: dict[str, float] = {}

        def download(user: User) -> None:
            try:
                outcomes[user.email] = fetch_via_link(
                    node.link(user), url, limit_rate=rate, output=progress[user.email], timeout=60
                )
            except ProxyError as exc:
                outcomes[user.email] = exc
            ended_at[user.email] = time.monotonic()

        threads = [threading.Thread(target=download, args=(user,)) for user in (alice, bob)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while min(p.bytes for p in progress.values()) < 2 * 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert min(p.bytes for p in progress.values()) >= 2 * 1024 * 1024, "the downloads never started"

        (result,) = node.run(node.args([bob]))
        removed_at = time.monotonic()
        for thread in threads:
            thread.join(timeout=60)
        assert not node.serves(alice) and node.serves(bob)

    assert result["removed"] == [f"{node.tag('vless-tcp-tls')}/cfg-1"] and result["sessions_cut"] >= 1, result
    assert isinstance(outcomes[alice.email], ProxyError), outcomes[alice.email]
    # What the client had buffered still arrives; then the connection is gone, long before the end.
    assert progress[alice.email].bytes < size / 2, progress[alice.email].bytes
    assert ended_at[alice.email] - removed_at < 5, ended_at[alice.email] - removed_at
    assert outcomes[bob.email]["status"] == 200 and outcomes[bob.email]["sha256"] == sha256
    assert node.core.running() and node.core.pid == pid


def test_a_pool_identity_renamed_to_its_config_keeps_its_open_download_and_serves_under_the_new_email(
    make_node, tmp_path: Path
):
    """Issue 19, item 4: a sale adopts a warm pool identity (pool-<id>, already served), and the next sync serves
    the same UUID as cfg-<id>. The module removes pool-<id> and adds cfg-<id>, but this is a rename: the
    customer's download that started under pool-<id> is not cut, while a real removal in the same run is."""
    pooled, leaving = User("pool-7", "vless"), User("cfg-2", "vless")
    adopted = User("cfg-9", "vless", id=pooled.id)
    size, rate = 24 * 1024 * 1024, 3 * 1024 * 1024  # 8 s, read slowly by the client
    with origin_server(tmp_path / "big", size=size) as (url, sha256):
        node = make_node([pooled, leaving], served_origin=(url, sha256))
        progress = {user.email: ByteCounter() for user in (pooled, leaving)}
        outcomes: dict[str, Any] = {}

        def download(user: User) -> None:
            try:
                outcomes[user.email] = fetch_via_link(
                    node.link(user), url, limit_rate=rate, output=progress[user.email], timeout=60
                )
            except ProxyError as exc:
                outcomes[user.email] = exc

        threads = [threading.Thread(target=download, args=(user,)) for user in (pooled, leaving)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while min(p.bytes for p in progress.values()) < 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert min(p.bytes for p in progress.values()) >= 1024 * 1024, "the downloads never started"

        (result,) = node.run(node.args([adopted]))
        for thread in threads:
            thread.join(timeout=60)
        assert node.serves(adopted) and not node.serves(leaving)

    tag = node.tag("vless-tcp-tls")
    assert sorted(result["removed"]) == [f"{tag}/cfg-2", f"{tag}/pool-7"] and result["added"] == [f"{tag}/cfg-9"]
    assert result["sessions_cut"] >= 1, result  # cfg-2's
    assert outcomes[pooled.email]["status"] == 200 and outcomes[pooled.email]["sha256"] == sha256
    assert isinstance(outcomes[leaving.email], ProxyError), outcomes[leaving.email]


def test_renamed_emails_are_removals_whose_uuid_comes_back_under_another_email():
    module = collection_module("plugins.modules.core_users")
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    removals = [
        ("t", "vless", {"email": "pool-1", "id": one}),
        ("t", "vless", {"email": "cfg-5", "id": two}),  # same email back with a new level: no rename
        ("t", "vless", {"email": "cfg-6", "id": str(uuid.uuid4())}),  # gone
    ]
    additions = [("t", "vless", {"email": "cfg-4", "id": one.upper()}), ("t", "vless", {"email": "cfg-5", "id": two})]
    assert module.renamed_emails(removals, additions) == {"pool-1"}
    assert module.renamed_emails(removals, []) == set()


def test_check_mode_reports_the_change_but_changes_neither_file_nor_core(make_node):
    alice, dave = User("cfg-1", "vless"), User("cfg-4", "vless")
    node = make_node([alice])
    before = _fingerprint(node.config_path)

    (result,) = node.run(node.args([alice, dave]), check=True)

    assert result["changed"] is True, result
    assert result["added"] == [f"{node.tag('vless-tcp-tls')}/cfg-4"]
    assert result["removed"] == []
    assert result["api_calls"] == 0
    assert result["config_written"] is False
    assert _fingerprint(node.config_path) == before
    assert not node.serves(dave), "check mode changed the core"
    assert node.serves(alice)


def test_a_new_uuid_under_the_same_email_is_a_removal_and_an_addition(make_node):
    old = User("cfg-1", "vless")
    new = User("cfg-1", "vless")
    node = make_node([old])
    assert node.serves(old)

    (result,) = node.run(node.args([new]))

    tcp = node.tag("vless-tcp-tls")
    assert result["changed"] is True, result
    assert (result["removed"], result["added"], result["api_calls"]) == ([f"{tcp}/cfg-1"], [f"{tcp}/cfg-1"], 2)
    assert node.serves(new)
    assert not node.serves(old)


def test_invalid_input_fails_readably_and_never_quotes_a_uuid(make_node):
    alice = User("cfg-1", "vless")
    node = make_node([alice])
    before = _fingerprint(node.config_path)
    twin = User("cfg-1", "vless")  # the same email with another UUID
    bad_id = "0123abcd-not-a-uuid"

    def with_users(*users: dict[str, Any], meta: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        args = node.args(list(users))
        if meta is not None:
            args["inbounds"] = meta
        return args

    tcp = node.tag("vless-tcp-tls")
    node.uuids_seen.add(twin.id)
    cases = {
        "empty email": (
            with_users({"id": alice.id, "email": "", "protocol": "vless"}),
            f"a client of inbound '{tcp}' has an empty email (it could never be removed)",
        ),
        "duplicate email": (
            with_users(
                {"id": alice.id, "email": "cfg-1", "protocol": "vless"},
                {"id": twin.id, "email": "cfg-1", "protocol": "vless"},
            ),
            "email 'cfg-1' appears twice in inbound",
        ),
        "bad uuid": (
            with_users({"id": bad_id, "email": "cfg-1", "protocol": "vless"}),
            "client 'cfg-1' of inbound 'vless-tcp-tls-",
        ),
        "shared uuid": (
            with_users(
                {"id": alice.id, "email": "cfg-1", "protocol": "vless"},
                {"id": alice.id.upper(), "email": "cfg-9", "protocol": "vless"},
            ),
            "clients 'cfg-1' and 'cfg-9' of inbound 'vless-tcp-tls-",
        ),
        "unknown inbound": (
            with_users(
                {"id": alice.id, "email": "cfg-1", "protocol": "vless"},
                meta=[{"tag": "vless-tcp-tls-1", "protocol": "vless", "flow": ""}],
            ),
            "inbound 'vless-tcp-tls-1' is not in the rendered config; run provision_node.yml first",
        ),
        "one email, two uuids": (
            with_users(
                {"id": alice.id, "email": "x", "protocol": "vless"},
                {"id": twin.id, "email": "x", "protocol": "vmess"},
            ),
            "email 'x' is used with two different UUIDs",
        ),
        "unknown protocol": (
            with_users({"id": alice.id, "email": "cfg-1", "protocol": "trojan"}),
            "protocol must be vless or vmess",
        ),
    }

    results = node.run(*(args for args, _ in cases.values()))

    for (name, (_, expected)), result in zip(cases.items(), results, strict=True):
        assert result.get("failed") is True, (name, result)
        assert expected in result["msg"], (name, result["msg"])
        assert not ANY_UUID.search(result["msg"]), (name, result["msg"])
        assert bad_id not in json.dumps(result), name
    assert "has no valid UUID" in results[2]["msg"]
    assert _fingerprint(node.config_path) == before
    assert node.serves(alice)


def test_a_config_the_core_rejects_fails_and_changes_neither_file_nor_core(make_node):
    alice, carol = User("cfg-1", "vless"), User("cfg-3", "vless")
    node = make_node([alice])
    before = _fingerprint(node.config_path)
    # A "core" that refuses every config and, like a chatty core, echoes clients of the candidate and of the
    # live config: the live one's UUIDs are no module parameters, so only the module itself can mask them.
    refuse = [
        sys.executable,
        "-c",
        "import json, os, sys\n"
        "for path in (sys.argv[1], os.path.join(os.path.dirname(sys.argv[1]), 'config.json')):\n"
        "    config = json.load(open(path))\n"
        "    print([c for i in config['inbounds'] for c in i.get('settings', {}).get('clients', [])])\n"
        "sys.exit(1)",
    ]

    (result,) = node.run(node.args([carol], test_command=refuse))

    assert result.get("failed") is True, result
    assert result["msg"].startswith("the core rejected the new config: ")
    assert "'email': 'cfg-1'" in result["msg"], "the core's message should reach the operator"
    assert "<uuid>" in result["msg"], "UUIDs in the core's message are masked by the module"
    assert not ANY_UUID.search(result["msg"])
    assert _fingerprint(node.config_path) == before
    assert list(node.workdir.glob(".config-*")) == [], "the rejected temp file was left behind"
    assert not node.serves(carol), "the core serves a user whose config it rejected"
    assert node.serves(alice), "the core dropped a user although the change was rejected"


def test_apply_live_false_changes_only_the_file_which_a_restart_then_serves(make_node):
    alice, carol = User("cfg-1", "vless"), User("cfg-3", "vless")
    node = make_node([alice])

    (result,) = node.run(node.args([alice, carol], apply_live=False))

    assert result["changed"] is True, result
    assert result["added"] == [f"{node.tag('vless-tcp-tls')}/cfg-3"]
    assert result["api_calls"] == 0
    assert result["config_written"] is True
    written = json.loads(node.config_path.read_text())
    assert written == core_filter().with_users(node.shape, node.desired([alice, carol]))
    assert not node.serves(carol), "apply_live=false reached the core"
    node.core.restart()  # what the role's handler does when the shape changed
    assert node.serves(carol)
    assert node.serves(alice)


def test_an_unreachable_api_fails_readably_and_leaves_the_file(make_node):
    alice, carol = User("cfg-1", "vless"), User("cfg-3", "vless")
    node = make_node([alice])
    node.core.stop()
    before = _fingerprint(node.config_path)

    (result,) = node.run(node.args([alice, carol]))

    assert result.get("failed") is True, result
    assert result["msg"].startswith(f"the core's API at 127.0.0.1:{node.api_port} did not answer")
    assert _fingerprint(node.config_path) == before


def test_no_uuid_appears_in_verbose_output(make_node):
    old, new, bob = User("cfg-1", "vless"), User("cfg-1", "vless"), User("cfg-2", "vmess")
    node = make_node([old])
    steps = [
        node.args([new, bob]),  # a change: remove + add (the new UUID) and an addition
        node.args([new, bob, old]),  # invalid: one email with two UUIDs
    ]

    results, output = run_playbook(node, steps, verbosity=3)

    assert results[0]["changed"] is True and results[0]["api_calls"] == 3, results[0]
    assert results[1].get("failed") is True, results[1]
    assert "<localhost> EXEC" in output, "not verbose: the test proves nothing"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output, "the invocation is no longer shown: check the masking"
    for user in (old, new, bob):
        assert user.id not in output
        assert user.id.replace("-", "") not in output
    assert node.serves(new)


def test_users_cannot_reach_blocked_addresses_by_address_or_by_name(make_node, origin, tmp_path: Path):
    """The node's own loopback blocked (as in production), the test origin moved to 127.0.0.2."""
    alice = User("cfg-1", "vless")
    with origin_server(tmp_path / "elsewhere", host="127.0.0.2") as elsewhere:
        node = make_node([alice], blocked_cidrs=["127.0.0.1/32", "::1/128"], served_origin=elsewhere)
        assert node.serves(alice)  # the user works, through the same rules
        for url in (origin[0], origin[0].replace("127.0.0.1", "localhost")):
            with pytest.raises(ProxyError):
                fetch_via_link(node.link(alice), url, timeout=5)


def test_the_api_client_tells_an_unknown_user_from_an_unknown_inbound(make_node):
    """The module tolerates removing a user that is already gone, but never a missing inbound: a core
    running an older config would otherwise keep serving a user the module reports as removed."""
    node = make_node([User("cfg-1", "vless")])
    module_utils = core_api()
    api = module_utils.CoreAPI(f"127.0.0.1:{node.api_port}", "v2ray")
    try:
        with pytest.raises(module_utils.CoreAPIError) as gone:
            api.remove_user(node.tag("vless-tcp-tls"), "cfg-404")
        with pytest.raises(module_utils.CoreAPIError) as missing:
            api.remove_user("vless-tcp-tls-1", "cfg-1")
    finally:
        api.close()
    assert gone.value.not_found, gone.value.details
    assert "handler not found" in missing.value.details
    assert not missing.value.not_found


def delta_args(node: Node, base: int, revision: int, add: list[User] = (), remove: list[User] = ()) -> dict[str, Any]:
    """The module's arguments for a delta (what users.yml passes when the control API sends xray_users_delta)."""
    args = node.args([], revision=revision, state_path=str(node.workdir / "users-state.json"))
    del args["users"]
    args["delta"] = json.dumps(
        {"base_revision": base, "add": [user.as_role_user() for user in add], "remove": [u.email for u in remove]}
    )
    node.uuids_seen.update(user.id for user in add)
    return args


def full_args(node: Node, users: list[User], revision: int) -> dict[str, Any]:
    return node.args(users, revision=revision, state_path=str(node.workdir / "users-state.json"))


def test_a_delta_applies_only_the_change_live_and_persists_it_without_a_core_test(make_node, tmp_path: Path):
    """+1 and -1 onto revision 1 reach the running core through its API; the file then holds exactly the
    full set (the same document a full sync writes); the core's -test is not run (it is a command that fails)."""
    alice, bob, carol = User("cfg-1", "vless"), User("cfg-2", "vmess"), User("cfg-3", "vless")
    node = make_node([])
    pid = node.core.pid
    (full,) = node.run(full_args(node, [alice, bob], revision=1))
    assert full["changed"] and full["resync_needed"] is False, full

    failing_test = tmp_path / "core-test-that-fails"
    failing_test.write_text("#!/bin/sh\nexit 3\n")
    failing_test.chmod(0o755)
    (delta,) = node.run({**delta_args(node, 1, 2, add=[carol], remove=[bob]), "test_command": [str(failing_test)]})

    assert delta["resync_needed"] is False and delta["changed"], delta
    assert delta["added"] == [f"{node.tag('vless-tcp-tls')}/cfg-3"]
    assert delta["removed"] == [f"{node.tag('vmess-ws-tls')}/cfg-2"]
    assert delta["api_calls"] == 2 and delta["config_written"] is True
    written = json.loads(node.config_path.read_text())
    assert written == core_filter().with_users(node.shape, node.desired([alice, carol]))
    assert json.loads((node.workdir / "users-state.json").read_text())["revision"] == 2
    assert node.core.pid == pid, "the core was restarted"
    assert node.serves(carol) and node.serves(alice)
    assert not node.serves(bob)


def test_an_unchanged_full_set_records_the_digest_and_spans_of_the_text_on_disk(make_node):
    """The same full set at a newer revision writes no config, and the state it records still describes the text
    on disk (its digest, where the clients arrays lie), so the next delta is checked against that text."""
    alice, bob, carol = User("cfg-1", "vless"), User("cfg-2", "vmess"), User("cfg-3", "vless")
    node = make_node([])
    node.run(full_args(node, [alice, bob], revision=1))
    state_path = node.workdir / "users-state.json"
    first = json.loads(state_path.read_text())
    written = node.config_path.read_bytes()

    (again,) = node.run(full_args(node, [alice, bob], revision=2))
    assert again["changed"] is False and again["resync_needed"] is False, again
    assert node.config_path.read_bytes() == written
    state = json.loads(state_path.read_text())
    assert state["revision"] == 2
    assert state["config_sha256"] == hashlib.sha256(written).hexdigest() == first["config_sha256"]
    assert state["spans"] == first["spans"] and state["spans"]

    (delta,) = node.run(delta_args(node, 2, 3, add=[carol]))
    assert delta["resync_needed"] is False and delta["config_written"] is True, delta
    assert json.loads(node.config_path.read_text()) == core_filter().with_users(
        node.shape, node.desired([alice, bob, carol])
    )
    assert node.serves(carol)


def test_a_delta_onto_another_base_changes_nothing_and_asks_for_the_full_set(make_node):
    """A node that missed a revision, or whose config was restored from an old copy, refuses the delta: the
    file, the state and the core stay as they were; the full set then brings it to the desired users."""
    alice, bob, carol = User("cfg-1", "vless"), User("cfg-2", "vless"), User("cfg-3", "vmess")
    node = make_node([])
    node.run(full_args(node, [alice], revision=1))
    old_config = node.config_path.read_bytes()
    node.run(delta_args(node, 1, 2, add=[bob]))
    state = node.workdir / "users-state.json"

    (missed,) = node.run(delta_args(node, 3, 4, add=[carol]))  # the node never got revision 3
    assert missed["resync_needed"] is True and missed["changed"] is False, missed
    assert "serves revision 2" in missed["msg"]
    assert json.loads(state.read_text())["revision"] == 2
    assert not node.serves(carol)

    node.config_path.write_bytes(old_config)  # restored from a backup of revision 1, state left at 2
    (restored,) = node.run(delta_args(node, 2, 3, add=[carol]))
    assert restored["resync_needed"] is True and "not the one this module wrote" in restored["msg"], restored
    assert node.config_path.read_bytes() == old_config

    state.unlink()  # no state at all
    (nostate,) = node.run(delta_args(node, 2, 3, add=[carol]))
    assert nostate["resync_needed"] is True and "no recorded state" in nostate["msg"], nostate

    # The control plane knows bob was served (its snapshot of revision 2), so it names him: the restored file
    # does not list him, yet the running core still serves him.
    (full,) = node.run({**full_args(node, [alice, carol], revision=4), "also_remove": json.dumps([bob.email])})
    assert full["resync_needed"] is False and full["changed"], full
    assert node.serves(alice) and node.serves(carol) and not node.serves(bob)


def test_a_delta_replayed_after_a_crash_before_the_file_was_written_converges(make_node):
    """A run killed after its API calls but before it wrote the file leaves the core ahead of the file and the
    state at the old revision: the same delta again is harmless for the core (already there / already gone)
    and brings file and state to it."""
    alice, bob, carol = User("cfg-1", "vless"), User("cfg-2", "vmess"), User("cfg-3", "vless")
    node = make_node([])
    node.run(full_args(node, [alice, bob], revision=1))
    api = core_api().CoreAPI(f"127.0.0.1:{node.api_port}", "v2ray")
    try:  # what the killed run got done: carol added, bob removed, through the API only
        api.add_user(node.tag("vless-tcp-tls"), "vless", carol.email, carol.id)
        api.remove_user(node.tag("vmess-ws-tls"), bob.email)
    finally:
        api.close()

    (replayed,) = node.run(delta_args(node, 1, 2, add=[carol], remove=[bob]))
    assert replayed["resync_needed"] is False and replayed["config_written"] is True, replayed
    assert json.loads(node.config_path.read_text()) == core_filter().with_users(
        node.shape, node.desired([alice, carol])
    )
    assert node.serves(carol) and node.serves(alice) and not node.serves(bob)


def test_the_device_blocks_ride_along_in_the_same_call_root_only_and_only_when_they_change(make_node):
    """The guard's blocks file is written by the users module itself (one module call per sync), mode 0600,
    with the inbound ports; the same blocks again write nothing, and new ones replace them."""
    alice = User("cfg-1", "vless")
    node = make_node([alice])
    path = node.workdir / "device-blocks.json"
    blocks = [{"email": "cfg-1", "address": "198.51.100.7", "until": 1796000000}]
    args = {**node.args([alice]), "device_blocks": json.dumps(blocks), "device_blocks_path": str(path)}

    first, again, cleared = node.run(args, args, {**args, "device_blocks": "[]"})

    assert first["device_blocks_written"] is True and first["changed"] is True, first
    assert again["device_blocks_written"] is False and again["changed"] is False, again
    assert cleared["device_blocks_written"] is True, cleared
    assert json.loads(path.read_text()) == {"ports": [int(item["port"]) for item in node.inbounds], "blocks": []}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
