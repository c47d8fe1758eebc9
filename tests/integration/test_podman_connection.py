"""The test containers' connection (plugins/connection/podman_pipelined.py) on a real container.

Its fast path runs modules through `runc exec` instead of `podman exec`: that is only sound if a module
sees the container exactly as `podman exec` shows it (capabilities, seccomp filter, cgroup, user,
working directory, environment). Each is compared here with `podman exec` on the same container, files
go both ways, a stopped container is unreachable (not a failed task) and reachable again once started, and a
container re-created under the same name after its conmon was killed (runc's state of the old one left behind,
as a run killed mid-way leaves it) is reached, not taken for the old one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.podman_node import (
    CONTAINERS_CONF,
    NodeContainer,
    build_node_image,
    harness_lock,
    join_node,
    podman,
    start_node,
)

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "rayfleet-conn-test"
NETWORK = "rayfleet-conn-test"
CACHE_DIR = Path("/run/rayfleet-podman-connection")
CACHE_FILE = CACHE_DIR / CONTAINER
RECREATED = "rayfleet-conn-test-again"
# What a module reads of its own process: everything the container's process spec decides.
PROBE = (
    "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; "
    "cat /proc/self/cgroup; pwd"
)


@pytest.fixture(scope="module")
def container() -> Iterator[NodeContainer]:
    build_node_image()
    with harness_lock(), start_node(CONTAINER, "podman_connection", NETWORK) as node:
        yield node


def play(tmp_path: Path, tasks: list[dict], host: str = CONTAINER) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    return subprocess.run(
        [
            str(Path(sys.prefix) / "bin" / "ansible-playbook"),
            "-i",
            f"{host},",
            "-e",
            "ansible_connection=rayfleet.fleet.podman_pipelined ansible_python_interpreter=/usr/bin/python3",
            str(playbook),
        ],
        cwd=REPO,  # ansible.cfg: the repository is the collection rayfleet.fleet
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def task_results(run: subprocess.CompletedProcess[str], host: str = CONTAINER) -> list[dict]:
    report = json.loads(run.stdout)
    return [task["hosts"][host] for task in report["plays"][0]["tasks"]]


def test_a_module_sees_the_container_as_podman_exec_shows_it(container: NodeContainer, tmp_path: Path) -> None:
    CACHE_FILE.unlink(missing_ok=True)
    run = play(
        tmp_path,
        [
            {"ansible.builtin.shell": PROBE, "changed_when": False},
            {"ansible.builtin.command": "env", "changed_when": False},
        ],
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probe, environment = task_results(run)
    # The fast path was taken: the container's id was looked up once and kept for the next tasks.
    cached = json.loads(CACHE_FILE.read_text())
    assert cached["id"] == podman("container", "inspect", "--format", "{{.Id}}", CONTAINER, check=True).stdout.strip()
    assert Path(f"/run/runc/{cached['id']}/state.json").exists()

    reference = container.exec("sh", "-c", PROBE, check=True).stdout
    assert probe["stdout"].splitlines() == reference.splitlines()
    assert "Seccomp:\t2" in probe["stdout"]  # filtered, as podman exec is
    via_podman = dict(line.split("=", 1) for line in container.exec("env", check=True).stdout.splitlines())
    via_runc = dict(line.split("=", 1) for line in environment["stdout"].splitlines())
    for name in ("PATH", "HOME", "TERM", "container"):
        assert via_runc.get(name) == via_podman.get(name), name


def test_files_go_both_ways_with_their_modes(container: NodeContainer, tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("from the controller\n")
    fetched = tmp_path / "fetched.txt"
    run = play(
        tmp_path,
        [
            {"ansible.builtin.copy": {"src": str(source), "dest": "/root/copied.txt", "mode": "0600"}},
            {"ansible.builtin.copy": {"content": "inline\n", "dest": "/root/inline.txt", "mode": "0640"}},
            {"ansible.builtin.fetch": {"src": "/etc/os-release", "dest": str(fetched), "flat": True}},
        ],
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    listing = container.exec("stat", "-c", "%a %U %n", "/root/copied.txt", "/root/inline.txt", check=True).stdout
    assert listing.split("\n")[:2] == ["600 root /root/copied.txt", "640 root /root/inline.txt"]
    assert container.exec("cat", "/root/copied.txt", check=True).stdout == "from the controller\n"
    assert "bookworm" in fetched.read_text()


def test_a_stopped_container_is_unreachable_and_reachable_again_once_started(
    container: NodeContainer, tmp_path: Path
) -> None:
    CACHE_FILE.unlink(missing_ok=True)
    assert play(tmp_path, [{"ansible.builtin.ping": {}}]).returncode == 0
    assert CACHE_FILE.exists()  # written only when the runc path is found
    container.stop()
    try:
        stopped = play(tmp_path, [{"ansible.builtin.ping": {}}])
        assert stopped.returncode == 4, stopped.stdout[-2000:]  # ansible-playbook's "unreachable"
        [result] = task_results(stopped)
        assert result.get("unreachable") is True
    finally:
        podman("start", CONTAINER, check=True)  # not container.start(): its address may change, no matter here
    container.wait_booted()
    CACHE_FILE.unlink(missing_ok=True)
    again = play(tmp_path, [{"ansible.builtin.ping": {}}])
    assert again.returncode == 0, again.stdout[-2000:]
    assert CACHE_FILE.exists()  # through runc again, not the podman fallback


def test_a_container_recreated_after_its_conmon_died_is_not_taken_for_the_old_one(
    container: NodeContainer, tmp_path: Path
) -> None:
    """The CI failure of December 7: a run killed mid-way left a scenario's container with its conmon gone;
    the next run removed it (runc's state of the old id stays behind then) and made a new one of the same
    name, and the cache still named the old id, whose state file exists: "cannot exec in a stopped
    container", the host unreachable at its first task."""
    cached_file = CACHE_DIR / RECREATED
    cached_file.unlink(missing_ok=True)
    with join_node(RECREATED, "podman_connection", NETWORK) as first:
        assert play(tmp_path, [{"ansible.builtin.ping": {}}], host=RECREATED).returncode == 0
        old_id = json.loads(cached_file.read_text())["id"]
        conmon = int(podman("inspect", "--format", "{{.State.ConmonPid}}", first.name, check=True).stdout)
        os.kill(conmon, signal.SIGKILL)  # what a killed session does to the containers it started
        first.remove()
    stale_state = Path(f"/run/runc/{old_id}/state.json")
    try:
        assert stale_state.exists(), "removing a container without its conmon no longer leaves runc's state"
        assert json.loads(cached_file.read_text())["id"] == old_id  # the stale entry is still there
        with join_node(RECREATED, "podman_connection", NETWORK) as second:
            new_id = podman("inspect", "--format", "{{.Id}}", second.name, check=True).stdout.strip()
            run = play(tmp_path, [{"ansible.builtin.command": "hostname", "changed_when": False}], host=RECREATED)
            assert run.returncode == 0, run.stdout[-2000:]
            [result] = task_results(run, host=RECREATED)
            assert result["stdout"] == RECREATED
            assert json.loads(cached_file.read_text())["id"] == new_id != old_id
    finally:
        subprocess.run(["runc", "--root", "/run/runc", "delete", "--force", old_id], capture_output=True, check=False)
        cached_file.unlink(missing_ok=True)
