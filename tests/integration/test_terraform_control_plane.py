"""terraform/modules/control_plane with every toggle on (load balancer, managed PostgreSQL, port 80
for ACME): a real init → plan → apply → re-plan → destroy against moto on loopback, the firewall
checked rule by rule, checkov over the plan. The toggles-off shape is applied as part of
envs/example in test_terraform.py (the fleet fixture), so each combination is applied once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from harness.aws_emulator import MOTO_AMIS, PLUGIN_MIRROR, REPO, aws_env
from terraform_ops.inventory import build_inventory, control_plane_from_outputs
from terraform_ops.runner import PlanSummary, Terraform

from .test_terraform import _checkov, _require_tools

REGION = "eu-west-2"
MODULE = REPO / "terraform" / "modules" / "control_plane"
ADMIN_CIDR = "198.51.100.0/24"
# network 9 + instance firewall 6 (SG, SSH, HTTPS from the LB, HTTP v4+v6, egress) + key pair,
# instance, EIP + LB 8 (SG, 443 v4+v6, egress, LB, target group, attachment, listener)
# + database 7 (2 subnets, SG, 5432 rule, subnet group, parameter group, instance) = 33
RESOURCES_ALL_TOGGLES = 33

ROOT_MODULE = """
provider "aws" {
  region = "%(region)s"
}

variable "public_key" {
  type = string
}

variable "lb_certificate_arn" {
  type = string
}

# Off so that the test can destroy; the checkov scan plans with it on (the module's default).
variable "deletion_protection" {
  type    = bool
  default = false
}

# null in the applied shape: with an explicit CA the provider modifies the new RDS instance and waits
# for it a second time (about 80 s more against moto). The checkov scan plans with the module's default.
variable "db_ca_cert_identifier" {
  type    = string
  default = null
}

module "control_plane" {
  source = "%(module)s"

  name_prefix             = "rf"
  admin_cidrs             = ["%(admin_cidr)s"]
  public_key              = var.public_key
  detailed_monitoring     = false
  allow_http_acme         = true
  create_load_balancer    = true
  lb_certificate_arn      = var.lb_certificate_arn
  lb_deletion_protection  = var.deletion_protection
  create_managed_postgres = true
  db_deletion_protection  = var.deletion_protection
  db_ca_cert_identifier   = var.db_ca_cert_identifier
  db_skip_final_snapshot  = true
  tags                    = { project = "rayfleet", managed_by = "terraform" }
}

output "host" {
  value = module.control_plane.host
}

output "db_endpoint" {
  value = module.control_plane.db_endpoint
}

output "lb_dns_name" {
  value = module.control_plane.lb_dns_name
}

output "security_group_id" {
  value = module.control_plane.security_group_id
}

output "db_security_group_id" {
  value = module.control_plane.db_security_group_id
}
"""


@dataclass
class Deployment:
    terraform: Terraform
    plan: dict[str, Any]
    summary: PlanSummary
    outputs: dict[str, Any]
    moto_url: str
    protected_plan: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.moto_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip

    def value(self, name: str) -> Any:
        return self.outputs[name]["value"]


@pytest.fixture(scope="module")
def deployment(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    _require_tools()
    assert MOTO_AMIS.exists()
    root = tmp_path_factory.mktemp("tf-control-plane")
    key = root / "admin_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rayfleet-test", "-f", str(key)], check=True)
    acm = boto3.client("acm", region_name=REGION, endpoint_url=moto_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    certificate = acm.request_certificate(DomainName="api.example.com")
    (root / "main.tf").write_text(ROOT_MODULE % {"region": REGION, "module": MODULE, "admin_cidr": ADMIN_CIDR})
    variables = {"public_key": key.with_suffix(".pub").read_text().strip(),
                 "lb_certificate_arn": certificate["CertificateArn"]}  # fmt: skip
    (root / "test.auto.tfvars.json").write_text(json.dumps(variables))

    terraform = Terraform(root, plugin_mirror=PLUGIN_MIRROR, env=aws_env(moto_url), progress=None)
    terraform.init(lockfile_readonly=False)  # a scratch root: no committed lock file
    (root / "protected.tfvars").write_text('deletion_protection = true\ndb_ca_cert_identifier = "rds-ca-rsa2048-g1"\n')
    terraform.plan("tfplan-protected", var_files=["protected.tfvars"])  # for checkov: the production shape
    protected_plan = terraform.show_json("tfplan-protected")
    summary = terraform.plan("tfplan")
    plan = terraform.show_json("tfplan")
    started = time.monotonic()
    terraform.apply("tfplan")
    deployment = Deployment(terraform, plan, summary, terraform.outputs(), moto_url, protected_plan)
    deployment.timings["apply"] = time.monotonic() - started
    try:
        yield deployment
    finally:
        if terraform.state_resources():
            terraform.destroy()


def _rules(ec2: Any, group_id: str) -> list[dict[str, Any]]:
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


def _source(rule: dict[str, Any]) -> str:
    return rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule["ReferencedGroupInfo"]["GroupId"]


@pytest.mark.slow
def test_apply_builds_every_toggle(deployment: Deployment) -> None:
    assert deployment.summary == PlanSummary(add=RESOURCES_ALL_TOGGLES, change=0, destroy=0)
    host = deployment.value("host")
    assert host["name"] == "rf-control" and host["region"] == REGION

    ec2 = deployment.client("ec2")
    (instance,) = [
        i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"] if i["State"]["Name"] == "running"
    ]
    assert instance["InstanceId"] == host["instance_id"]
    assert instance["PrivateIpAddress"] == host["private_ip"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
    assert (tags["Name"], tags["role"], tags["project"]) == ("rf-control", "control-plane", "rayfleet")
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Encrypted"]
    # The Elastic IP is associated with the instance and is the address the inventory uses.
    (address,) = ec2.describe_addresses()["Addresses"]
    assert address["InstanceId"] == instance["InstanceId"]
    assert address["PublicIp"] == instance["PublicIpAddress"] == host["ansible_host"]


@pytest.mark.slow
def test_firewall_never_exposes_the_databases(deployment: Deployment) -> None:
    ec2 = deployment.client("ec2")
    instance_sg = deployment.value("security_group_id")
    db_sg = deployment.value("db_security_group_id")
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
    lb_sg = next(gid for gid, g in groups.items() if g["GroupName"] == "rf-control-lb")

    def ingress(group_id: str) -> set[tuple[str, int, str]]:
        return {(r["IpProtocol"], r["FromPort"], _source(r)) for r in _rules(ec2, group_id) if not r["IsEgress"]}

    # With the load balancer, HTTPS reaches the instance only through it; port 80 is the ACME toggle.
    assert ingress(instance_sg) == {
        ("tcp", 22, ADMIN_CIDR), ("tcp", 443, lb_sg), ("tcp", 80, "0.0.0.0/0"), ("tcp", 80, "::/0"),
    }  # fmt: skip
    assert ingress(lb_sg) == {("tcp", 443, "0.0.0.0/0"), ("tcp", 443, "::/0")}
    assert {(r["FromPort"], _source(r)) for r in _rules(ec2, lb_sg) if r["IsEgress"]} == {(443, instance_sg)}
    # PostgreSQL only from the instance's group, and no egress at all from the database's group.
    assert ingress(db_sg) == {("tcp", 5432, instance_sg)}
    assert [r for r in _rules(ec2, db_sg) if r["IsEgress"]] == []

    # No rule anywhere in the account opens PostgreSQL or Redis to an address range.
    for group_id in groups:
        for rule in _rules(ec2, group_id):
            if rule["IsEgress"] or not (rule.get("CidrIpv4") or rule.get("CidrIpv6")):
                continue
            ports = range(rule["FromPort"], rule["ToPort"] + 1) if rule["FromPort"] != -1 else range(65536)
            assert 5432 not in ports and 6379 not in ports, rule


@pytest.mark.slow
def test_managed_postgres_is_private_and_encrypted(deployment: Deployment) -> None:
    host = deployment.value("host")
    (db,) = deployment.client("rds").describe_db_instances()["DBInstances"]
    assert db["DBInstanceIdentifier"] == "rf-control-db"
    assert db["Engine"] == "postgres" and db["StorageEncrypted"] and not db["PubliclyAccessible"]
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [deployment.value("db_security_group_id")]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "rf-control-db"
    assert db["DBParameterGroups"][0]["DBParameterGroupName"] == "rf-control-postgres16"
    assert deployment.value("db_endpoint") == f"{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"
    assert (host["db_address"], host["db_port"]) == (db["Endpoint"]["Address"], 5432)
    # No password in Terraform: RDS generated it and keeps it in Secrets Manager.
    assert host["db_master_user_secret_arn"] == db["MasterUserSecret"]["SecretArn"]
    assert "password" not in json.dumps(deployment.outputs).lower()

    # The database subnets have no route to the internet (only the VPC's main, local-only table).
    ec2 = deployment.client("ec2")
    subnets = [s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]]
    assert len(subnets) == 2
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": subnets}])
    assert tables["RouteTables"] == []


@pytest.mark.slow
def test_load_balancer_forwards_https_to_the_instance(deployment: Deployment) -> None:
    elb = deployment.client("elbv2")
    (lb,) = elb.describe_load_balancers()["LoadBalancers"]
    assert lb["DNSName"] == deployment.value("lb_dns_name") == deployment.value("host")["lb_dns_name"]
    assert len(lb["AvailabilityZones"]) == 2  # one public subnet per zone
    planned = {r["address"]: r["change"]["after"] for r in deployment.plan["resource_changes"]}
    assert planned["module.control_plane.aws_lb.this[0]"]["internal"] is False
    assert planned["module.control_plane.aws_lb.this[0]"]["drop_invalid_header_fields"] is True
    (listener,) = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"], listener["SslPolicy"]) == (
        443, "HTTPS", "ELBSecurityPolicy-TLS13-1-2-2021-06",
    )  # fmt: skip
    (group,) = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    assert (group["Port"], group["Protocol"], group["HealthCheckPath"]) == (443, "HTTPS", "/api/v1/health")
    targets = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    assert [t["Target"]["Id"] for t in targets] == [deployment.value("host")["instance_id"]]


@pytest.mark.slow
def test_inventory_carries_the_database_and_load_balancer(deployment: Deployment) -> None:
    control_plane = control_plane_from_outputs(deployment.outputs, "host")
    hostvars = build_inventory([], control_plane=control_plane)["all"]["children"]["control_plane"]["hosts"][
        "rf-control"
    ]
    host = deployment.value("host")
    assert hostvars["ansible_host"] == host["ansible_host"]
    assert hostvars["rayfleet_control_plane_db_address"] == host["db_address"]
    assert hostvars["rayfleet_control_plane_lb_dns_name"] == host["lb_dns_name"]


# Where moto 5.2.5 falls short of AWS, a re-plan shows in-place updates that real AWS would not:
# it keeps no Performance Insights flag, does not read a custom parameter group's parameter back to
# the provider, and keeps the description of a rule only when the rule names a CIDR (not a group).
EMULATOR_GAPS = {
    ("aws_db_instance", "performance_insights_enabled"),
    ("aws_db_parameter_group", "parameter"),
    ("aws_vpc_security_group_ingress_rule", "description"),
    ("aws_vpc_security_group_egress_rule", "description"),
}


@pytest.mark.slow
def test_replan_shows_no_drift_beyond_emulator_gaps(deployment: Deployment) -> None:
    summary = deployment.terraform.plan("replan")
    assert (summary.add, summary.destroy) == (0, 0)  # nothing replaced, nothing missing
    drift = set()
    for change in deployment.terraform.show_json("replan")["resource_changes"]:
        if change["change"]["actions"] == ["no-op"]:
            continue
        assert change["change"]["actions"] == ["update"], change["address"]
        before, after = change["change"]["before"], change["change"]["after"]
        changed = {key for key in after if before.get(key) != after[key]}
        drift |= {(change["type"], key) for key in changed}
        if change["type"].startswith("aws_vpc_security_group_"):
            assert after["referenced_security_group_id"], change["address"]  # only group-referencing rules
    assert drift <= EMULATOR_GAPS, drift - EMULATOR_GAPS


@pytest.mark.slow
def test_checkov_plan_scan(deployment: Deployment, tmp_path: Path) -> None:
    # The production shape, planned before the apply: deletion protection on and a current RDS CA
    # (the module's defaults).
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(deployment.protected_plan))
    report = _checkov(
        "--file", str(plan), "--framework", "terraform_plan", "--repo-root-for-plan-enrichment", str(REPO)
    )
    assert report["summary"]["passed"] > 40
    skipped = report["results"]["skipped_checks"]
    assert all(check["check_result"].get("suppress_comment") for check in skipped)
    # The RDS and load balancer checks ran on real resources (not skipped wholesale).
    passed = {(check["check_id"], check["resource"].rsplit(".", 1)[0]) for check in report["results"]["passed_checks"]}
    for check_id in ("CKV_AWS_16", "CKV_AWS_17", "CKV_AWS_293", "CKV_AWS_133", "CKV_AWS_103", "CKV_AWS_131"):
        assert any(found == check_id for found, _ in passed), check_id


@pytest.mark.slow
def test_destroy_leaves_nothing(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.terraform.destroy()
    deployment.timings["destroy"] = time.monotonic() - started
    assert deployment.terraform.state_resources() == []
    ec2 = deployment.client("ec2")
    states = {i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states <= {"terminated"}
    assert ec2.describe_addresses()["Addresses"] == []
    assert deployment.client("rds").describe_db_instances()["DBInstances"] == []
    assert deployment.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
