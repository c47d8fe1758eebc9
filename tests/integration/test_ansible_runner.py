"""run_playbook with the real ansible-runner on localhost: results from events, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from control_api.runners import ansible as runner_module
from control_api.runners import run_playbook
from control_api.runners.ansible import _memory_tmp, reap_orphaned_run_dirs

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def inventory(*hosts: str) -> dict:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {"all": {"children": {"vpn_nodes": {"hosts": dict.fromkeys(hosts, local)}}}}


def write_playbook(directory: Path, tasks: list[dict]) -> str:
    path = directory / "play.yml"
    path.write_text(json.dumps([{"hosts": "vpn_nodes", "gather_facts": False, "tasks": tasks}]))
    return str(path)


def run_dir_parent() -> Path:
    return Path(_memory_tmp() or tempfile.gettempdir())


@pytest.fixture
def run_dirs(monkeypatch) -> list[Path]:
    """The private_data_dirs this test's runs make: only those, since the other pytest process runs
    playbooks of its own in the same parent at the same time."""
    made: list[Path] = []
    new_run_dir = runner_module._new_run_dir

    def recording() -> str:
        made.append(Path(new_run_dir()))
        return str(made[-1])

    monkeypatch.setattr(runner_module, "_new_run_dir", recording)
    return made


def assert_all_gone(run_dirs: list[Path]) -> None:
    assert run_dirs, "the run made no private_data_dir"
    assert [path for path in run_dirs if path.exists()] == []


def test_a_run_reports_per_host_stats_and_leaves_no_private_data_dir(tmp_path, run_dirs):
    secret = str(uuid.uuid4())
    marker = tmp_path / "touched"
    playbook = write_playbook(
        tmp_path,
        [
            {"name": "uses the extravars", "ansible.builtin.copy": {"content": "{{ token }}", "dest": str(marker)}},
            {"name": "changes nothing", "ansible.builtin.debug": {"msg": "hello"}},
        ],
    )
    result = run_playbook(playbook, inventory("n1"), {"token": secret}, limit="n1", timeout=60)
    assert result.ok, result.error
    assert (result.rc, result.status, result.changed) == (0, "successful", 1)
    assert result.hosts["n1"].ok == 2 and result.hosts["n1"].failed == 0
    assert result.duration_ms > 0
    assert marker.read_text() == secret
    assert_all_gone(run_dirs)


def test_a_failing_task_and_an_empty_limit_are_readable_failures(tmp_path):
    playbook = write_playbook(tmp_path, [{"name": "breaks", "ansible.builtin.fail": {"msg": "the core is gone"}}])
    failed = run_playbook(playbook, inventory("n1"), {}, limit="n1", timeout=60)
    assert (failed.ok, failed.status) == (False, "failed")
    assert failed.error == "n1: task 'breaks' failed: the core is gone"
    assert failed.hosts["n1"].failed == 1

    nobody = run_playbook(playbook, inventory("n1"), {}, limit="no-such-node", timeout=60)
    assert not nobody.ok and nobody.rc == 1
    assert nobody.error == "ansible-playbook ended with status failed (rc=1) and reported no task error"


def test_a_run_finds_the_repository_as_the_collection_and_the_bundled_collections(tmp_path, run_dirs):
    """The run's own link makes rayfleet.fleet resolvable (its filters, its roles by FQCN); the collections
    of the PyPI `ansible` package resolve as before; the link goes with the private_data_dir."""
    out = tmp_path / "out.json"
    playbook = write_playbook(
        tmp_path,
        [
            {
                "name": "uses the collection's filter and a bundled collection's",
                "ansible.builtin.copy": {
                    "content": "{{ {'ports': [{'profile': 'vless-tcp-tls', 'port': 443}] | rayfleet.fleet.core_ports,"
                    " 'bundled': 'node1' | community.general.dict_kv('name')} | to_json }}",
                    "dest": str(out),
                    "mode": "0644",
                },
            },
            {
                "name": "finds the collection's role by its FQCN (a static import: loaded, then skipped)",
                "ansible.builtin.import_role": {"name": "rayfleet.fleet.xray", "tasks_from": "account"},
                "when": False,
            },
        ],
    )
    result = run_playbook(playbook, inventory("n1"), {}, limit="n1", timeout=60)
    assert result.ok, result.error
    assert json.loads(out.read_text()) == {"ports": [443], "bundled": {"name": "node1"}}
    assert_all_gone(run_dirs)
    assert (REPO / "galaxy.yml").is_file()  # removing the link kept its target


def test_extravars_larger_than_one_command_line_argument_reach_the_playbook(tmp_path, run_dirs):
    """A full sync of a big node sends megabytes of users: more than Linux allows in one argument
    (MAX_ARG_STRLEN, 128 KiB), so the runner hands them over in a private file, gone after the run."""
    users = [{"email": f"cfg-{n}", "id": str(uuid.uuid4()), "protocol": "vless", "level": 0} for n in range(5000)]
    assert len(json.dumps(users)) > 3 * 128 * 1024
    out = tmp_path / "count.txt"
    playbook = write_playbook(
        tmp_path,
        [{"name": "counts", "ansible.builtin.copy": {"content": "{{ xray_users | length }}", "dest": str(out)}}],
    )
    result = run_playbook(playbook, inventory("n1"), {"xray_users": users}, limit="n1", timeout=120)
    assert result.ok, result.error
    assert out.read_text() == "5000"
    assert_all_gone(run_dirs)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_reaping_removes_only_this_users_directories_of_processes_that_are_gone(tmp_path):
    gone = tmp_path / f"rayfleet-ansible-{dead_pid()}-ab_c9xyz"
    (gone / "artifacts").mkdir(parents=True)
    (gone / "extravars.json").write_text("{}")
    alive = tmp_path / f"rayfleet-ansible-{os.getpid()}-q1w2e3r4"
    alive.mkdir()
    unnamed = tmp_path / "rayfleet-ansible-k3j4h5g6"  # no owner in the name: nobody can tell it is orphaned
    unnamed.mkdir()
    not_a_dir = tmp_path / f"rayfleet-ansible-{dead_pid()}-file0000"
    not_a_dir.write_text("")
    link = tmp_path / f"rayfleet-ansible-{dead_pid()}-link0000"
    link.symlink_to(alive)  # a link is never followed into what it points at
    other = tmp_path / f"elsewhere-{dead_pid()}-abcdefgh"
    other.mkdir()

    assert reap_orphaned_run_dirs(tmp_path) == [gone.name]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in (alive, unnamed, not_a_dir, link, other)
    )
    assert reap_orphaned_run_dirs(tmp_path) == []


def test_the_run_directory_of_a_killed_worker_with_its_uuids_is_removed_by_the_next_run(tmp_path, run_dirs):
    """A worker killed mid-run (SIGKILL: no `finally`) leaves its private_data_dir, extravars and all, on
    tmpfs; the next run on the machine removes it, and keeps a live run's."""
    started = tmp_path / "started"
    playbook = write_playbook(
        tmp_path,
        [
            {"name": "says it runs", "ansible.builtin.copy": {"content": "yes", "dest": str(started)}},
            {"name": "runs long", "ansible.builtin.command": "sleep 60", "changed_when": False},
        ],
    )
    code = (
        "import sys; from control_api.runners import run_playbook; "
        f"run_playbook({playbook!r}, {inventory('n1')!r}, {{'token': {str(uuid.uuid4())!r}}}, limit='n1', timeout=120)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert worker.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        [left] = run_dir_parent().glob(f"rayfleet-ansible-{worker.pid}-*")
        assert (left / "extravars.json").is_file()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)  # the worker, ansible-playbook and the sleep
        worker.wait()
    assert left.exists()  # killed: nothing removed it

    (tmp_path / "next").mkdir()
    quick = write_playbook(tmp_path / "next", [{"name": "does nothing", "ansible.builtin.debug": {"msg": "hi"}}])
    result = run_playbook(quick, inventory("n1"), {}, limit="n1", timeout=60)
    assert result.ok, result.error
    assert not left.exists()
    assert_all_gone(run_dirs)
