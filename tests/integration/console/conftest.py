"""The console's fixtures: a shop with a node that reported traffic and metrics, a payment approved, a customer
whose username is markup; console logins through the test client; the app on a real port for the browser."""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from control_api.models import utcnow
from harness.services import free_port
from tests.integration.test_payments import activate_node

HOSTILE = "<script>alert(1)</script>"
PLAN = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": 1500,
}
PROOF = {"evidence_file_id": "photo-1", "evidence_unique_id": "unique-photo-1"}
ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "artifacts" / "console"))


def heartbeat(client, node, config_id: int, down: int, cpu: float, report_id: str) -> None:
    body = {
        "cpu": cpu,
        "mem": 30.0,
        "bandwidth_in": int(cpu * 10_000),
        "bandwidth_out": int(cpu * 40_000),
        "latency_ms": 9.0,
        "core_active": True,
        "reports": [
            {
                "report_id": report_id,
                "period_start": (utcnow() - timedelta(minutes=1)).isoformat(),
                "period_end": utcnow().isoformat(),
                "usage": [{"email": f"cfg-{config_id}", "uplink": down // 10, "downlink": down}],
            }
        ],
    }
    response = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
    assert response.status_code == 200, response.json


@pytest.fixture
def shop(app, client, principals):
    """node-a active and serving, a plan, two customers (one named HOSTILE), an approved payment, heartbeats."""
    activate_node(app, principals.node.principal_id)
    admin, bot = principals.admin.headers, principals.bot.headers
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    buyer = client.put("/api/v1/users/telegram/7001", json={"username": "buyer"}, headers=bot).json
    hostile = client.put("/api/v1/users/telegram/7003", json={"username": HOSTILE}, headers=admin)
    assert hostile.status_code in (200, 201), hostile.json
    payment = client.post(
        "/api/v1/payments",
        json={"user_id": buyer["id"], "plan_id": plan["id"], "amount_cents": 1500, **PROOF},
        headers=bot,
    ).json
    approved = client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=admin)
    assert approved.status_code == 200, approved.json
    config_id = approved.json["config_id"]
    for number, cpu in enumerate((20.0, 45.0, 30.0)):
        heartbeat(client, principals.node, config_id, 50_000_000 * (number + 1), cpu, f"r-{number}")

    class Shop:
        plan_id = plan["id"]
        buyer_id = buyer["id"]
        hostile_id = hostile.json["id"]
        node_id = principals.node.principal_id
        node_name = "node-a"

    return Shop


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


def console_login(client, credentials, code: str = ""):
    """Log CLIENT into the console as CREDENTIALS (an admin); the login POST's response."""
    page = client.get("/admin/login")
    form = {
        "csrf_token": csrf_of(page.get_data(as_text=True)),
        "username": credentials.identifier,
        "password": credentials.secret,
        "code": code,
    }
    return client.post("/admin/login", data=form)


class LiveServer:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _end_test_session(app):
    """Tests read the database through the app's thread-scoped session; end it, or the next test's TRUNCATE waits."""
    yield
    app.extensions["rayfleet.db"].session.remove()


def png(width: int = 180, height: int = 240) -> bytes:
    """A real PNG (a browser decodes it: naturalWidth > 0), drawn without an image library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    def row(y: int) -> bytes:  # a receipt-like picture: a blue header, grey text lines on white
        if y < 40:
            return bytes((30, 95, 191)) * width
        line = (y - 40) % 24 < 8 and 60 < y < height - 20
        return (
            (bytes((250, 250, 250)) * 16)
            + (bytes((120, 120, 120) if line else (250, 250, 250)) * (width - 32))
            + (bytes((250, 250, 250)) * 16)
        )

    rows = b"".join(b"\x00" + row(y) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def pending_payment(client, principals, shop, telegram_id: int, username: str, proof: bytes | None, tag: str) -> int:
    """A customer's pending payment for the shop's plan, with PROOF uploaded by the bot as it does; its id."""
    bot = principals.bot.headers
    user = client.put(f"/api/v1/users/telegram/{telegram_id}", json={"username": username}, headers=bot).json
    evidence = {"evidence_file_id": f"photo-{tag}", "evidence_unique_id": f"unique-{tag}"}
    created = client.post(
        "/api/v1/payments",
        json={"user_id": user["id"], "plan_id": shop.plan_id, "amount_cents": 1500, **evidence},
        headers=bot,
    )
    assert created.status_code == 201, created.json
    payment_id = created.json["id"]
    if proof is not None:
        uploaded = client.put(
            f"/api/v1/payments/{payment_id}/proof?user_id={user['id']}",
            data=proof,
            headers={**bot, "Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 200, uploaded.json
    return payment_id
