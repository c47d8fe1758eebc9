"""Health, alerts and migration through the real API on PostgreSQL + Redis (issue 14).

Jobs run here in the test's process (the job functions themselves, with a queue that records what
they queue); the same flow with a real worker, real nodes and real traffic is tests/e2e/test_migration.py.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import redis
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from control_api.jobs import tasks
from control_api.jobs.context import WorkerContext
from control_api.models import AuditLog, Node, UserConfig, utcnow
from control_api.services.node_health import HealthPolicy
from control_api.services.revisions import desired_users
from tests.integration.test_payments import PLAN, db

pytestmark = pytest.mark.postgres

HEARTBEAT = {"cpu": 5.0, "mem": 10.0, "bandwidth_in": 0, "bandwidth_out": 0, "latency_ms": 4.0, "core_active": True}


class RecordingQueue:
    def __init__(self) -> None:
        self.synced: list[int] = []
        self.migrating: list[int] = []

    def enqueue_node_sync(self, node_id: int) -> bool:
        self.synced.append(node_id)
        return True

    def enqueue_node_syncs(self, node_ids: list[int]) -> bool:
        self.synced.extend(node_ids)
        return True

    def enqueue_migration(self, node_id: int) -> bool:
        self.migrating.append(node_id)
        return True


@pytest.fixture
def fleet(app, client, principals):
    """Two active nodes of one tier (node-a sick soon, node-b healthy), two plans, a customer."""
    with app.app_context():
        session = db(app)
        for node_id, address in (
            (principals.node.principal_id, "198.51.100.40"),
            (principals.other_node.principal_id, "198.51.100.41"),
        ):
            node = session.get(Node, node_id)
            node.status, node.public_ip, node.capacity_score = "active", address, 50
            node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin = principals.admin.headers
    dynamic = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    pinned = client.post("/api/v1/plans", json={**PLAN, "name": "Pinned", "is_constant_ip": True}, headers=admin).json
    user = client.put("/api/v1/users/telegram/9001", json={"username": "carol"}, headers=admin).json

    class Fleet:
        a = principals.node.principal_id
        b = principals.other_node.principal_id
        dynamic_plan = dynamic["id"]
        pinned_plan = pinned["id"]
        user_id = user["id"]
        queue = RecordingQueue()
        policy = HealthPolicy.from_settings(app.extensions["rayfleet.settings"])
        context = WorkerContext(
            session_factory=sessionmaker(app.extensions["rayfleet.db"].engine, expire_on_commit=False),
            policy=HealthPolicy.from_settings(app.extensions["rayfleet.settings"]),
        )

    Fleet.context.queue = Fleet.queue
    return Fleet


def beat(client, node_credentials, **fields):
    response = client.post("/api/v1/nodes/heartbeat", json={**HEARTBEAT, **fields}, headers=node_credentials.headers)
    assert response.status_code == 200, response.json
    return response.json


def config_on(client, principals, fleet, plan_id, node_id):
    body = {"plan_id": plan_id, "node_id": node_id, "protocol": "vless"}
    response = client.post(f"/api/v1/users/{fleet.user_id}/configs", json=body, headers=principals.admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def applied(client, node_credentials, node_id):
    """The node acknowledges its desired revision (what a successful sync records)."""
    served = client.get(f"/api/v1/nodes/{node_id}/configs", headers=node_credentials.headers).json
    response = client.post(
        f"/api/v1/nodes/{node_id}/configs/sync", json={"revision": served["revision"]}, headers=node_credentials.headers
    )
    assert response.status_code == 200, response.json
    return {user["email"] for user in served["users"]}


def admin_notes(client, principals):
    items = client.get("/api/v1/notifications", headers=principals.bot.headers).json["items"]
    return [note for note in items if note["audience"] == "admins"]


def test_a_sick_node_alerts_and_its_dynamic_customers_move_make_before_break(app, client, principals, fleet, redis_url):
    admin = principals.admin.headers
    beat(client, principals.other_node)  # node-b is heard from: a healthy target
    moving = [config_on(client, principals, fleet, fleet.dynamic_plan, fleet.a) for _ in range(2)]
    pinned = config_on(client, principals, fleet, fleet.pinned_plan, fleet.a)
    applied(client, principals.node, fleet.a)
    applied(client, principals.other_node, fleet.b)

    # A per-node override low enough to trip on real values; a spike of two heartbeats raises nothing.
    patched = client.patch(f"/api/v1/nodes/{fleet.a}", json={"thresholds": {"latency_ms": 10}}, headers=admin)
    assert patched.status_code == 200 and patched.json["thresholds"] == {"latency_ms": 10}
    beat(client, principals.node, latency_ms=50)
    beat(client, principals.node, latency_ms=50)
    beat(client, principals.node, latency_ms=5)
    assert client.get("/api/v1/nodes/alerts", headers=admin).json["items"] == []
    for _ in range(3):
        beat(client, principals.node, latency_ms=50)

    [alert] = client.get("/api/v1/nodes/alerts", headers=admin).json["items"]
    assert alert["node_id"] == fleet.a and alert["breached"][0]["threshold"] == "latency"
    assert (alert["breached"][0]["value"], alert["breached"][0]["limit"]) == (50.0, 10.0)
    assert alert["configs"] == {"dynamic": 2, "constant_ip": 1, "migrating_away": 0}
    assert alert["constant_ip_config_ids"] == [pinned["id"]]
    assert {"code": "migrating", "count": 2} in alert["actions"]
    assert {"code": "constant_ip_pinned", "count": 1} in alert["actions"]
    # Raising it queued the node's migration job, told the admins and left an audit row.
    assert Job.exists(f"migrate-node-{fleet.a}", connection=redis.Redis.from_url(redis_url))
    [note] = admin_notes(client, principals)
    assert note["kind"] == "node_alert" and note["user_id"] is None and note["telegram_id"] is None
    assert note["payload"]["node_name"] == "node-a" and note["payload"]["breached"][0]["threshold"] == "latency"
    with app.app_context():
        actions = db(app).scalars(select(AuditLog.action).where(AuditLog.action.like("node.alert%"))).all()
    assert actions == ["node.alert_raised"]
    # New sales avoid the sick node.
    placed = client.post(f"/api/v1/users/{fleet.user_id}/configs", json={"plan_id": fleet.dynamic_plan}, headers=admin)
    assert placed.json["node_id"] == fleet.b

    outcome = tasks.migrate_node_job(fleet.a, context=fleet.context)
    assert (outcome["moved"], outcome["pinned"]) == (2, 1)
    assert fleet.queue.synced == [fleet.b]
    emails = {f"cfg-{config['id']}" for config in moving}
    with app.app_context():
        # Both nodes serve the moving configs; usage the source reports for them still counts.
        assert emails <= {user["email"] for user in desired_users(db(app), fleet.a)[1]}
        assert emails <= {user["email"] for user in desired_users(db(app), fleet.b)[1]}
    view = client.get(f"/api/v1/configs/{moving[0]['id']}", headers=admin).json
    assert view["migration"]["live_on_target"] is False
    assert "198.51.100.40" in view["links"][0]  # not live on node-b yet: customers keep node-a's link
    report = {
        "report_id": "r-moving-1",
        "period_start": utcnow().isoformat(),
        "period_end": utcnow().isoformat(),
        "usage": [{"email": f"cfg-{moving[0]['id']}", "uplink": 100, "downlink": 900}],
    }
    assert beat(client, principals.node, latency_ms=50, reports=[report])["foreign_configs"] == 0

    # node-b applies it: live, the customer is told node-b's links, /sub names node-b.
    applied(client, principals.other_node, fleet.b)
    tasks.after_sync(fleet.context)
    view = client.get(f"/api/v1/configs/{moving[0]['id']}", headers=admin).json
    assert view["migration"]["live_on_target"] is True and view["used_bytes"] == 1000
    assert "198.51.100.41" in view["links"][0]
    items = client.get("/api/v1/notifications", headers=principals.bot.headers).json["items"]
    migrated = [note for note in items if note["kind"] == "migrated"]
    assert sorted(note["payload"]["config_id"] for note in migrated) == sorted(config["id"] for config in moving)
    assert all("198.51.100.41" in note["payload"]["links"][0] for note in migrated)
    sub_url = client.get(f"/api/v1/users/{fleet.user_id}/subscription", headers=admin).json["subscription_url"]
    document = client.get(sub_url.removeprefix("http://localhost"), query_string={"format": "base64"})
    links = base64.b64decode(document.get_data()).decode()
    assert links.count("198.51.100.41") >= 2 and "198.51.100.40" in links  # the pinned one stays on node-a

    # Within the grace window node-a still serves them; after it, only node-b does.
    with app.app_context():
        session = db(app)
        assert tasks.migration.advance(session, fleet.policy, utcnow()) == []
        later = utcnow() + timedelta(seconds=fleet.policy.migration_grace_seconds + 1)
        assert tasks.migration.advance(session, fleet.policy, later) == [fleet.a]
        session.commit()
        on_a = {user["email"] for user in desired_users(session, fleet.a)[1]}
        session.commit()
    assert not emails & on_a and f"cfg-{pinned['id']}" in on_a


def test_drain_moves_everything_dynamic_now_and_keeps_sales_off(app, client, principals, fleet):
    admin = principals.admin.headers
    beat(client, principals.node)
    config = config_on(client, principals, fleet, fleet.dynamic_plan, fleet.b)
    drained = client.post(f"/api/v1/nodes/{fleet.b}/drain", json={"now": True}, headers=admin)
    assert drained.status_code == 200 and drained.json["status"] == "draining"
    [alert] = client.get("/api/v1/nodes/alerts", headers=admin).json["items"]
    assert alert["draining"] is True and alert["breached"] == []
    placed = client.post(f"/api/v1/users/{fleet.user_id}/configs", json={"plan_id": fleet.dynamic_plan}, headers=admin)
    assert placed.json["node_id"] == fleet.a  # never the draining node

    tasks.migrate_node_job(fleet.b, context=fleet.context)
    applied(client, principals.node, fleet.a)
    tasks.after_sync(fleet.context)  # live and, with now=true, no grace: node-b lets go at once
    assert fleet.b in fleet.queue.synced
    assert f"cfg-{config['id']}" not in applied(client, principals.other_node, fleet.b)
    with app.app_context():
        moved = db(app).get(UserConfig, config["id"])
        assert (moved.node_id, moved.previous_node_id) == (fleet.a, None)

    undrained = client.post(f"/api/v1/nodes/{fleet.b}/undrain", headers=admin)
    assert undrained.status_code == 200 and undrained.json["status"] == "active"
    again = client.post(f"/api/v1/nodes/{fleet.b}/undrain", headers=admin)
    assert (again.status_code, again.json["error"]) == (409, "node_not_draining")


def test_a_dark_node_is_found_by_the_fleet_check_and_its_customers_get_no_grace(app, client, principals, fleet):
    from control_api.jobs.sweep import fleet_check

    beat(client, principals.other_node)
    config = config_on(client, principals, fleet, fleet.dynamic_plan, fleet.a)
    with app.app_context():
        session = db(app)
        session.get(Node, fleet.a).last_seen_at = utcnow() - timedelta(seconds=fleet.policy.limits["dark"] + 5)
        session.commit()
        result = fleet_check(session, fleet.queue, fleet.policy)
    assert result.migrate == [fleet.a] and fleet.queue.migrating == [fleet.a]
    [alert] = client.get("/api/v1/nodes/alerts", headers=principals.admin.headers).json["items"]
    assert [breach["threshold"] for breach in alert["breached"]] == ["dark"]
    tasks.migrate_node_job(fleet.a, context=fleet.context)
    with app.app_context():
        assert db(app).get(UserConfig, config["id"]).migration_grace_seconds == 0


def test_who_may_read_alerts_and_what_bad_input_gets(client, principals, fleet):
    bot = principals.bot.headers
    refused = client.get("/api/v1/nodes/alerts", query_string={"acting_telegram_id": 9001}, headers=bot)
    assert (refused.status_code, refused.json["error"]) == (403, "not_an_admin")
    missing = client.get("/api/v1/nodes/alerts", headers=bot)
    assert (missing.status_code, missing.json["error"]) == (422, "acting_admin_required")
    assert client.get("/api/v1/nodes/alerts", headers=principals.node.headers).status_code == 403
    assert client.post(f"/api/v1/nodes/{fleet.a}/drain", json={}, headers=principals.node.headers).status_code == 403
    admin = principals.admin.headers
    for body in ({"thresholds": {"cpu_percent": -1}}, {"thresholds": {"cpu": 5}}, {"bandwidth_capacity_mbps": 0}):
        response = client.patch(f"/api/v1/nodes/{fleet.a}", json=body, headers=admin)
        assert (response.status_code, response.json["error"]) == (422, "validation_error"), body
    assert client.post("/api/v1/nodes/999999/drain", json={}, headers=admin).status_code == 404
