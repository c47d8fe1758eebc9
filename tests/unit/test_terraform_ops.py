"""terraform_ops without terraform: outputs → nodes → inventory, registration decisions, plan summaries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from terraform_ops import cli
from terraform_ops.inventory import (
    HEADER,
    OutputError,
    build_inventory,
    control_plane_from_outputs,
    group_name,
    nodes_from_outputs,
    write_inventory,
)
from terraform_ops.register import ApiError, NodeDefaults, register_nodes
from terraform_ops.runner import PlanSummary

NODE = {
    "name": "rf-abroad-1",
    "public_ip": "198.51.100.21",
    "private_ip": "10.60.0.4",
    "region": "eu-central-1",
    "region_tier": "abroad",
    "location_tag": "abroad",
    "availability_zone": "eu-central-1a",
    "instance_id": "i-0123456789abcdef0",
}


def test_nodes_from_every_output_shape() -> None:
    full = {"nodes": {"sensitive": False, "type": ["list", []], "value": [NODE]}, "other": {"value": 1}}
    for outputs in (full, {"nodes": [NODE]}, [NODE]):
        (node,) = nodes_from_outputs(outputs)
        assert (node.name, node.public_ip, node.region, node.location_tag) == (
            "rf-abroad-1", "198.51.100.21", "eu-central-1", "abroad",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "No output 'nodes'"),
        ({"nodes": {"value": "x"}}, "not a list"),
        ([{**NODE, "public_ip": None}], "no usable public_ip"),
        ([{**NODE, "location_tag": "a b"}], "not a slug"),
        ([NODE, NODE], "repeated: rf-abroad-1"),
        ([{k: v for k, v in NODE.items() if k != "region"}], "lacks 'region'"),
    ],
)
def test_bad_outputs_are_refused(outputs: Any, message: str) -> None:
    with pytest.raises(OutputError, match=message):
        nodes_from_outputs(outputs)


def test_inventory_groups_and_file(tmp_path) -> None:
    local = {**NODE, "name": "rf-local-1", "region": "me-central-1", "region_tier": "local", "location_tag": "local"}
    inventory = build_inventory(nodes_from_outputs([NODE, local]), core="v2ray")
    children = inventory["all"]["children"]
    assert set(children) == {
        "vpn_nodes", "location_abroad", "location_local", "region_eu_central_1", "region_me_central_1",
        "tier_abroad", "tier_local",
    }  # fmt: skip
    assert children["vpn_nodes"]["hosts"]["rf-local-1"]["ansible_host"] == "198.51.100.21"
    assert children["vpn_nodes"]["hosts"]["rf-local-1"]["xray_core"] == "v2ray"
    path = write_inventory(tmp_path / "inventory" / "terraform.yml", inventory)
    text = path.read_text()
    assert text.startswith(HEADER) and yaml.safe_load(text) == inventory
    assert group_name("region", "us-gov-west-1") == "region_us_gov_west_1"


CONTROL_PLANE = {
    "name": "rf-control",
    "ansible_host": "198.51.100.30",
    "private_ip": "10.70.0.10",
    "region": "eu-central-1",
    "availability_zone": "eu-central-1a",
    "instance_id": "i-0fedcba9876543210",
    "db_address": None,
    "db_port": None,
    "db_name": None,
    "db_username": None,
    "db_master_user_secret_arn": None,
    "lb_dns_name": None,
}


def test_control_plane_from_every_output_shape() -> None:
    full = {
        "nodes": {"sensitive": False, "type": ["list", []], "value": [NODE]},
        "control_plane": {"sensitive": False, "type": ["object", {}], "value": CONTROL_PLANE},
    }
    for outputs in (full, {"nodes": [NODE], "control_plane": CONTROL_PLANE}):
        spec = control_plane_from_outputs(outputs)
        assert spec is not None and (spec.name, spec.ansible_host, spec.region) == (
            "rf-control", "198.51.100.30", "eu-central-1",
        )  # fmt: skip
    # No control plane built: the output is null, absent, or the outputs are a bare list of nodes.
    null = {"nodes": full["nodes"], "control_plane": {"sensitive": False, "type": "dynamic", "value": None}}
    for outputs in (null, {"nodes": [NODE]}, [NODE]):
        assert control_plane_from_outputs(outputs) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**CONTROL_PLANE, "ansible_host": None}, "lacks ansible_host"),
        ({k: v for k, v in CONTROL_PLANE.items() if k != "instance_id"}, "lacks instance_id"),
        ({**CONTROL_PLANE, "private_ip": "db.internal"}, "private_ip 'db.internal' is not an IP address"),
        ({**CONTROL_PLANE, "name": "rf control"}, "not a valid host name"),
        ("rf-control", "not an object"),
    ],
)
def test_bad_control_plane_outputs_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(OutputError, match=message):
        control_plane_from_outputs({"control_plane": raw})


def test_inventory_has_a_control_plane_group(tmp_path) -> None:
    managed = {
        **CONTROL_PLANE,
        "db_address": "rf-control-db.abc.eu-central-1.rds.amazonaws.com",
        "db_port": 5432,
        "db_name": "rayfleet",
        "db_username": "rayfleet",
        "db_master_user_secret_arn": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:rds!db-1",
        "lb_dns_name": "rf-control-cp-1.eu-central-1.elb.amazonaws.com",
    }
    for raw, expected in (
        (CONTROL_PLANE, {"ansible_host": "198.51.100.30", "rayfleet_control_plane_private_ip": "10.70.0.10",
                         "rayfleet_control_plane_region": "eu-central-1",
                         "rayfleet_control_plane_instance_id": "i-0fedcba9876543210"}),
        (managed, {"rayfleet_control_plane_db_address": managed["db_address"],
                   "rayfleet_control_plane_db_port": 5432,
                   "rayfleet_control_plane_lb_dns_name": managed["lb_dns_name"]}),
    ):  # fmt: skip
        outputs = {"nodes": [NODE], "control_plane": raw}
        inventory = build_inventory(nodes_from_outputs(outputs), control_plane=control_plane_from_outputs(outputs))
        children = inventory["all"]["children"]
        # The nodes' groups are untouched; the control plane is in its own groups only (PostgreSQL's
        # only without a managed database, whose address the app then connects to).
        own = (
            ["control_plane", "control_plane_redis"]
            if raw is managed
            else ["control_plane", "control_plane_db", "control_plane_redis"]
        )
        assert list(children)[: len(own) + 1] == ["vpn_nodes", *own]
        assert all(children[name]["hosts"] == {"rf-control": None} for name in own[1:])
        assert list(children["vpn_nodes"]["hosts"]) == ["rf-abroad-1"]
        hostvars = children["control_plane"]["hosts"]["rf-control"]
        assert expected.items() <= hostvars.items()
        assert all(value is not None for value in hostvars.values())  # unset parts are left out
        assert not any("password" in key for key in hostvars)
        assert all("rf-control" not in group["hosts"] for name, group in children.items() if name not in own)
        if raw is managed:
            assert hostvars["control_plane_database_host"] == managed["db_address"]
    assert (
        "rayfleet_control_plane_db_address"
        not in build_inventory([], control_plane=control_plane_from_outputs({"control_plane": CONTROL_PLANE}))["all"][
            "children"
        ]["control_plane"]["hosts"]["rf-control"]
    )

    with pytest.raises(OutputError, match="share the name"):
        build_inventory(nodes_from_outputs([NODE]), control_plane=control_plane_from_outputs(
            {"control_plane": {**CONTROL_PLANE, "name": "rf-abroad-1"}}))  # fmt: skip


def test_inventory_command_writes_the_control_plane(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "outputs.json"
    saved.write_text(
        json.dumps({"nodes": {"value": [NODE]}, "control_plane": {"type": "dynamic", "value": CONTROL_PLANE}})
    )
    path = tmp_path / "terraform.yml"
    assert cli.main(["inventory", "--outputs-json", str(saved), "--output", str(path)]) == 0
    assert "1 hosts, control plane rf-control" in capsys.readouterr().out
    children = yaml.safe_load(path.read_text())["all"]["children"]
    assert children["control_plane"]["hosts"]["rf-control"]["ansible_host"] == "198.51.100.30"

    saved.write_text(json.dumps({"nodes": {"value": [NODE]}, "control_plane": {"type": "dynamic", "value": None}}))
    assert cli.main(["inventory", "--outputs-json", str(saved), "--output", str(path)]) == 0
    assert "control_plane" not in yaml.safe_load(path.read_text())["all"]["children"]


class FakeApi:
    """In-memory stand-in for ControlApi, to check the decisions (the real HTTP path is in integration)."""

    def __init__(self, existing: list[dict[str, Any]], race: bool = False) -> None:
        self.nodes = {node["name"]: node for node in existing}
        self.race = race
        self.provisioned: list[int] = []

    def list_nodes(self) -> list[dict[str, Any]]:
        return list(self.nodes.values())

    def create_node(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.race:  # someone else registered it between our list and our create
            self.nodes[body["name"]] = {**body, "id": 99}
            raise ApiError("taken", 409, "node_name_taken")
        node = {**body, "id": len(self.nodes) + 1}
        self.nodes[body["name"]] = node
        return node

    def provision(self, node_id: int) -> bool:
        self.provisioned.append(node_id)
        return True


def test_registration_creates_compares_and_provisions_only_new_nodes() -> None:
    nodes = nodes_from_outputs([NODE, {**NODE, "name": "rf-abroad-2", "public_ip": "198.51.100.22"}])
    defaults = NodeDefaults(inbounds=({"profile": "vless-ws-tls", "port": 443, "path": "/ws"},),
                            tls_server_name="{name}.vpn.example.com")  # fmt: skip
    body = defaults.body(nodes[0])
    assert body["tls_server_name"] == "rf-abroad-1.vpn.example.com" and body["inbounds"][0]["port"] == 443

    api = FakeApi([{"id": 7, "name": "rf-abroad-1", "region": "eu-central-1", "location_tag": "abroad",
                    "public_ip": "198.51.100.21", "core": "xray"}])  # fmt: skip
    result = register_nodes(api, nodes, defaults=defaults, provision=True, progress=None)
    assert (result.created, result.unchanged, result.provisioned) == (["rf-abroad-2"], ["rf-abroad-1"], ["rf-abroad-2"])
    assert api.provisioned == [2]

    again = register_nodes(api, nodes, provision=True, progress=None)
    assert (again.created, sorted(again.unchanged), again.provisioned) == ([], ["rf-abroad-1", "rf-abroad-2"], [])


def test_registration_reports_differences_and_survives_a_race() -> None:
    api = FakeApi([{"id": 7, "name": "rf-abroad-1", "region": "eu-central-1", "location_tag": "abroad",
                    "public_ip": "203.0.113.5", "core": "xray"}])  # fmt: skip
    result = register_nodes(api, nodes_from_outputs([NODE]), progress=None)
    assert result.differs == {"rf-abroad-1": {"public_ip": ("203.0.113.5", "198.51.100.21")}}
    assert api.nodes["rf-abroad-1"]["public_ip"] == "203.0.113.5"  # never overwritten

    raced = register_nodes(FakeApi([], race=True), nodes_from_outputs([NODE]), progress=None)
    assert (raced.created, raced.unchanged) == ([], ["rf-abroad-1"])


def test_plan_summary_counts_actions() -> None:
    plan = {
        "resource_changes": [
            {"change": {"actions": ["create"]}},
            {"change": {"actions": ["update"]}},
            {"change": {"actions": ["delete", "create"]}},
            {"change": {"actions": ["no-op"]}},
        ]
    }
    summary = PlanSummary.of(plan)
    assert (summary.add, summary.change, summary.destroy) == (2, 1, 1)
    assert str(summary) == "2 to add, 1 to change, 1 to destroy" and summary.has_changes
    assert not PlanSummary.of({}).has_changes
