"""terraform/: static checks, then a real init → plan → apply → re-plan → destroy of envs/example
against moto on loopback (3 nodes over two regions and the control plane in a third), the inventory
and the control API registration built from that apply, and checkov over the modules and the plan.
Everything goes through the operators' wrapper (terraform_ops), so the wrapper is what is proven here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from werkzeug.serving import make_server

from harness.aws_emulator import (
    ABROAD_REGION,
    CONTROL_PLANE_REGION,
    LOCAL_REGION,
    PLUGIN_MIRROR,
    REPO,
    aws_env,
    scratch_env,
)
from harness.services import free_port
from terraform_ops import cli
from terraform_ops.runner import PlanSummary, Terraform

VENV_BIN = Path(sys.prefix) / "bin"
CHECKOV = REPO / ".venv" / "tools" / "checkov" / "bin" / "checkov"  # own venv: see scripts/lib.sh
RESOURCES_PER_3_NODES = 40  # 2 tiers x (network 8 + firewall 8) + 3 x (instance + EIP) + key pairs
# modules/control_plane with every toggle off: network 9 + firewall 5 (SG, SSH, HTTPS v4 + v6, egress)
# + key pair, instance, EIP. Every toggle on: tests/integration/test_terraform_control_plane.py.
RESOURCES_CONTROL_PLANE = 17


def _require_tools() -> None:
    assert shutil.which("terraform"), "terraform 1.11 must be on PATH (see docs/runbooks/terraform.md)"
    assert PLUGIN_MIRROR.is_dir(), f"no provider mirror at {PLUGIN_MIRROR} (RAYFLEET_TF_PLUGIN_MIRROR)"


def _checkov(*args: str) -> dict[str, Any]:
    assert CHECKOV.exists(), "checkov is installed by scripts/test.sh (ensure_checkov in scripts/lib.sh)"
    run = subprocess.run(
        [str(CHECKOV), *args, "--skip-download", "--compact", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [check for item in reports for check in item["results"]["failed_checks"]]
    assert not failed, [(check["check_id"], check["resource"], check["file_path"]) for check in failed]
    return reports[0]


# -- static checks -----------------------------------------------------------------------------------


def test_terraform_fmt() -> None:
    _require_tools()
    run = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(REPO / "terraform")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_terraform_validate(tmp_path: Path) -> None:
    _require_tools()
    root = scratch_env(tmp_path, local_nodes=1, abroad_nodes=2)
    env = Terraform(root, plugin_mirror=PLUGIN_MIRROR, progress=None)
    env.run("init", "-backend=false", "-lockfile=readonly", "-input=false", "-no-color")  # the committed lock
    env.run("validate", "-no-color")
    for name in ("vpn_node", "control_plane"):
        module = Terraform(root.parents[1] / "modules" / name, plugin_mirror=PLUGIN_MIRROR, progress=None)
        module.run("init", "-backend=false", "-input=false", "-no-color")
        module.run("validate", "-no-color")


def test_checkov_source_scan() -> None:
    report = _checkov("--directory", str(REPO / "terraform"), "--framework", "terraform")
    assert report["summary"]["passed"] > 20
    # Each skip is an in-code `#checkov:skip=ID:reason` comment with a reason.
    assert all(check["check_result"].get("suppress_comment") for check in report["results"]["skipped_checks"])


# -- a real apply against the emulator -----------------------------------------------------------


@dataclass
class Fleet:
    terraform: Terraform
    root: Path
    plan: dict[str, Any]
    summary: PlanSummary
    outputs: dict[str, Any]
    moto_url: str
    progress: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fleet(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    _require_tools()
    root = scratch_env(tmp_path_factory.mktemp("tf"), local_nodes=1, abroad_nodes=2, control_plane=True)
    progress: list[str] = []
    terraform = Terraform(root, plugin_mirror=PLUGIN_MIRROR, env=aws_env(moto_url), progress=progress.append)
    terraform.init()
    summary = terraform.plan("tfplan")
    plan = terraform.show_json("tfplan")
    started = time.monotonic()
    terraform.apply("tfplan")
    timings = {"apply": time.monotonic() - started}
    fleet = Fleet(terraform, root, plan, summary, terraform.outputs(), moto_url, progress, timings)
    try:
        yield fleet
    finally:
        if terraform.state_resources():
            terraform.destroy()


@pytest.mark.slow
def test_apply_builds_the_nodes(fleet: Fleet) -> None:
    assert fleet.summary == PlanSummary(add=RESOURCES_PER_3_NODES + RESOURCES_CONTROL_PLANE, change=0, destroy=0)
    nodes = {node["name"]: node for node in fleet.outputs["nodes"]["value"]}
    assert sorted(nodes) == ["rf-abroad-1", "rf-abroad-2", "rf-local-1"]
    assert {node["region"] for node in nodes.values()} == {LOCAL_REGION, ABROAD_REGION}
    # Progress: each command announced, terraform's own lines relayed as they came.
    assert any(line.startswith("==> terraform apply") for line in fleet.progress)
    added = RESOURCES_PER_3_NODES + RESOURCES_CONTROL_PLANE
    assert any(f"Apply complete! Resources: {added} added" in line for line in fleet.progress)

    ec2 = boto3.client("ec2", region_name=ABROAD_REGION, endpoint_url=fleet.moto_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert sorted(i["InstanceId"] for i in instances) == sorted(
        node["instance_id"] for node in nodes.values() if node["region"] == ABROAD_REGION
    )
    for instance in instances:
        tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
        assert tags["role"] == "vpn-node" and tags["location_tag"] == "abroad" and tags["region_tier"] == "abroad"
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance["PublicIpAddress"] == nodes[tags["Name"]]["public_ip"]  # the Elastic IP
        volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        assert volume["Encrypted"] and volume["VolumeType"] == "gp3"
    addresses = ec2.describe_addresses()["Addresses"]
    assert sorted(a["InstanceId"] for a in addresses) == sorted(i["InstanceId"] for i in instances)

    group_id = instances[0]["SecurityGroups"][0]["GroupId"]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    ingress = {
        (r["IpProtocol"], r["FromPort"], r["CidrIpv4"]) for r in rules["SecurityGroupRules"] if not r["IsEgress"]
    }
    assert ingress == {
        ("tcp", 22, "198.51.100.0/24"),
        *((protocol, port, "0.0.0.0/0") for protocol in ("tcp", "udp") for port in (443, 8443)),
    }


@pytest.mark.slow
def test_control_plane_from_the_example(fleet: Fleet) -> None:
    """The control plane with every toggle off: HTTPS from anywhere, SSH from the admin CIDRs, and
    nothing else in; an Elastic IP; no database or load balancer in the outputs."""
    host = fleet.outputs["control_plane"]["value"]
    assert (host["name"], host["region"]) == ("rf-control", CONTROL_PLANE_REGION)
    assert host["db_address"] is None and host["lb_dns_name"] is None and host["db_master_user_secret_arn"] is None

    ec2 = boto3.client("ec2", region_name=CONTROL_PLANE_REGION, endpoint_url=fleet.moto_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    (instance,) = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert instance["InstanceId"] == host["instance_id"] and instance["PrivateIpAddress"] == host["private_ip"]
    assert {tag["Key"]: tag["Value"] for tag in instance["Tags"]}["role"] == "control-plane"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Encrypted"]
    (address,) = ec2.describe_addresses()["Addresses"]
    assert address["InstanceId"] == instance["InstanceId"]
    assert address["PublicIp"] == instance["PublicIpAddress"] == host["ansible_host"]

    (group,) = instance["SecurityGroups"]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])
    ingress = {
        (r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4") or r.get("CidrIpv6"))
        for r in rules["SecurityGroupRules"]
        if not r["IsEgress"]
    }
    assert ingress == {("tcp", 22, 22, "198.51.100.0/24"), ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 443, 443, "::/0")}
    # PostgreSQL and Redis run on the instance and are never reachable from outside it.
    for _protocol, low, high, _cidr in ingress:
        assert not (low <= 5432 <= high or low <= 6379 <= high)


@pytest.mark.slow
def test_replan_shows_no_drift(fleet: Fleet) -> None:
    assert fleet.terraform.has_drift() is False


@pytest.mark.slow
def test_inventory_from_the_apply(fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inventory" / "terraform.yml"
    assert cli.main(["--dir", str(fleet.root), "inventory", "--output", str(path)]) == 0
    assert "3 hosts, control plane rf-control" in capsys.readouterr().out

    run = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert "WARNING" not in run.stderr, run.stderr
    inventory = json.loads(run.stdout)
    nodes = {node["name"]: node for node in fleet.outputs["nodes"]["value"]}
    assert sorted(inventory["vpn_nodes"]["hosts"]) == sorted(nodes)
    assert inventory["control_plane"]["hosts"] == ["rf-control"]
    # The playbook puts Redis (and PostgreSQL, without a managed database) on the same host.
    assert inventory["control_plane_redis"]["hosts"] == ["rf-control"]
    control_plane = inventory["_meta"]["hostvars"]["rf-control"]
    assert control_plane["ansible_host"] == fleet.outputs["control_plane"]["value"]["ansible_host"]
    assert control_plane["rayfleet_control_plane_region"] == CONTROL_PLANE_REGION
    assert "xray_core" not in control_plane
    assert sorted(inventory["location_abroad"]["hosts"]) == ["rf-abroad-1", "rf-abroad-2"]
    assert inventory["region_me_central_1"]["hosts"] == ["rf-local-1"]
    assert sorted(inventory["tier_abroad"]["hosts"]) == ["rf-abroad-1", "rf-abroad-2"]
    for name, node in nodes.items():
        hostvars = inventory["_meta"]["hostvars"][name]
        assert hostvars["ansible_host"] == node["public_ip"]
        assert hostvars["rayfleet_node_instance_id"] == node["instance_id"]
        assert hostvars["xray_core"] == "xray"


@pytest.fixture
def live_api(app) -> Iterator[str]:
    """The test app (PostgreSQL + Redis) on a real HTTP port."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.postgres
def test_registration_is_idempotent(
    fleet: Fleet, live_api: str, principals, client, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAYFLEET_ADMIN_PASSWORD", principals.admin.secret)
    register = ["--dir", str(fleet.root), "register", "--api-url", live_api, "--admin-user", "alice", "--provision"]

    assert cli.main(register) == 0
    first = capsys.readouterr().out
    assert "3 created, 0 unchanged, 0 differ, 3 provisioning queued" in first
    assert "secret" not in first.lower()  # the agent's credentials come from the provision job only

    assert cli.main(register) == 0
    assert "0 created, 3 unchanged, 0 differ, 0 provisioning queued" in capsys.readouterr().out

    listed = client.get("/api/v1/nodes", headers=principals.admin.headers).json["items"]
    assert sorted(node["name"] for node in listed) == ["node-a", "node-b", "rf-abroad-1", "rf-abroad-2", "rf-local-1"]
    for node in fleet.outputs["nodes"]["value"]:
        row = next(item for item in listed if item["name"] == node["name"])
        assert (row["public_ip"], row["region"], row["location_tag"]) == (
            node["public_ip"], node["region"], node["location_tag"],
        )  # fmt: skip

    # A node re-created with another address: reported (exit 3), never overwritten or duplicated.
    outputs = json.loads(json.dumps(fleet.outputs))
    outputs["nodes"]["value"][0]["public_ip"] = "192.0.2.99"
    saved = tmp_path / "outputs.json"
    saved.write_text(json.dumps(outputs))
    assert cli.main([*register[:2], "register", "--outputs-json", str(saved), *register[3:]]) == cli.EXIT_DIFFERS
    assert "DIFFERS   rf-local-1" in capsys.readouterr().out
    assert len(client.get("/api/v1/nodes", headers=principals.admin.headers).json["items"]) == 5


@pytest.mark.slow
def test_checkov_plan_scan(fleet: Fleet, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(fleet.plan))
    # The source tree enriches the plan's findings with the in-code skip comments (and their reasons).
    report = _checkov(
        "--file", str(plan), "--framework", "terraform_plan", "--repo-root-for-plan-enrichment", str(REPO)
    )
    assert report["summary"]["passed"] > 50
    assert all(check["check_result"].get("suppress_comment") for check in report["results"]["skipped_checks"])


@pytest.mark.slow
def test_destroy_leaves_nothing(fleet: Fleet) -> None:
    started = time.monotonic()
    fleet.terraform.destroy()
    fleet.timings["destroy"] = time.monotonic() - started
    assert fleet.terraform.state_resources() == []
    for region in (LOCAL_REGION, ABROAD_REGION, CONTROL_PLANE_REGION):
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=fleet.moto_url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        assert set(states) <= {"terminated"}
        assert ec2.describe_addresses()["Addresses"] == []
