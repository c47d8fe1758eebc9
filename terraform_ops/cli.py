"""``python -m terraform_ops``: what operators run, from terraform plan to nodes in the control API.

    python -m terraform_ops plan                 # saves terraform/envs/example/tfplan, prints a summary
    python -m terraform_ops apply                # applies that saved plan (or: apply --auto-approve)
    python -m terraform_ops inventory            # inventory/terraform.yml from the outputs (nodes + control plane)
    RAYFLEET_ADMIN_PASSWORD=… python -m terraform_ops register --api-url https://api.example.com \\
        --admin-user alice --provision
    python -m terraform_ops destroy --yes

Exit codes: 0 success, 1 a command failed, 2 usage; ``register`` exits 3 when a node registered under
the same name differs from what Terraform built (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

import yaml

from .inventory import (
    OutputError,
    build_inventory,
    control_plane_from_outputs,
    nodes_from_outputs,
    write_inventory,
)
from .register import ApiError, ControlApi, NodeDefaults, register_nodes
from .runner import Terraform, TerraformError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / "terraform" / "envs" / "example"
DEFAULT_INVENTORY = REPO / "inventory" / "terraform.yml"
EXIT_DIFFERS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m terraform_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="root module directory (%(default)s)")
    parser.add_argument(
        "--plugin-mirror",
        default=os.environ.get("RAYFLEET_TF_PLUGIN_MIRROR"),
        help="provider filesystem mirror for offline machines, e.g. /opt/tf-plugins (env RAYFLEET_TF_PLUGIN_MIRROR)",
    )
    parser.add_argument("--var-file", action="append", default=[], help="a tfvars file (repeatable)")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("init", help="install providers (lock file read-only)")
    plan = commands.add_parser("plan", help="save a plan and summarise it")
    plan.add_argument("--out", default="tfplan", help="plan file, relative to --dir (%(default)s)")
    plan.add_argument("--destroy", action="store_true", help="plan a destroy")

    apply = commands.add_parser("apply", help="apply the saved plan (or plan+apply with --auto-approve)")
    apply.add_argument("--plan", default="tfplan", help="saved plan to apply (%(default)s)")
    apply.add_argument("--auto-approve", action="store_true", help="no saved plan: plan and apply in one go")
    apply.add_argument("--parallelism", type=int, default=None, help="terraform -parallelism (30 suits 30+ nodes)")

    destroy = commands.add_parser("destroy", help="destroy every resource of the root module")
    destroy.add_argument("--yes", action="store_true", help="required: destroying nodes cuts customers off")
    destroy.add_argument("--parallelism", type=int, default=None)

    inventory = commands.add_parser("inventory", help="write the Ansible inventory from terraform output")
    _add_outputs_source(inventory)
    inventory.add_argument("--output", type=Path, default=DEFAULT_INVENTORY, help="(%(default)s)")
    inventory.add_argument("--core", default="xray", choices=("xray", "v2ray"))

    register = commands.add_parser("register", help="create the nodes in the control API (idempotent)")
    _add_outputs_source(register)
    register.add_argument("--api-url", default=os.environ.get("RAYFLEET_API_URL"), help="env RAYFLEET_API_URL")
    register.add_argument("--admin-user", default=os.environ.get("RAYFLEET_ADMIN_USERNAME"))
    register.add_argument("--core", default="xray", choices=("xray", "v2ray"))
    register.add_argument("--inbounds-file", type=Path, help="JSON/YAML list of inbounds for new nodes")
    register.add_argument("--tls-server-name", help="template for new nodes, e.g. '{name}.vpn.example.com'")
    register.add_argument("--provision", action="store_true", help="queue the provision job for created nodes")
    return parser


def _add_outputs_source(command: argparse.ArgumentParser) -> None:
    command.add_argument("--outputs-json", type=Path, help="a saved `terraform output -json` instead of running it")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    terraform = Terraform(args.dir, plugin_mirror=args.plugin_mirror, env=os.environ.copy())
    try:
        return _dispatch(args, terraform)
    except (TerraformError, OutputError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, terraform: Terraform) -> int:
    if args.command == "init":
        terraform.init()
    elif args.command == "plan":
        summary = terraform.plan(args.out, var_files=args.var_file, destroy=args.destroy)
        print(f"Plan saved to {args.dir / args.out}: {summary}")
    elif args.command == "apply":
        if args.auto_approve:
            terraform.apply(var_files=args.var_file, parallelism=args.parallelism)
        else:
            terraform.apply(args.plan, parallelism=args.parallelism)
        print(f"{len(_nodes(args, terraform))} nodes; next: python -m terraform_ops inventory / register")
    elif args.command == "destroy":
        if not args.yes:
            print("destroy removes every node and its IP address: rerun with --yes", file=sys.stderr)
            return 2
        terraform.destroy(var_files=args.var_file, parallelism=args.parallelism)
    elif args.command == "inventory":
        outputs = _outputs(args, terraform)
        nodes = nodes_from_outputs(outputs)
        control_plane = control_plane_from_outputs(outputs)
        path = write_inventory(args.output, build_inventory(nodes, core=args.core, control_plane=control_plane))
        extra = f", control plane {control_plane.name}" if control_plane else ""
        print(f"Wrote {path} ({len(nodes)} hosts{extra}); check it with: ansible-inventory -i {path} --graph")
    elif args.command == "register":
        return _register(args, terraform)
    return 0


def _outputs(args: argparse.Namespace, terraform: Terraform):
    source = getattr(args, "outputs_json", None)
    return json.loads(source.read_text()) if source else terraform.outputs()


def _nodes(args: argparse.Namespace, terraform: Terraform):
    return nodes_from_outputs(_outputs(args, terraform))


def _register(args: argparse.Namespace, terraform: Terraform) -> int:
    if not args.api_url:
        print("register needs --api-url (or RAYFLEET_API_URL)", file=sys.stderr)
        return 2
    api = ControlApi(args.api_url)
    token = os.environ.get("RAYFLEET_ADMIN_TOKEN")
    if token:
        api.use_token(token)
    else:
        if not args.admin_user:
            print("register needs --admin-user (or RAYFLEET_ADMIN_TOKEN)", file=sys.stderr)
            return 2
        password = os.environ.get("RAYFLEET_ADMIN_PASSWORD") or getpass.getpass(f"Password for {args.admin_user}: ")
        api.login_admin(args.admin_user, password)
    inbounds = tuple(yaml.safe_load(args.inbounds_file.read_text()) or ()) if args.inbounds_file else ()
    defaults = NodeDefaults(core=args.core, inbounds=inbounds, tls_server_name=args.tls_server_name)
    result = register_nodes(api, _nodes(args, terraform), defaults=defaults, provision=args.provision)
    print(result)
    return EXIT_DIFFERS if result.differs else 0
