"""Dashboard numbers and the Prometheus endpoint, on real data."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from control_api import create_app
from control_api.models import Node, Payment, Plan, SyncRun, User, UserConfig, utcnow


def seed_sales(app, principals):
    """Two users with active configs (one banned), one suspended config, one pending payment."""
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        plan = Plan(name="p", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=1000, price_cents=1)
        users = [User(telegram_id=n, subscription_token=f"tok{n}") for n in (1, 2, 3)]
        users[1].ban_reason = "fraud"
        session.add_all([plan, *users])
        session.flush()
        for user, status in ((users[0], "active"), (users[0], "active"), (users[1], "active"), (users[2], "suspended")):
            session.add(
                UserConfig(
                    user_id=user.id,
                    node_id=principals.node.principal_id,
                    plan_id=plan.id,
                    uuid=str(uuid.uuid4()),
                    kind="full",
                    status=status,
                    expires_at=utcnow() + timedelta(days=30),
                )
            )
        session.add(
            Payment(user_id=users[2].id, plan_id=plan.id, amount_cents=1, evidence_file_id="x", auto_accept_at=utcnow())
        )
        session.commit()


def test_dashboard_stats(app, client, principals):
    seed_sales(app, principals)
    stats = client.get("/api/v1/dashboard/stats", headers=principals.admin.headers)
    assert stats.status_code == 200
    assert stats.json == {
        "active_users": 1,  # the banned user's config does not make them an active customer
        "active_configs": 3,
        "pending_payments": 1,
        "nodes_by_status": {"provisioning": 2, "active": 0, "draining": 0, "offline": 0, "disabled": 0},
    }


def test_metrics_expose_requests_latency_and_business_gauges(app, client, principals):
    seed_sales(app, principals)
    client.get("/api/v1/plans", headers=principals.bot.headers)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'rayfleet_http_requests_total{endpoint="plans.list_plans",method="GET",status="200"} 1.0' in text
    assert 'rayfleet_http_request_seconds_count{endpoint="plans.list_plans",method="GET"} 1.0' in text
    assert "rayfleet_active_configs 3.0" in text
    assert "rayfleet_pending_payments 1.0" in text
    assert 'rayfleet_nodes{status="provisioning"} 2.0' in text


def test_metrics_token_when_configured(settings):
    app = create_app(replace(settings, metrics_token="scrape-me-please"))
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert allowed.status_code == 200 and b"rayfleet_active_users" in allowed.data
    app.extensions["rayfleet.db"].engine.dispose()


def test_without_a_token_metrics_are_for_loopback_only(client):
    """Issue 13, item 11: nobody outside the machine reads the business numbers without METRICS_TOKEN."""
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert remote.status_code == 401 and "METRICS_TOKEN" in remote.json["message"]
    # Through a local reverse proxy every client arrives from loopback: a forwarded request is not local.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status_code == 401
    assert client.get("/metrics", headers={"Forwarded": "for=198.51.100.7"}).status_code == 401


def test_metrics_expose_nodes_payments_and_queues(app, client, principals):
    """Issue 18, item 2: per-node figures from heartbeats (labelled by node name, never by user), overdue
    payments, and the RQ queues; the limits are the fleet's defaults unless a node overrides one."""
    seed_sales(app, principals)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        old = session.scalars(select(Payment)).one()
        old.created_at = utcnow() - timedelta(days=2)
        node_b = session.get(Node, principals.other_node.principal_id)
        node_b.thresholds = {"cpu_percent": 50}
        node_b.bandwidth_capacity_mbps = 100
        node_b.status = "active"
        node_b.desired_revision = 3
        session.add(SyncRun(node_id=node_b.id, revision=3, status="failed"))
        session.commit()
    body = {
        "cpu": 70.0,
        "mem": 40.0,
        "bandwidth_in": 1_000_000,
        "bandwidth_out": 2_500_000,
        "latency_ms": 250.0,
        "core_active": True,
    }
    sent = client.post("/api/v1/nodes/heartbeat", json={**body, "reports": []}, headers=principals.other_node.headers)
    assert sent.status_code == 200, sent.json
    text = client.get("/metrics").get_data(as_text=True)
    for line in (
        'rayfleet_payments{purpose="purchase",status="pending"} 1.0',
        'rayfleet_payments_amount_cents{purpose="purchase",status="pending"} 1.0',
        'rayfleet_payments{purpose="topup",status="approved"} 0.0',
        "rayfleet_pending_payments_overdue 1.0",
        'rayfleet_node_info{core="xray",location="abroad",node="node-b",region="eu-central-1",status="active"} 1.0',
        'rayfleet_node_cpu_percent{node="node-b"} 70.0',
        'rayfleet_node_memory_percent{node="node-b"} 40.0',
        'rayfleet_node_bandwidth_bytes_per_second{direction="out",node="node-b"} 2.5e+06',
        'rayfleet_node_bandwidth_percent{node="node-b"} 20.0',  # 2.5 MB/s = 20 Mbit/s of 100
        'rayfleet_node_probe_latency_seconds{node="node-b"} 0.25',
        'rayfleet_node_cpu_limit_percent{node="node-b"} 50.0',  # its own override
        'rayfleet_node_cpu_limit_percent{node="node-a"} 85.0',  # the fleet's default
        'rayfleet_node_probe_latency_limit_seconds{node="node-a"} 0.2',
        'rayfleet_node_bandwidth_limit_percent{node="node-b"} 90.0',
        'rayfleet_node_heartbeat_limit_seconds{node="node-b"} 180.0',
        'rayfleet_node_alert{node="node-b",threshold="cpu"} 0.0',  # one heartbeat is not a window
        'rayfleet_node_sync_lag_revisions{node="node-b"} 3.0',
        'rayfleet_node_sync_failing{node="node-b"} 1.0',
        'rayfleet_node_sync_failing{node="node-a"} 0.0',
        'rayfleet_node_configs{node="node-a",status="active"} 3.0',
        "rayfleet_queue_up 1.0",
        'rayfleet_queue_jobs{queue="nodes",state="failed"} 0.0',
        "rayfleet_queue_workers 0.0",
    ):
        assert line in text, line
    age = next(line for line in text.splitlines() if line.startswith("rayfleet_oldest_pending_payment_age_seconds "))
    assert 2 * 86400 <= float(age.split()[1]) < 2 * 86400 + 600
    assert 'rayfleet_node_last_heartbeat_timestamp_seconds{node="node-b"}' in text
    # A provisioning node is not expected to heartbeat, has no capacity, and has sent nothing.
    for absent in ('rayfleet_node_heartbeat_limit_seconds{node="node-a"}', 'bandwidth_limit_percent{node="node-a"}'):
        assert absent not in text
    assert 'rayfleet_node_cpu_percent{node="node-a"}' not in text
    assert "telegram" not in text and "user=" not in text


def test_metrics_say_when_redis_is_down(settings):
    app = create_app(replace(settings, redis_url="redis://127.0.0.1:9/0"))
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "rayfleet_queue_up 0.0" in text and "rayfleet_active_configs 0.0" in text
    assert "rayfleet_queue_jobs" not in text
    app.extensions["rayfleet.db"].engine.dispose()
