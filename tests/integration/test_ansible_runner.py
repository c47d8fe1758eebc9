"""run_playbook with the real ansible-runner on localhost: results from events, nothing left behind."""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from control_api.runners import run_playbook
from control_api.runners.ansible import _memory_tmp

pytestmark = pytest.mark.slow


def inventory(*hosts: str) -> dict:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {"all": {"children": {"vpn_nodes": {"hosts": dict.fromkeys(hosts, local)}}}}


def write_playbook(directory: Path, tasks: list[dict]) -> str:
    path = directory / "play.yml"
    path.write_text(json.dumps([{"hosts": "vpn_nodes", "gather_facts": False, "tasks": tasks}]))
    return str(path)


def leftovers() -> set[str]:
    parent = Path(_memory_tmp() or tempfile.gettempdir())
    return {path.name for path in parent.glob("rayfleet-ansible-*")}


def test_a_run_reports_per_host_stats_and_leaves_no_private_data_dir(tmp_path):
    before = leftovers()
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
    assert leftovers() == before


def test_a_failing_task_and_an_empty_limit_are_readable_failures(tmp_path):
    playbook = write_playbook(tmp_path, [{"name": "breaks", "ansible.builtin.fail": {"msg": "the core is gone"}}])
    failed = run_playbook(playbook, inventory("n1"), {}, limit="n1", timeout=60)
    assert (failed.ok, failed.status) == (False, "failed")
    assert failed.error == "n1: task 'breaks' failed: the core is gone"
    assert failed.hosts["n1"].failed == 1

    nobody = run_playbook(playbook, inventory("n1"), {}, limit="no-such-node", timeout=60)
    assert not nobody.ok and nobody.rc == 1
    assert nobody.error == "ansible-playbook ended with status failed (rc=1) and reported no task error"


def test_a_run_finds_the_repository_as_the_collection_and_the_bundled_collections(tmp_path):
    """The run's own link makes rayfleet.fleet resolvable (its filters, its roles by FQCN); the collections
    of the PyPI `ansible` package resolve as before; the link goes with the private_data_dir."""
    before = leftovers()
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
    assert leftovers() == before
    assert (Path(__file__).resolve().parents[2] / "galaxy.yml").is_file()  # removing the link kept its target


def test_extravars_larger_than_one_command_line_argument_reach_the_playbook(tmp_path):
    """A full sync of a big node sends megabytes of users: more than Linux allows in one argument
    (MAX_ARG_STRLEN, 128 KiB), so the runner hands them over in a private file, gone after the run."""
    before = leftovers()
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
    assert leftovers() == before
