"""roles/base without touching this machine: syntax, preflight, argument specs, and the firewall for real.

The role itself changes packages, the kernel and the firewall, so it only runs whole in the podman
node scenario (molecule/node). Here: its templates are rendered with Ansible's own templating and the
nftables rulesets are checked with `nft -c`, loaded into throwaway network namespaces, and probed with
real connections; its preflight tasks run on localhost against good and bad inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.netns import (
    CLIENT_V4,
    CLIENT_V6,
    NODE_V4,
    NODE_V6,
    OTHER_V4,
    OTHER_V6,
    node_and_client,
)
from tests.fixtures.xray_role import collections_dir

pytestmark = pytest.mark.slow  # about 45 s: each ansible-playbook run takes seconds

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "base"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
TEMPLATES = ["nftables.conf", "sysctl.conf", "limits.conf", "systemd-manager.conf", "modules-load.conf"]
LOCAL = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}

# Firewall inputs to render; each is checked with `nft -c` and for what it must contain.
SCENARIOS: dict[str, dict] = {
    "dual_stack": {
        "base_ssh_allowed_cidrs": ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"],
        "base_open_tcp_ports": [8443, 443, 443],
        "base_open_udp_ports": [443],
    },
    "ipv4_only_custom_ssh_port": {
        "base_ssh_allowed_cidrs": ["10.0.0.0/8"],
        "base_ssh_port": 2222,
        "base_sysctl_extra": {"net.core.somaxconn": 4096, "vm.swappiness": 10},
    },
    "ipv6_only": {"base_ssh_allowed_cidrs": ["2001:db8:1::/48"], "base_open_tcp_ports": [443]},
    "open_to_world": {"base_ssh_open_to_world": True, "base_open_tcp_ports": [443]},
    "keep_other_tables": {
        "base_ssh_allowed_cidrs": ["192.0.2.0/24"],
        "base_firewall_flush_ruleset": False,
        "base_firewall_extra_input_rules": ["ip saddr 192.0.2.10 tcp dport 9100 accept"],
    },
    "probed": {
        "base_ssh_allowed_cidrs": [CLIENT_V4, f"{CLIENT_V6}/128"],
        "base_ssh_port": 2222,
        "base_open_tcp_ports": [8443],
        "base_open_udp_ports": [8443],
    },
    "broken_extra_rule": {"base_ssh_allowed_cidrs": ["192.0.2.0/24"], "base_firewall_extra_input_rules": ["bogus"]},
}
VALID = [name for name in SCENARIOS if name != "broken_extra_rule"]


def _ansible_playbook(playbook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK.exists(), f"{ANSIBLE_PLAYBOOK} is missing: install requirements-dev.txt"
    env = {key: value for key, value in os.environ.items() if key not in {"SSH_CONNECTION", "SSH_CLIENT"}}
    # The role by its collection name, rayfleet.fleet.base, as the playbooks use it.
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections_dir()), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", *args, str(playbook)],
        cwd=playbook.parent,  # away from the repo's ansible.cfg: each test says what it needs
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _nft_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)


def test_a_playbook_applying_the_role_passes_syntax_check(tmp_path):
    playbook = _write_yaml(
        tmp_path / "site.yml",
        [{"name": "Base", "hosts": "all", "become": True, "roles": [{"role": "rayfleet.fleet.base"}]}],
    )
    result = _ansible_playbook(playbook, "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """Every scenario's templates, rendered by ansible-playbook with the role's defaults and vars."""
    out = tmp_path_factory.mktemp("rendered")
    plays = []
    for name, overrides in SCENARIOS.items():
        (out / name).mkdir()
        plays.append(
            {
                "name": f"Render {name}",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars": LOCAL,
                # Later files win: the scenario overrides the defaults; vars/main.yml holds the internals.
                "vars_files": [
                    str(ROLE / "defaults" / "main.yml"),
                    str(_write_yaml(out / f"{name}.yml", overrides)),
                    str(ROLE / "vars" / "main.yml"),
                ],
                "tasks": [
                    {
                        "name": "Render the role's templates",
                        "ansible.builtin.template": {
                            "src": str(ROLE / "templates" / "{{ item }}.j2"),
                            "dest": str(out / name / "{{ item }}"),
                            "mode": "0644",
                        },
                        "loop": TEMPLATES,
                    }
                ],
            }
        )
    result = _ansible_playbook(_write_yaml(out / "render.yml", plays))
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.parametrize("scenario", VALID)
def test_rendered_ruleset_passes_nft_check(rendered, scenario):
    result = _nft_check(rendered / scenario / "nftables.conf")
    assert result.returncode == 0, result.stderr


def test_nft_check_catches_a_broken_rule(rendered):
    result = _nft_check(rendered / "broken_extra_rule" / "nftables.conf")
    assert result.returncode != 0 and "bogus" in result.stderr


def test_ruleset_drops_by_default_and_splits_ssh_sources_by_family(rendered):
    text = (rendered / "dual_stack" / "nftables.conf").read_text()
    assert text.startswith("#!/usr/sbin/nft -f\n") and "\nflush ruleset\n" in text
    assert "type filter hook input priority filter; policy drop;" in text
    assert "type filter hook forward priority filter; policy drop;" in text
    assert "type filter hook output priority filter; policy accept;" in text
    assert "elements = { 203.0.113.7, 198.51.100.0/24 }" in text
    assert "elements = { 2001:db8::/32 }" in text
    assert "tcp dport 22 ip saddr @ssh_allowed_v4 accept" in text
    assert "tcp dport 22 ip6 saddr @ssh_allowed_v6 accept" in text
    assert "tcp dport { 443, 8443 } accept" in text  # sorted, duplicates dropped
    assert "udp dport { 443 } accept" in text


def test_ssh_open_to_world_has_no_source_filter(rendered):
    text = (rendered / "open_to_world" / "nftables.conf").read_text()
    assert "tcp dport 22 accept" in text
    assert "@ssh_allowed" not in text.split("chain input")[1]


def test_custom_ssh_port_and_no_inbounds(rendered):
    text = (rendered / "ipv4_only_custom_ssh_port" / "nftables.conf").read_text()
    assert "tcp dport 2222 ip saddr @ssh_allowed_v4 accept" in text
    assert "tcp dport 22 " not in text and "udp dport {" not in text


def _in_fresh_netns(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, check=False)


def test_flushing_ruleset_replaces_everything_on_reload(rendered):
    ruleset = rendered / "dual_stack" / "nftables.conf"
    result = _in_fresh_netns(f"nft add table ip other; nft -f {ruleset}; nft -f {ruleset}; nft list tables")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["table", "inet", "rayfleet"]


def test_keeping_other_tables_replaces_only_ours_on_reload(rendered):
    ruleset = rendered / "keep_other_tables" / "nftables.conf"
    text = ruleset.read_text()
    assert "flush ruleset" not in text and "ip saddr 192.0.2.10 tcp dport 9100 accept" in text
    loads = f"nft add table ip other; nft -f {ruleset}; nft -f {ruleset}"
    result = _in_fresh_netns(f"{loads}; nft list tables; nft list chain inet rayfleet input")
    assert result.returncode == 0, result.stderr
    assert "table ip other" in result.stdout and result.stdout.count("table inet rayfleet") == 2
    assert result.stdout.count("tcp dport 9100 accept") == 1  # reloaded, not appended


def test_firewall_lets_in_only_what_it_should(rendered):
    ssh, inbound, closed = 2222, 8443, 9999
    with node_and_client() as hosts, hosts.listening(f"tcp:{ssh}", f"tcp:{inbound}", f"tcp:{closed}", f"udp:{inbound}"):
        # Without the firewall every port answers: what is blocked later is blocked by the rules.
        assert hosts.probe([("tcp", OTHER_V4, NODE_V4, ssh), ("tcp", OTHER_V6, NODE_V6, closed)]) == ["open", "open"]
        hosts.load_ruleset(rendered / "probed" / "nftables.conf")
        probes = {
            "ssh from the allowed IPv4 address": (("tcp", CLIENT_V4, NODE_V4, ssh), "open"),
            "ssh from another IPv4 address": (("tcp", OTHER_V4, NODE_V4, ssh), "blocked"),
            "ssh from the allowed IPv6 address": (("tcp", CLIENT_V6, NODE_V6, ssh), "open"),
            "ssh from another IPv6 address": (("tcp", OTHER_V6, NODE_V6, ssh), "blocked"),
            "inbound tcp port over IPv4": (("tcp", OTHER_V4, NODE_V4, inbound), "open"),
            "inbound tcp port over IPv6": (("tcp", OTHER_V6, NODE_V6, inbound), "open"),
            "inbound udp port": (("udp", OTHER_V4, NODE_V4, inbound), "open"),
            "a listening port not opened": (("tcp", CLIENT_V4, NODE_V4, closed), "blocked"),
            "a listening port not opened, IPv6": (("tcp", CLIENT_V6, NODE_V6, closed), "blocked"),
            "udp port not opened": (("udp", CLIENT_V4, NODE_V4, closed), "blocked"),
        }
        verdicts = hosts.probe([probe for probe, _ in probes.values()])
    got = dict(zip(probes, verdicts, strict=True))
    assert got == {what: expected for what, (_, expected) in probes.items()}


def _sysctl_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)


def test_sysctl_file_holds_the_defaults_with_the_extras_merged_over_them(rendered):
    defaults = {
        key: str(value)
        for key, value in yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["base_sysctl"].items()
    }
    assert _sysctl_file(rendered / "dual_stack" / "sysctl.conf") == defaults
    assert _sysctl_file(rendered / "ipv4_only_custom_ssh_port" / "sysctl.conf") == {
        **defaults,
        "net.core.somaxconn": "4096",
        "vm.swappiness": "10",
    }
    assert defaults["net.ipv4.tcp_congestion_control"] == "bbr" and defaults["net.core.default_qdisc"] == "fq"


def test_limits_and_modules_files(rendered):
    limits = (rendered / "dual_stack" / "limits.conf").read_text()
    for who in ("*", "root"):
        for kind in ("soft", "hard"):
            assert f"{who:<8}{kind:<8}nofile  1048576" in limits
    manager = (rendered / "dual_stack" / "systemd-manager.conf").read_text()
    assert "[Manager]\nDefaultLimitNOFILE=1048576:1048576\n" in manager
    modules = (rendered / "dual_stack" / "modules-load.conf").read_text().splitlines()
    assert [line for line in modules if line and not line.startswith("#")] == ["tcp_bbr"]


# Preflight cases: the task vars given to the role's preflight, the SSH_CONNECTION it sees, and either
# None (must pass) or a piece of the failure message. __base_in_container is pinned: this test must
# not depend on whether the machine running it is a container.
GOOD = {"base_ssh_allowed_cidrs": ["203.0.113.0/24", "2001:db8::/32"], "__base_in_container": False}
PREFLIGHT: dict[str, tuple[dict, str | None, str | None]] = {
    "good": ({**GOOD, "base_open_tcp_ports": [443, "8443"]}, None, None),
    "open_to_world": ({**GOOD, "base_ssh_allowed_cidrs": [], "base_ssh_open_to_world": True}, None, None),
    "empty_cidrs": ({**GOOD, "base_ssh_allowed_cidrs": []}, None, "base_ssh_allowed_cidrs is empty"),
    "bad_ports": (
        {**GOOD, "base_open_tcp_ports": [443, 70000, "http", 0]},
        None,
        "Ports must be integers 1-65535, these are not: base_open_tcp_ports: 70000, http, 0",
    ),
    "bad_ssh_port": ({**GOOD, "base_ssh_port": 65536}, None, "these are not: base_ssh_port: 65536"),
    "bad_udp_port": ({**GOOD, "base_open_udp_ports": [True]}, None, "these are not: base_open_udp_ports: True"),
    "bad_cidrs": (
        {**GOOD, "base_ssh_allowed_cidrs": ["198.51.100.1/24", "2001:db8::/32", "not-an-ip"]},
        None,
        "these are not: 198.51.100.1/24, not-an-ip",
    ),
    "ssh_port_opened": ({**GOOD, "base_open_tcp_ports": [22, 443]}, None, "contains the SSH port 22"),
    "nofile_above_nr_open": (
        {**GOOD, "base_nofile_limit": 2000000},
        None,
        "between 1024 and fs.nr_open (1048576, the kernel's default",
    ),
    "nofile_with_raised_nr_open": (
        {**GOOD, "base_nofile_limit": 2000000, "base_sysctl_extra": {"fs.nr_open": 4194304}},
        None,
        None,
    ),
    "nofile_above_file_max": (
        {**GOOD, "base_nofile_limit": 2000000, "base_sysctl_extra": {"fs.nr_open": 4194304, "fs.file-max": 1000000}},
        None,
        "below fs.file-max if base_sysctl sets it (1000000), got 2000000",
    ),
    "container_with_apply": ({**GOOD, "__base_in_container": True}, None, "This host is a container"),
    "container_without_apply": (
        {**GOOD, "__base_in_container": True, "base_sysctl_apply": False, "base_time_sync_start": False},
        None,
        None,
    ),
    "lockout": (GOOD, "192.0.2.50 51234 10.0.0.1 22", "from 192.0.2.50, which is not in base_ssh_allowed_cidrs"),
    "connected_from_allowed": (GOOD, "2001:db8::5 51234 2001:db8::1 22", None),
    "lockout_check_off": ({**GOOD, "base_ssh_lockout_check": False}, "192.0.2.50 51234 10.0.0.1 22", None),
}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory) -> dict[str, dict]:
    """Run the role's preflight once per case on localhost; each case's outcome as {passed, msg}."""
    out = tmp_path_factory.mktemp("preflight")
    plays = [{"name": "Gather facts once", "hosts": "localhost", "connection": "local", "vars": LOCAL, "tasks": []}]
    for name, (task_vars, ssh_connection, _) in PREFLIGHT.items():
        run_preflight = {
            "name": "Run the preflight",
            "ansible.builtin.include_role": {"name": "rayfleet.fleet.base", "tasks_from": "preflight"},
            "vars": task_vars,  # task vars beat the role's vars/main.yml
        }
        outcome = out / f"{name}.json"
        plays.append(
            {
                "name": f"Preflight {name}",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars": LOCAL,
                "tasks": [
                    {
                        "name": "Preflight",
                        "environment": {"SSH_CONNECTION": ssh_connection} if ssh_connection else {},
                        "block": [
                            run_preflight,
                            {
                                "name": "Record a pass",
                                "ansible.builtin.copy": {"content": '{"passed": true}', "dest": str(outcome)},
                            },
                        ],
                        "rescue": [
                            {
                                "name": "Record the failure",
                                "ansible.builtin.copy": {
                                    "content": "{{ {'passed': false, 'msg': ansible_failed_result.msg} | to_json }}",
                                    "dest": str(outcome),
                                },
                            }
                        ],
                    }
                ],
            }
        )
    result = _ansible_playbook(_write_yaml(out / "preflight.yml", plays))
    assert result.returncode == 0, result.stdout + result.stderr
    return {name: json.loads((out / f"{name}.json").read_text()) for name in PREFLIGHT}


@pytest.mark.parametrize("case", PREFLIGHT)
def test_preflight(preflight, case):
    expected_message = PREFLIGHT[case][2]
    outcome = preflight[case]
    if expected_message is None:
        assert outcome == {"passed": True}
    else:
        assert not outcome["passed"]
        assert expected_message in " ".join(outcome["msg"].split()), outcome["msg"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, None),
        ({"base_ssh_port": "ssh"}, "base_ssh_port"),
        ({"base_time_sync_daemon": "ntpd"}, "base_time_sync_daemon"),
        ({"base_open_tcp_ports": "443"}, None),  # Ansible's own coercion: a string becomes a one-item list
        ({"base_sysctl": ["net.core.somaxconn=1024"]}, "base_sysctl"),
    ],
)
def test_argument_specs_validate_with_ansible(tmp_path, overrides, message):
    """The defaults satisfy the specs under Ansible's own validator, and wrong types are refused."""
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    play = {
        "name": "Validate",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": LOCAL,
        "tasks": [
            {
                "name": "Validate the role's inputs",
                "ansible.builtin.validate_argument_spec": {
                    "argument_spec": specs,
                    "provided_arguments": {**defaults, **overrides},
                },
            }
        ],
    }
    result = _ansible_playbook(_write_yaml(tmp_path / "validate.yml", [play]))
    if message is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0 and message in result.stdout, result.stdout
