"""agent.core_api against a REAL V2Ray 4.34 on loopback, with a REAL sing-box client carrying the bytes.

The core serves the shape the xray role's filter renders (per-user stats on); a user is added through
the core's gRPC API, downloads a known number of bytes through the share link control_api.links
builds, and the agent's read (with reset) must count them; the reading is then journaled durably.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agent import core_api as agent_core_api
from agent.journal import Journal
from control_api.links import Client, Inbound, build_link
from harness.origin import origin_server
from harness.singbox import fetch_via_link
from tests.fixtures.xray_role import (
    MODULE_UTILS_DIR,
    V2RayProcess,
    core_api,
    core_check,
    core_filter,
    free_ports,
    self_signed_certificate,
)

pytestmark = pytest.mark.slow

TLS_NAME = "node1.rayfleet.test"
BODY_SIZE = 3 * 1024 * 1024
# An HTTP/1.0 response header from http.server is ~150-200 bytes; the request line + headers go up.
MAX_HEADER_BYTES = 1024


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict]:
    cert, key = self_signed_certificate(tmp_path, TLS_NAME)
    tcp_port, api_port = free_ports(2)
    inbounds = [{"profile": "vless-tcp-tls", "port": tcp_port, "listen": "127.0.0.1"}]
    settings = {
        "core": "v2ray",
        "api_port": api_port,
        "tls_cert_path": str(cert),
        "tls_key_path": str(key),
        "tls_server_name": TLS_NAME,
        "log_level": "warning",
    }
    flt = core_filter()
    shape = flt.core_shape(inbounds, settings)
    assert core_check().xray_config_problems(shape, core="v2ray") == []
    config = tmp_path / "config.json"
    config.write_text(json.dumps(flt.with_users(shape, []), indent=2))
    core = V2RayProcess(config, [tcp_port, api_port], tmp_path / "v2ray.log")
    core.start()
    api = agent_core_api.connect(f"127.0.0.1:{api_port}", "v2ray")
    wait_until_the_api_answers(api)
    try:
        with origin_server(tmp_path / "origin", size=BODY_SIZE) as origin:
            yield {"api": api, "inbound": inbounds[0], "tag": flt.inbound_tag(inbounds[0]), "origin": origin}
    finally:
        api.close()
        core.stop()


def wait_until_the_api_answers(api, seconds: float = 15) -> None:
    """V2Ray listens on its API port a moment before its API handler is registered: a call in between is
    dropped ("non existing tag: api" in its log, "Socket closed" here), which a loaded machine makes likely."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            agent_core_api.read_user_traffic(api)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_agent_uses_the_collections_client_not_a_copy():
    module = agent_core_api.client
    assert Path(module.__file__).resolve() == (MODULE_UTILS_DIR / "core_api.py").resolve()
    assert module is core_api()  # one module, so one CoreAPIError class


def test_a_download_through_the_core_is_counted_once_and_journaled(node: dict, tmp_path: Path):
    api = node["api"]
    period_start = datetime.datetime.now(datetime.UTC).isoformat()
    buyer, idle = Client(str(uuid.uuid4()), "cfg-12"), Client(str(uuid.uuid4()), "cfg-13")
    for client in (buyer, idle):
        api.add_user(node["tag"], "vless", client.name, client.uuid)
    assert agent_core_api.read_user_traffic(api) == []  # registered users with no traffic are left out

    inbound = Inbound("vless-tcp-tls", node["inbound"]["port"], server_name=TLS_NAME, allow_insecure=True)
    link = build_link(inbound, buyer, "127.0.0.1", core="v2ray")
    url, sha256 = node["origin"]
    result = fetch_via_link(link, url, timeout=15)
    assert (result["status"], result["bytes"], result["sha256"]) == (200, BODY_SIZE, sha256)

    usage = agent_core_api.read_user_traffic(api)
    # The core counts as the bytes pass; give a last in-flight chunk a moment (summing, since reads reset).
    deadline = time.monotonic() + 3
    while sum(entry["downlink"] for entry in usage) < BODY_SIZE and time.monotonic() < deadline:
        time.sleep(0.1)
        for entry in agent_core_api.read_user_traffic(api):
            usage = merge(usage, entry)

    (entry,) = usage
    assert entry["email"] == "cfg-12"
    # Body + response headers, exactly what went down to the client: within 1% (and at least the body).
    assert BODY_SIZE < entry["downlink"] <= BODY_SIZE + MAX_HEADER_BYTES
    assert entry["downlink"] == pytest.approx(BODY_SIZE, rel=0.01)
    assert 0 < entry["uplink"] < MAX_HEADER_BYTES  # the GET request itself

    assert agent_core_api.read_user_traffic(api) == []  # reset worked: the next read starts from zero

    journal_path = tmp_path / "agent" / "journal.jsonl"
    report = {
        "period_start": period_start,
        "period_end": datetime.datetime.now(datetime.UTC).isoformat(),
        "usage": usage,
    }
    report_id = Journal(journal_path).append(report)
    (stored,) = Journal(journal_path).pending()  # a fresh object: what a restarted agent would see
    assert stored == {**report, "report_id": report_id}


def merge(usage: list[dict], entry: dict) -> list[dict]:
    for existing in usage:
        if existing["email"] == entry["email"]:
            existing["uplink"] += entry["uplink"]
            existing["downlink"] += entry["downlink"]
            return usage
    return [*usage, entry]
