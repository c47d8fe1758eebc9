"""Real traffic without Ansible: a real V2Ray 4.34 server on loopback, a real sing-box client driven
only by the share link control_api.links builds, and a local origin serving a random 5 MiB file.

The server config below is written as data and mirrors what roles/xray renders for each profile.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from control_api.links import PROFILES, Client, Inbound, build_link
from harness.singbox import ProxyError, client_config, fetch, free_port, singbox_binary, singbox_client
from tests.fixtures.xray_role import self_signed_certificate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TLS_NAME = "node1.rayfleet.test"
FILE_SIZE = 5 * 1024 * 1024
V2RAY_PROFILES = {  # profile -> path; the four profiles V2Ray 4.34 can serve
    "vless-tcp-tls": "",
    "vless-ws-tls": "/ws",
    "vless-h2-tls": "/h2",
    "vmess-ws-tls": "/vm",
}


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"v2ray exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"v2ray did not listen on {port}:\n{log.read_text(errors='replace')}")


def v2ray_inbound(inbound: Inbound, clients: list[dict[str, str]], cert: Path, key: Path) -> dict[str, Any]:
    """One server inbound for a profile, shaped like the role's: clients with id/email/level, TLS, transport."""
    profile = PROFILES[inbound.profile]
    users: list[dict[str, Any]] = [{"id": c["id"], "email": c["email"], "level": 0} for c in clients]
    settings: dict[str, Any] = {"clients": users}
    if profile.protocol == "vless":
        settings["decryption"] = "none"
    else:
        for user in users:
            user["alterId"] = 0
    stream: dict[str, Any] = {
        "network": profile.network,
        "security": "tls",
        "tlsSettings": {
            "serverName": inbound.server_name,
            "alpn": profile.alpn.split(","),
            "certificates": [{"certificateFile": str(cert), "keyFile": str(key)}],
        },
    }
    if profile.network == "ws":
        stream["wsSettings"] = {"path": inbound.path}
    elif profile.network == "http":
        # V2Ray (and Xray before it dropped h2) answers 404 unless Host is listed; the default is www.example.com.
        stream["httpSettings"] = {"path": inbound.path, "host": [inbound.server_name]}
    return {
        "tag": inbound.profile,
        "listen": "127.0.0.1",
        "port": inbound.port,
        "protocol": profile.protocol,
        "settings": settings,
        "streamSettings": stream,
    }


def v2ray_config(inbounds: list[Inbound], clients: list[dict[str, str]], cert: Path, key: Path) -> dict[str, Any]:
    return {
        "log": {"loglevel": "warning"},
        "inbounds": [v2ray_inbound(inbound, clients, cert, key) for inbound in inbounds],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
    }


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A local HTTP origin serving a random 5 MiB file: yields its URL and SHA-256."""
    root = tmp_path_factory.mktemp("origin")
    body = os.urandom(FILE_SIZE)
    (root / "blob.bin").write_bytes(body)

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/blob.bin", hashlib.sha256(body).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real V2Ray server on loopback with one inbound per profile and one client."""
    binary = shutil.which("v2ray")
    if binary is None:
        raise RuntimeError("v2ray not on PATH: apt-get -o DPkg::Lock::Timeout=600 install -y v2ray (scripts/test.sh)")
    workdir = tmp_path_factory.mktemp("v2ray")
    cert, key = self_signed_certificate(workdir, TLS_NAME)
    fingerprint = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256()).hex()
    inbounds = {
        name: Inbound(profile=name, port=free_port(), path=path, server_name=TLS_NAME, allow_insecure=True)
        for name, path in V2RAY_PROFILES.items()
    }
    client = Client(uuid=str(uuid.uuid4()), name="تست کاربر #1 / test")
    config = workdir / "config.json"
    config.write_text(
        json.dumps(v2ray_config(list(inbounds.values()), [{"id": client.uuid, "email": "cfg-1"}], cert, key), indent=2)
    )
    test = subprocess.run([binary, "-test", "-config", str(config)], capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    log = workdir / "v2ray.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([binary, "-config", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            for inbound in inbounds.values():
                _wait_port(inbound.port, process, log)
            yield {"inbounds": inbounds, "client": client, "fingerprint": fingerprint, "log": log}
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("profile", list(V2RAY_PROFILES))
def test_download_through_the_link_matches_the_origin(node: dict[str, Any], origin: tuple[str, str], profile: str):
    url, expected = origin
    link = build_link(node["inbounds"][profile], node["client"], "127.0.0.1", core="v2ray")
    with singbox_client(link) as proxy_url:
        result = fetch(proxy_url, url)
    port = int(proxy_url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "sing-box still listens after the context exited"
    assert result["status"] == 200
    assert result["bytes"] == FILE_SIZE
    assert result["sha256"] == expected


@pytest.mark.parametrize("profile", ["vless-tcp-tls", "vmess-ws-tls"])
def test_a_wrong_uuid_gets_no_traffic(node: dict[str, Any], origin: tuple[str, str], profile: str):
    stranger = Client(uuid=str(uuid.uuid4()), name="stranger")
    link = build_link(node["inbounds"][profile], stranger, "127.0.0.1")
    with singbox_client(link) as proxy_url, pytest.raises(ProxyError):
        fetch(proxy_url, origin[0], timeout=5)  # VMess stalls an unknown id instead of closing (anti-probing)


def test_a_self_signed_certificate_fails_without_allow_insecure(node: dict[str, Any], origin: tuple[str, str]):
    inbound = replace(node["inbounds"]["vless-ws-tls"], allow_insecure=False)
    link = build_link(inbound, node["client"], "127.0.0.1")
    assert "allowInsecure" not in link
    with singbox_client(link) as proxy_url, pytest.raises(ProxyError):
        fetch(proxy_url, origin[0], timeout=10)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.singbox", "fetch", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_fetch_prints_json_and_honours_the_rate_limit(
    node: dict[str, Any], origin: tuple[str, str], tmp_path: Path
):
    url, expected = origin
    link = build_link(node["inbounds"]["vmess-ws-tls"], node["client"], "127.0.0.1")
    output = tmp_path / "blob.bin"
    rate = 4 * 1024 * 1024  # 5 MiB at 4 MiB/s: at least 1.25 s
    completed = _cli("--link", link, "--url", url, "--limit-rate", str(rate), "--output", str(output))
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["status"] == 200
    assert result["bytes"] == FILE_SIZE
    assert result["sha256"] == expected
    assert result["seconds"] >= FILE_SIZE / rate - 0.05
    assert hashlib.sha256(output.read_bytes()).hexdigest() == expected


def test_cli_fetch_fails_clearly_when_the_proxy_path_fails(node: dict[str, Any], origin: tuple[str, str]):
    stranger = Client(uuid=str(uuid.uuid4()), name="stranger")
    link = build_link(node["inbounds"]["vless-h2-tls"], stranger, "127.0.0.1")
    completed = _cli("--link", link, "--url", origin[0], "--timeout", "5")
    assert completed.returncode != 0
    assert completed.stdout == ""
    assert "error:" in completed.stderr and "failed" in completed.stderr


def test_cli_refuses_a_reality_link_it_cannot_speak(origin: tuple[str, str]):
    link = (
        "vless://6e4b1a5c-0d5f-4b8e-9a9f-0a1b2c3d4e5f@127.0.0.1:443?encryption=none&type=tcp&security=reality"
        "&sni=www.example.com&fp=chrome&pbk=Nlonbo-thQRdnsAxoD9ft00SIbKtYuBoToUy9X3B_WQ&sid=0123abcd"
        "&flow=xtls-rprx-vision#r"
    )
    completed = _cli("--link", link, "--url", origin[0])
    assert completed.returncode == 1
    assert "REALITY" in completed.stderr


@pytest.mark.parametrize("profile", list(V2RAY_PROFILES))
def test_client_config_drops_the_fingerprint_and_passes_sing_box_check(profile: str, tmp_path: Path):
    path = V2RAY_PROFILES[profile]
    inbound = Inbound(profile, 443, path=path, server_name=TLS_NAME, fingerprint="chrome", allow_insecure=True)
    link = build_link(inbound, Client(str(uuid.uuid4()), "x"), "192.0.2.10")
    assert "fp=chrome" in link or '"fp":"chrome"' in base64.b64decode(link.removeprefix("vmess://")).decode()
    config = client_config(link, free_port())
    outbound = config["outbounds"][0]
    assert "utls" not in outbound["tls"]
    assert outbound["tls"] == {
        "enabled": True,
        "insecure": True,
        "server_name": TLS_NAME,
        "alpn": [PROFILES[profile].alpn],
    }
    if path:
        assert outbound["transport"]["path"] == path
    (tmp_path / "c.json").write_text(json.dumps(config))
    check = subprocess.run(
        [str(singbox_binary()), "check", "-c", str(tmp_path / "c.json")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
