"""Redis goes down under a running API: writes still succeed, and the sweep catches up when it returns.

A redis-server of this module's own (never the session's shared one) is stopped and started again on
the same port; PostgreSQL is the session's. The node sync itself is tested elsewhere; here the jobs
are only counted in the queue.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from rq import Queue
from sqlalchemy import select

from control_api import create_app
from control_api.jobs import JobQueue
from control_api.jobs.sweep import reconcile
from control_api.models import Node
from harness.services import _wait_for_port, free_port
from tests.conftest import create_admin, create_bot, create_node, login

pytestmark = pytest.mark.postgres


class RestartableRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing (scripts/test.sh installs it)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    yield server
    server.stop()


def test_writes_succeed_while_redis_is_down_and_the_sweep_catches_up(settings, own_redis):
    app = create_app(replace(settings, redis_url=own_redis.url))
    client = app.test_client()
    admin = create_admin(app, client)
    bot = create_bot(app, client)
    node = create_node(client, admin)
    admin_headers = admin.headers
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.get(Node, node.principal_id).status = "active"
        session.commit()
    plan = client.post(
        "/api/v1/plans",
        json={
            "name": "P",
            "location_tag": "abroad",
            "duration_days": 30,
            "max_devices": 1,
            "data_limit_mb": 100,
            "price_cents": 100,
        },
        headers=admin_headers,
    ).json["id"]
    user = client.put("/api/v1/users/telegram/9001", json={}, headers=bot.headers).json["id"]

    own_redis.stop()

    created = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=admin_headers)
    assert created.status_code == 201, created.json
    suspended = client.post(f"/api/v1/configs/{created.json['id']}/suspend", headers=admin_headers)
    assert suspended.status_code == 200 and suspended.json["status"] == "suspended"
    # Logins still work (rate limits fall back to this process), and so does revocation.
    again = login(client, replace(admin))
    assert client.post("/api/v1/auth/revoke", headers=again.headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=again.headers).status_code == 401
    # What cannot wait for the sweep says so, in JSON.
    provision = client.post(f"/api/v1/nodes/{node.principal_id}/provision", headers=admin_headers)
    assert provision.status_code == 503 and provision.json["error"] == "service_unavailable"
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and health.json["store"].startswith("down")

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        lagging = session.scalars(select(Node).where(Node.applied_revision < Node.desired_revision)).all()
        assert [n.id for n in lagging] == [node.principal_id] and lagging[0].desired_revision == 2

    own_redis.start()  # back, and empty: the two syncs were never queued

    connection = redis.Redis.from_url(own_redis.url)
    assert Queue("nodes", connection=connection).job_ids == []
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert reconcile(session, JobQueue.from_settings(replace(settings, redis_url=own_redis.url))) == [
            node.principal_id
        ]
    assert Queue("nodes", connection=connection).job_ids == [f"sync-node-{node.principal_id}"]
    # The token revoked during the outage stays refused by this process.
    assert client.get("/api/v1/auth/me", headers=again.headers).status_code == 401
    assert client.get("/api/v1/health").status_code == 200
    app.extensions["rayfleet.db"].engine.dispose()
