"""The deployed control plane does the real job, through its API only (molecule/control_plane verify).

`sell`: as the admin (RAYFLEET_TOKEN), make a plan and a node, queue the node's provisioning and wait
until the control plane's own worker has provisioned it over SSH; then, as a bot service with its own
credentials (made on the host by rayfleet-manage), register a customer and pay, and as the admin
approve the payment. The approved config's link goes to LINK_FILE (0600), the figures to stdout.

`fetch`: a real client (sing-box) with the link in LINK_FILE fetches a body from an origin on the
scenario network's gateway through the node; prints the figures, exits 1 unless every byte came back.

The scenario's addresses are checked to be on its own podman network (harness.netguard) before use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import urllib3

from harness.fleet import BIG_BODY, INBOUNDS, TLS_NAME, link_for
from harness.netguard import network_gateway
from harness.origin import origin_server
from harness.podman_node import wait_for
from harness.processes import ApiClient
from harness.singbox import fetch_via_link

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the scenario's self-signed certificate

NODE_NAME = "rf-molecule-1"
TELEGRAM_ID = 8_800_000_001


def client(base: str, token: str) -> ApiClient:
    api = ApiClient(base)
    api.session.verify = False
    api.session.headers["Authorization"] = f"Bearer {token}"
    return api


def bot_credentials(container: str) -> tuple[str, str]:
    """A bot client made on the control-plane host (printed once by the app's CLI)."""
    result = subprocess.run(  # noqa: S603 - fixed argv, the scenario's own container
        [
            shutil.which("podman") or "/usr/bin/podman",
            *("exec", container, "/usr/local/sbin/rayfleet-manage", "create-bot-client"),
            f"molecule-shop-{int(time.time())}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return lines["client_id"], lines["client_secret"]


def sell(args: argparse.Namespace) -> dict[str, Any]:
    admin = client(args.base, os.environ["RAYFLEET_TOKEN"])
    plan = admin.call(
        "POST",
        "/plans",
        json={
            "name": "molecule 30d",
            "location_tag": "molecule",
            "duration_days": 30,
            "max_devices": 2,
            "data_limit_mb": 10_000,
            "price_cents": 500,
        },
        expect=201,
    )
    node = admin.call(
        "POST",
        "/nodes",
        json={
            "name": NODE_NAME,
            "region": "local",
            "location_tag": "molecule",
            "core": "v2ray",
            "public_ip": args.node_address,
            "inbounds": INBOUNDS,
            "tls_server_name": TLS_NAME,
            "tls_self_signed": True,
        },
        expect=201,
    )
    started = time.monotonic()
    admin.call("POST", f"/nodes/{node['id']}/provision", expect=202)

    def provisioned() -> dict[str, Any] | None:
        view = admin.call("GET", f"/nodes/{node['id']}", expect=200)
        failed = (view.get("last_sync") or {}).get("status") == "failed"
        if failed:
            raise RuntimeError(f"the provision job failed: {view.get('last_sync')}")
        return view if view["sync_state"] == "in_sync" and view["status"] == "active" else None

    wait_for(provisioned, f"node {node['id']} was not provisioned", timeout=args.timeout, interval=1)
    provision_seconds = time.monotonic() - started

    client_id, secret = bot_credentials(args.container)
    bot = ApiClient(args.base)
    bot.session.verify = False
    token = bot.call("POST", "/auth/token", json={"kind": "bot", "client_id": client_id, "client_secret": secret})
    bot.session.headers["Authorization"] = f"Bearer {token['access_token']}"
    user = bot.call("PUT", f"/users/telegram/{TELEGRAM_ID}", json={"username": "molecule_buyer", "language": "fa"})
    payment = bot.call(
        "POST",
        "/payments",
        json={
            "user_id": user["id"],
            "plan_id": plan["id"],
            "amount_cents": plan["price_cents"],
            "evidence_file_id": "molecule-receipt-file",
            "evidence_unique_id": "molecule-receipt-unique",
            "protocol": "vless",
        },
        expect=201,
    )
    # The temporary config comes at once with the payment; approval turns it into the plan, same link.
    config = payment["config"]
    link = link_for(config)
    approved = admin.call("POST", f"/payments/{payment['id']}/approve", json={}, expect=200)
    path = Path(args.link_file)
    path.touch(mode=0o600)
    path.write_text(link)
    return {
        "node_id": node["id"],
        "provision_seconds": round(provision_seconds, 1),
        "payment_id": payment["id"],
        "payment_status": approved["status"],
        "config_id": config["id"],
        "config_node": config.get("node_name"),
        "config_status": admin.call("GET", f"/configs/{config['id']}", expect=200).get("status"),
    }


def fetch(args: argparse.Namespace) -> dict[str, Any]:
    # The origin listens on the scenario network's gateway (read from podman and checked), nowhere else.
    gateway = network_gateway(args.network)
    link = Path(args.link_file).read_text().strip()
    with tempfile.TemporaryDirectory() as directory, origin_server(Path(directory), BIG_BODY, gateway) as (url, _):
        started = time.monotonic()
        result = wait_for(lambda: _fetch_once(link, url), "no bytes through the node", timeout=60, interval=1)
        return {
            "status": result["status"],
            "bytes": result["bytes"],
            "expected": BIG_BODY,
            "seconds": round(time.monotonic() - started, 2),
        }


def _fetch_once(link: str, url: str) -> dict[str, Any] | None:
    try:
        result = fetch_via_link(link, url, timeout=20)
    except Exception:  # noqa: BLE001 - the core may still be settling; the deadline decides
        return None
    return result if result["status"] == 200 and result["bytes"] == BIG_BODY else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["sell", "fetch"])
    parser.add_argument("--base", help="https://<control plane>")
    parser.add_argument("--container", help="the control plane's container (rayfleet-manage runs there)")
    parser.add_argument("--node-address")
    parser.add_argument("--network", help="the scenario's podman network (the origin listens on its gateway)")
    parser.add_argument("--link-file", required=True)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    figures = sell(args) if args.action == "sell" else fetch(args)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
