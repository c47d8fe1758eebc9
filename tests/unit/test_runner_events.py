"""The ansible-runner event accounting of control_api.runners.ansible, on synthetic event dicts.

The dicts carry the fields ansible-runner 2.4's event stream gives (event, event_data.host/task/
task_action/resolved_action/res/ignore_errors, and playbook_on_stats' per-host counters).
"""

from __future__ import annotations

import uuid

from control_api.runners.ansible import EventAccounting, HostStats, PlaybookResult


def ok(host: str, task: str, action: str, **res: object) -> dict:
    return {
        "event": "runner_on_ok",
        "event_data": {"host": host, "task": task, "task_action": action, "resolved_action": action, "res": res},
    }


def users_ok(host: str, added: list[str], removed: list[str]) -> dict:
    event = ok(host, "Apply the users", "rayfleet.fleet.core_users", changed=bool(added or removed))
    event["event_data"]["res"].update(added=added, removed=removed)
    return event


def test_users_module_results_count_distinct_emails_not_inbounds():
    accounting = EventAccounting()
    accounting(users_ok("n1", ["vless-tcp-tls-8443/cfg-1", "vless-ws-tls-8445/cfg-1", "vmess-ws-tls/cfg-2"], []))
    accounting(users_ok("n1", [], ["vless-tcp-tls-8443/cfg-9"]))
    assert accounting.added == {"cfg-1", "cfg-2"}
    assert accounting.removed == {"cfg-9"}


def test_each_hosts_users_module_counts_are_kept_apart():
    accounting = EventAccounting()
    accounting(users_ok("n1", ["t/cfg-1", "t/cfg-2"], ["t/cfg-3"]))
    accounting(users_ok("n2", [], ["t/cfg-4"]))
    assert (accounting.added_count, accounting.removed_count) == (2, 2)
    assert accounting.host_counts == {"n1": (2, 1), "n2": (0, 1)}
    result = PlaybookResult(rc=0, status="successful", duration_ms=1, host_counts=accounting.host_counts)
    assert result.counts_for("n2") == (0, 1)
    assert result.counts_for("n3") == (0, 0)


def test_a_run_over_one_host_without_host_counts_is_that_hosts():
    result = PlaybookResult(rc=0, status="successful", duration_ms=1, hosts={"n1": HostStats(ok=1)}, added=4)
    assert result.counts_for("n1") == (4, 0)
    other = PlaybookResult(rc=0, status="successful", duration_ms=1, hosts={"n1": HostStats(), "n2": HostStats()})
    assert other.counts_for("n1") == (0, 0)


def test_only_the_users_task_is_read_for_adds_even_under_a_short_name():
    accounting = EventAccounting()
    accounting(ok("n1", "Something else", "ansible.builtin.copy", changed=True, added=["x/cfg-5"]))
    # Another collection's module of the same short name is not ours.
    accounting(ok("n1", "Not ours", "other.collection.core_users", changed=True, added=["x/cfg-6"]))
    event = users_ok("n1", ["t/cfg-3"], [])
    # Written as `core_users` inside the collection: Ansible resolves it to the FQCN.
    event["event_data"]["task_action"] = "core_users"
    accounting(event)
    assert accounting.added == {"cfg-3"}


def test_the_handler_never_lets_an_event_be_written_to_disk():
    accounting = EventAccounting()
    assert accounting(users_ok("n1", ["t/cfg-1"], [])) is False
    assert accounting({"event": "verbose", "stdout": "x"}) is False


def test_running_counts_until_ansibles_recap_replaces_them():
    accounting = EventAccounting()
    accounting(ok("n1", "a", "ansible.builtin.command", changed=True))
    accounting(ok("n1", "b", "ansible.builtin.command", changed=False))
    accounting({"event": "runner_on_skipped", "event_data": {"host": "n1", "task": "c"}})
    assert accounting.hosts["n1"] == HostStats(ok=2, changed=1, skipped=1)
    accounting(
        {
            "event": "playbook_on_stats",
            "event_data": {
                "ok": {"n1": 3, "n2": 1},
                "changed": {"n1": 1},
                "failures": {"n2": 1},
                "dark": {"n3": 1},
                "skipped": {},
            },
        }
    )
    assert accounting.hosts == {
        "n1": HostStats(ok=3, changed=1),
        "n2": HostStats(ok=1, failed=1),
        "n3": HostStats(unreachable=1),
    }


def test_failures_and_unreachables_become_readable_errors_without_uuids():
    secret = str(uuid.uuid4())
    accounting = EventAccounting()
    accounting(
        {
            "event": "runner_on_failed",
            "event_data": {
                "host": "n1",
                "task": "Apply the users",
                "res": {"msg": f"core refused user {secret}:\n  duplicate"},
            },
        }
    )
    accounting(
        {
            "event": "runner_on_failed",
            "event_data": {"host": "n1", "task": "ignored", "ignore_errors": True, "res": {"msg": "fine"}},
        }
    )
    accounting({"event": "runner_on_unreachable", "event_data": {"host": "n2", "res": {"msg": "ssh: no route"}}})
    result = PlaybookResult(rc=2, status="failed", duration_ms=5, hosts=accounting.hosts, errors=accounting.errors)
    assert not result.ok
    assert secret not in result.error
    assert result.error == (
        "n1: task 'Apply the users' failed: core refused user <uuid>: duplicate; n2: unreachable: ssh: no route"
    )
    assert result.hosts["n1"].failed == 1 and result.hosts["n2"].unreachable == 1


def test_a_result_sums_changed_over_hosts_and_explains_silent_failures():
    good = PlaybookResult(rc=0, status="successful", duration_ms=1, hosts={"a": HostStats(changed=2), "b": HostStats()})
    assert good.ok and good.changed == 2 and good.error == ""
    assert "timed out" in PlaybookResult(rc=254, status="timeout", duration_ms=1).error
    assert "status failed (rc=1)" in PlaybookResult(rc=1, status="failed", duration_ms=1).error
