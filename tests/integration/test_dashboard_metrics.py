"""Dashboard numbers and the Prometheus endpoint, on real data."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from control_api import create_app
from control_api.models import Payment, Plan, User, UserConfig, utcnow


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
