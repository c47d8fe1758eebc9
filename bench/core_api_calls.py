"""The floor under a full resync onto an empty core: how fast the core's API takes one user per call.

    .venv/bin/python bench/core_api_calls.py [--calls 175000] [--chunk 25000] [--window 256] [--module-users 100000]

A full resync of 100,000 users onto a core that serves none is 175,000 AlterInbound calls (vless users sit in
two inbounds, vmess users in one), one AddUserOperation each: neither V2Ray's nor Xray's API takes more than one
user per call. This bench starts a real V2Ray on loopback (an API inbound and one vless and one vmess inbound,
no users) and sends --calls AddUser calls, alternating the two inbounds, through the users module's own client
(plugins/module_utils/core_api.py: CoreAPI.alter_many, --window calls in flight), in chunks of --chunk.
(grpc.aio instead of the futures was tried: the same rate within a few per cent, and its calls timed out while
the core collected garbage.)

Prints per chunk: calls per second, and CPU microseconds per call in this process (the client) and in the core;
then what the calls alone would take for 10,000 and 100,000 users at the whole run's rate. First, the users
module's own Python for a full set of --module-users users onto an empty config (plugins/modules/core_users.py's
steps, in this process, CPU seconds each): what the module adds to the calls besides the core's `-test`.
Figures only.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from control_api.runners.ansible import link_collection  # noqa: E402
from harness.services import cpu_seconds, free_port  # noqa: E402
from plugins.module_utils.core_api import CoreAPI, CoreMessages  # noqa: E402

COLLECTIONS_DIR = REPO / ".ansible" / "collections"

INBOUNDS = (("bench-vless", "vless"), ("bench-vmess", "vmess"))
CALLS_PER_USERS = {10_000: 17_500, 100_000: 175_000}  # the role's three inbounds: two vless, one vmess


def core_config(api_port: int) -> dict:
    inbounds = [
        {"tag": "api", "listen": "127.0.0.1", "port": api_port, "protocol": "dokodemo-door",
         "settings": {"address": "127.0.0.1"}},
    ]  # fmt: skip
    for tag, protocol in INBOUNDS:
        settings = {"clients": [], "decryption": "none"} if protocol == "vless" else {"clients": []}
        port = free_port()
        inbounds.append({"tag": tag, "listen": "127.0.0.1", "port": port, "protocol": protocol, "settings": settings})
    return {
        "log": {"loglevel": "warning"},
        "api": {"tag": "api", "services": ["HandlerService"]},
        "inbounds": inbounds,
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
        "routing": {"rules": [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]},
    }


def wait_listening(port: int, core: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if core.poll() is not None:
            raise RuntimeError(f"v2ray exited: {log.read_text('utf-8', 'replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"v2ray's API did not listen on {port}")


def requests(messages: CoreMessages, count: int, prefix: str) -> list[bytes]:
    made = []
    for index in range(count):
        tag, protocol = INBOUNDS[index % len(INBOUNDS)]
        made.append(messages.add_user(tag, protocol, f"{prefix}-{index}", str(uuid.uuid4())))
    return made


def send_futures(address: str, batch: list[bytes], window: int) -> None:
    api = CoreAPI(address, "v2ray")
    try:
        failed = [outcome for outcome in api.alter_many(batch, window=window) if outcome is not None]
    finally:
        api.close()
    if failed:
        raise RuntimeError(f"{len(failed)} calls refused, first: {failed[0].details}")


def module_python(users_count: int) -> None:
    """The users module's steps for a full set onto an empty config, as its main() takes them, timed apart."""
    link_collection(COLLECTIONS_DIR)
    sys.path.insert(0, str(COLLECTIONS_DIR))
    from ansible_collections.rayfleet.fleet.plugins.module_utils.config_splice import dumps_with_spans
    from ansible_collections.rayfleet.fleet.plugins.module_utils.core_clients import desired_inbounds
    from ansible_collections.rayfleet.fleet.plugins.modules import core_users

    meta = [
        {"tag": "vless-tcp-tls", "protocol": "vless", "flow": "xtls-rprx-vision"},
        {"tag": "vless-ws-tls", "protocol": "vless", "flow": ""},
        {"tag": "vmess-ws-tls", "protocol": "vmess", "flow": ""},
    ]
    shape = {"inbounds": [{"tag": m["tag"], "protocol": m["protocol"], "settings": {"clients": []}} for m in meta]}
    users = [
        {"id": str(uuid.uuid4()), "email": f"cfg-{n}", "protocol": "vmess" if n % 4 == 0 else "vless", "level": 0}
        for n in range(users_count)
    ]
    argument = json.dumps(users)
    messages = CoreMessages("v2ray")
    steps: dict[str, float] = {}

    def step(name: str, work: Callable[[], object]) -> object:
        started = time.process_time()
        value = work()
        steps[name] = time.process_time() - started
        return value

    parsed = step("parse the users argument", lambda: core_users.check_users(json.loads(argument)))
    desired = step("clients per inbound", lambda: desired_inbounds(meta, parsed))
    step("validate", lambda: core_users.validate_desired(desired, shape))
    _removals, additions = step("plan", lambda: core_users.plan({}, desired, []))
    config = core_users.merged_config(json.loads(json.dumps(shape)), desired)
    step("the config's text and spans", lambda: dumps_with_spans(config, [m["tag"] for m in meta]))
    step(
        "encode the AddUser calls",
        lambda: [messages.add_user(t, p, c["email"], c["id"], c["level"], c.get("flow", "")) for t, p, c in additions],
    )
    step("renames and counts", lambda: (core_users.renamed_emails([], additions), {c["email"] for *_, c in additions}))
    print(f"users module's own Python, a full set of {users_count:,} users ({len(additions):,} additions), CPU s:")
    for name, seconds in steps.items():
        print(f"  {name}: {seconds:.2f}")
    print(f"  in all: {sum(steps.values()):.2f}", flush=True)


def measure(name: str, send: Callable[[list[bytes]], None], batches: list[list[bytes]], core: Any) -> float:
    """Send each batch; print its figures and the whole run's; return the whole run's calls per second."""
    total_calls, total_wall = 0, 0.0
    for number, batch in enumerate(batches, 1):
        core_before, client_before, started = cpu_seconds([core]), time.process_time(), time.monotonic()
        send(batch)
        wall = time.monotonic() - started
        client, core_cpu = time.process_time() - client_before, cpu_seconds([core]) - core_before
        total_calls, total_wall = total_calls + len(batch), total_wall + wall
        print(
            f"{name} chunk {number} ({total_calls:,} users served after it): {len(batch) / wall:,.0f} calls/s, "
            f"CPU per call: client {client * 1e6 / len(batch):.0f} us, core {core_cpu * 1e6 / len(batch):.0f} us",
            flush=True,
        )
    rate = total_calls / total_wall
    for users, calls in CALLS_PER_USERS.items():
        print(f"{name}: {calls:,} calls (a full resync of {users:,} users) at {rate:,.0f}/s: {calls / rate:.1f} s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=175_000)
    parser.add_argument("--chunk", type=int, default=25_000)
    parser.add_argument("--window", type=int, default=256, help="calls in flight (the module's default)")
    parser.add_argument("--module-users", type=int, default=100_000, help="0 skips the module's Python")
    args = parser.parse_args()

    if args.module_users:
        module_python(args.module_users)
    messages = CoreMessages("v2ray")
    with tempfile.TemporaryDirectory(prefix="rayfleet-core-api-") as workdir:
        api_port = free_port()
        config, log = Path(workdir) / "config.json", Path(workdir) / "v2ray.log"
        config.write_text(json.dumps(core_config(api_port)))
        with log.open("wb") as log_file:
            core = subprocess.Popen(["v2ray", "-config", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_listening(api_port, core, log)
            address = f"127.0.0.1:{api_port}"
            sizes = [min(args.chunk, args.calls - start) for start in range(0, args.calls, args.chunk)]
            print(f"V2Ray {address}, {args.calls:,} AddUser calls in chunks of {args.chunk:,}, window {args.window}")
            batches = [requests(messages, size, f"f{number}") for number, size in enumerate(sizes)]
            core_process = psutil.Process(core.pid)
            measure("core_api", lambda batch: send_futures(address, batch, args.window), batches, core_process)
        finally:
            core.terminate()
            core.wait(timeout=10)


if __name__ == "__main__":
    main()
