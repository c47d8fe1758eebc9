"""Assigning, moving, suspending and resuming configs: placement, revisions and queued syncs (real PG + Redis)."""

from __future__ import annotations

import redis
from rq import Queue
from sqlalchemy import select

from control_api.links import parse_link
from control_api.models import AuditLog, Node, Notification

PLAN = {"location_tag": "abroad", "duration_days": 30, "max_devices": 2, "data_limit_mb": 1000, "price_cents": 100}


def make_plan(client, admin, name="Abroad", **fields):
    response = client.post("/api/v1/plans", json={**PLAN, "name": name, **fields}, headers=admin.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def make_user(client, bot, telegram_id=501):
    return client.put(f"/api/v1/users/telegram/{telegram_id}", json={}, headers=bot.headers).json["id"]


def set_nodes(app, **by_name):
    """Set status/capacity/location of the fixture nodes by name."""
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        for node in session.scalars(select(Node)):
            for key, value in by_name.get(node.name, {}).items():
                setattr(node, key, value)
        session.commit()


def revisions(app) -> dict[str, int]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        return {node.name: node.desired_revision for node in session.scalars(select(Node))}


def queued_syncs(settings) -> set[str]:
    queue = Queue("nodes", connection=redis.Redis.from_url(settings.redis_url))
    return set(queue.job_ids)


def test_placement_picks_the_active_node_with_most_spare_capacity(app, client, principals, settings):
    set_nodes(
        app,
        **{"node-a": {"status": "active", "capacity_score": 5}, "node-b": {"status": "active", "capacity_score": 50}},
    )
    plan = make_plan(client, principals.admin)
    user = make_user(client, principals.bot)
    response = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=principals.admin.headers)
    assert response.status_code == 201, response.json
    config = response.json
    assert config["node_id"] == principals.other_node.principal_id  # node-b has more room
    assert (config["status"], config["kind"], config["protocol"], config["data_limit_mb"]) == (
        "pending",
        "full",
        "vless",
        1000,
    )
    assert revisions(app) == {"node-a": 0, "node-b": 1}
    assert queued_syncs(settings) == {f"sync-node-{principals.other_node.principal_id}"}


def test_a_burst_of_assignments_queues_one_sync_per_node(app, client, principals, settings):
    set_nodes(app, **{"node-a": {"status": "active", "capacity_score": 1000}})
    plan = make_plan(client, principals.admin)
    user = make_user(client, principals.bot)
    for _ in range(20):
        response = client.post(
            f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=principals.admin.headers
        )
        assert response.status_code == 201
    assert revisions(app)["node-a"] == 20
    assert queued_syncs(settings) == {f"sync-node-{principals.node.principal_id}"}


def test_no_node_for_the_location_is_a_clear_conflict(app, client, principals):
    plan = make_plan(client, principals.admin, location_tag="local")
    user = make_user(client, principals.bot)
    response = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=principals.admin.headers)
    assert response.status_code == 409
    assert response.json["error"] == "no_node_available"


def test_moving_a_config_bumps_both_nodes_and_constant_ip_stays_put(app, client, principals, settings):
    set_nodes(app, **{"node-a": {"status": "active"}, "node-b": {"status": "active"}})
    admin = principals.admin.headers
    dynamic = make_plan(client, principals.admin, "Dynamic")
    fixed = make_plan(client, principals.admin, "Fixed", is_constant_ip=True)
    user = make_user(client, principals.bot)
    first = client.post(
        f"/api/v1/users/{user}/configs",
        json={"plan_id": dynamic, "node_id": principals.node.principal_id},
        headers=admin,
    ).json
    moved = client.post(f"/api/v1/users/{user}/configs", json={"config_id": first["id"]}, headers=admin)
    assert moved.status_code == 201, moved.json
    assert moved.json["node_id"] == principals.other_node.principal_id
    assert moved.json["uuid"] == first["uuid"]
    assert revisions(app) == {"node-a": 2, "node-b": 1}

    pinned = client.post(
        f"/api/v1/users/{user}/configs", json={"plan_id": fixed, "node_id": principals.node.principal_id}, headers=admin
    ).json
    refused = client.post(f"/api/v1/users/{user}/configs", json={"config_id": pinned["id"]}, headers=admin)
    assert refused.status_code == 409
    assert refused.json["error"] == "constant_ip_pinned"
    named = client.post(
        f"/api/v1/users/{user}/configs",
        json={"config_id": pinned["id"], "node_id": principals.other_node.principal_id},
        headers=admin,
    )
    assert named.json["node_id"] == principals.other_node.principal_id

    # Each move is told to the customer once, through the bot's outbox.
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        moves = session.execute(
            select(Notification.payload).where(Notification.kind == "migrated").order_by(Notification.id)
        ).scalars()
        assert [(m["config_id"], m["node_name"]) for m in moves] == [(first["id"], "node-b"), (pinned["id"], "node-b")]


def test_suspend_and_resume_go_through_the_sync_path(app, client, principals, settings):
    set_nodes(app, **{"node-a": {"status": "active"}})
    admin = principals.admin.headers
    plan = make_plan(client, principals.admin)
    user = make_user(client, principals.bot)
    config = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=admin).json
    suspended = client.post(f"/api/v1/configs/{config['id']}/suspend", headers=admin)
    assert suspended.json["status"] == "suspended"
    again = client.post(f"/api/v1/configs/{config['id']}/suspend", headers=admin)
    assert again.status_code == 409
    assert again.json["error"] == "invalid_transition"
    resumed = client.post(f"/api/v1/configs/{config['id']}/resume", headers=admin)
    assert resumed.json["status"] == "pending"
    assert revisions(app)["node-a"] == 3
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        actions = [row.action for row in session.scalars(select(AuditLog).where(AuditLog.action.like("config.%")))]
    assert actions == ["config.create", "config.suspend", "config.resume"]


def test_bad_requests(app, client, principals):
    admin = principals.admin.headers
    user = make_user(client, principals.bot)
    assert client.post(f"/api/v1/users/{user}/configs", json={}, headers=admin).status_code == 422
    assert client.post("/api/v1/users/999999/configs", json={"plan_id": 1}, headers=admin).status_code == 404
    assert client.post(f"/api/v1/users/{user}/configs", json={"plan_id": 999}, headers=admin).status_code == 404
    assert client.post("/api/v1/configs/999999/suspend", headers=admin).status_code == 404
    client.post(f"/api/v1/users/{user}/ban", json={"reason": "fraud"}, headers=admin)
    plan = make_plan(client, principals.admin)
    banned = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=admin)
    assert banned.status_code == 409
    assert banned.json["error"] == "user_banned"


def test_configs_carry_share_links_for_their_nodes_inbounds(app, client, principals):
    admin = principals.admin.headers
    node = client.post(
        "/api/v1/nodes",
        json={
            "name": "fra-links",
            "region": "eu-central-1",
            "location_tag": "links",
            "core": "v2ray",
            "public_ip": "198.51.100.20",
            "tls_server_name": "fra.rayfleet.test",
            "inbounds": [
                {"profile": "vless-tcp-tls", "port": 443},
                {"profile": "vless-ws-tls", "port": 8443, "path": "/ws"},
                {"profile": "vmess-ws-tls", "port": 8444, "path": "/vm"},
            ],
        },
        headers=admin,
    ).json
    set_nodes(app, **{"fra-links": {"status": "active"}})
    plan = make_plan(client, principals.admin, name="Links", location_tag="links")
    user = make_user(client, principals.bot)

    vless = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan}, headers=admin).json
    assert vless["node_id"] == node["id"] and len(vless["links"]) == 2
    parsed = [parse_link(link) for link in vless["links"]]
    assert {(p["protocol"], p["port"], p["network"]) for p in parsed} == {("vless", 443, "tcp"), ("vless", 8443, "ws")}
    for p in parsed:
        assert p["uuid"] == vless["uuid"] and p["address"] == "198.51.100.20"
        assert p["server_name"] == "fra.rayfleet.test" and not p["allow_insecure"]

    vmess = client.post(
        f"/api/v1/users/{user}/configs", json={"plan_id": plan, "protocol": "vmess"}, headers=admin
    ).json
    assert [parse_link(link)["port"] for link in vmess["links"]] == [8444]

    one = client.get(f"/api/v1/configs/{vless['id']}", headers=admin)
    assert one.status_code == 200 and one.json["links"] == vless["links"] and one.json["status"] == "pending"
    suspended = client.post(f"/api/v1/configs/{vless['id']}/suspend", headers=admin).json
    assert suspended["status"] == "suspended" and suspended["links"] == vless["links"]
    assert client.get("/api/v1/configs/987654", headers=admin).status_code == 404


def test_a_node_without_inbounds_or_address_gives_no_links(app, client, principals):
    set_nodes(app, **{"node-a": {"status": "active", "public_ip": None}})
    plan = make_plan(client, principals.admin)
    user = make_user(client, principals.bot)
    config = client.post(
        f"/api/v1/users/{user}/configs",
        json={"plan_id": plan, "node_id": principals.node.principal_id},
        headers=principals.admin.headers,
    ).json
    assert config["links"] == []
