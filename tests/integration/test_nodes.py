"""Nodes: admins create them (with a one-time agent secret stored only as a hash); agents read only their own."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import redis
from rq import Queue
from sqlalchemy import select

from control_api import create_app
from control_api.jobs.sync import node_inventory
from control_api.models import AuditLog, Node, SyncRun, User, UserConfig

NODE = {"name": "fra-1", "region": "eu-central-1", "location_tag": "abroad", "public_ip": "198.51.100.7"}


def test_create_returns_the_secret_once_and_stores_only_its_hash(app, client, principals):
    response = client.post("/api/v1/nodes", json={**NODE, "core": "v2ray"}, headers=principals.admin.headers)
    assert response.status_code == 201
    created = response.json
    assert created["status"] == "provisioning" and created["core"] == "v2ray"
    assert created["desired_revision"] == 0 and created["applied_revision"] == 0
    secret = created["client_secret"]

    listed = client.get("/api/v1/nodes", headers=principals.admin.headers).json["items"]
    assert [node["name"] for node in listed] == ["node-a", "node-b", "fra-1"]
    for node in listed:
        assert "client_secret" not in node and "jwt_secret" not in node and "secret_hash" not in node
    one = client.get(f"/api/v1/nodes/{created['id']}", headers=principals.admin.headers).json
    assert "client_secret" not in one

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        stored = session.get(Node, created["id"])
        assert stored.secret_hash.startswith("scrypt:") and secret not in stored.secret_hash
        audit = session.scalar(
            select(AuditLog).where(AuditLog.action == "node.create", AuditLog.details["name"].as_string() == "fra-1")
        )
        assert audit.actor_type == "admin" and secret not in str(audit.details)

    login = client.post(
        "/api/v1/auth/token", json={"kind": "node", "client_id": created["client_id"], "client_secret": secret}
    )
    assert login.status_code == 200 and login.json["kind"] == "node"


def test_a_node_reads_only_its_own_record(client, principals):
    own = client.get(f"/api/v1/nodes/{principals.node.principal_id}", headers=principals.node.headers)
    assert own.status_code == 200 and own.json["name"] == "node-a"
    other = client.get(f"/api/v1/nodes/{principals.other_node.principal_id}", headers=principals.node.headers)
    assert other.status_code == 403 and other.json["error"] == "forbidden"
    assert client.get("/api/v1/nodes", headers=principals.node.headers).status_code == 403


def test_duplicate_and_invalid_nodes_are_refused(client, principals):
    admin = principals.admin.headers
    assert client.post("/api/v1/nodes", json=NODE, headers=admin).status_code == 201
    duplicate = client.post("/api/v1/nodes", json=NODE, headers=admin)
    assert duplicate.status_code == 409 and duplicate.json["error"] == "node_name_taken"
    for bad in ({"public_ip": "999.1.1.1"}, {"core": "wireguard"}, {"name": "bad name"}, {"capacity_score": -1}):
        response = client.post("/api/v1/nodes", json={**NODE, "name": "fra-2", **bad}, headers=admin)
        assert response.status_code == 422, bad
    assert len(client.get("/api/v1/nodes", headers=admin).json["items"]) == 3


def test_unknown_node_is_404(client, principals):
    assert client.get("/api/v1/nodes/424242", headers=principals.admin.headers).status_code == 404


def test_register_exchanges_node_credentials_for_a_token(client, principals):
    admin = principals.admin.headers
    created = client.post("/api/v1/nodes", json=NODE, headers=admin).json
    body = {"client_id": created["client_id"], "client_secret": created["client_secret"]}
    token = client.post("/api/v1/nodes/register", json=body)
    assert token.status_code == 200 and token.json["kind"] == "node"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token.json['access_token']}"})
    assert me.json["id"] == created["id"] and me.json["kind"] == "node"

    wrong = client.post("/api/v1/nodes/register", json={**body, "client_secret": "x" * 40})
    assert wrong.status_code == 401 and wrong.json["error"] == "invalid_credentials"
    # Bot or admin credentials never pass as a node's.
    bot = client.post(
        "/api/v1/nodes/register",
        json={"client_id": principals.bot.identifier, "client_secret": principals.bot.secret},
    )
    assert bot.status_code == 401
    for bad in ({}, {"client_id": created["client_id"]}, {**body, "kind": "admin"}, {**body, "client_id": 5}):
        response = client.post("/api/v1/nodes/register", json=bad)
        assert response.status_code in (400, 422) and "message" in response.json, bad


def test_admin_views_show_health_sync_state_last_heartbeat_and_last_sync(app, client, principals, monkeypatch):
    admin = principals.admin.headers
    node_id = principals.node.principal_id
    fresh = client.get(f"/api/v1/nodes/{node_id}", headers=admin).json
    assert fresh["health"] == "never_seen" and fresh["sync_state"] == "in_sync"
    assert fresh["last_metrics"] is None and fresh["last_sync"] is None and fresh["pending_configs"] == 0

    beat = {
        "cpu": 12.5,
        "mem": 40.0,
        "bandwidth_in": 1000,
        "bandwidth_out": 2000,
        "latency_ms": 8.5,
        "core_active": True,
    }
    assert client.post("/api/v1/nodes/heartbeat", json=beat, headers=principals.node.headers).status_code == 200
    seen = client.get(f"/api/v1/nodes/{node_id}", headers=admin).json
    assert seen["health"] == "healthy"
    assert seen["last_metrics"]["cpu"] == 12.5 and seen["last_metrics"]["latency_ms"] == 8.5

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        node = session.get(Node, node_id)
        node.desired_revision = 3
        node.last_seen_at = node.last_seen_at - timedelta(
            seconds=app.extensions["rayfleet.settings"].node_stale_after_seconds + 5
        )
        session.add(SyncRun(node_id=node_id, revision=3, status="failed", rc=4, error="host unreachable"))
        user = User(telegram_id=9401, subscription_token=f"tok-{uuid.uuid4()}")
        session.add(user)
        session.flush()
        # Two pending configs here, one active on the other node: each view counts only its own node's pending.
        for config_node, status in (
            (node_id, "pending"),
            (node_id, "pending"),
            (principals.other_node.principal_id, "active"),
        ):
            session.add(
                UserConfig(user_id=user.id, node_id=config_node, uuid=str(uuid.uuid4()), kind="full", status=status)
            )
        session.commit()
    listed = {item["id"]: item for item in client.get("/api/v1/nodes", headers=admin).json["items"]}
    view = listed[node_id]
    assert view["pending_configs"] == 2 and listed[principals.other_node.principal_id]["pending_configs"] == 0
    assert view["health"] == "stale" and view["sync_state"] == "failing"
    assert view["last_sync"]["status"] == "failed" and view["last_sync"]["error"] == "host unreachable"
    assert listed[principals.other_node.principal_id]["last_sync"] is None
    # The list reads Core rows, a single node's view ORM objects: the same view, field for field.
    for item_id, item in listed.items():
        assert client.get(f"/api/v1/nodes/{item_id}", headers=admin).json == item

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.add(SyncRun(node_id=node_id, revision=3, status="running"))
        session.commit()
    assert client.get(f"/api/v1/nodes/{node_id}", headers=admin).json["sync_state"] == "syncing"


def test_inbounds_and_tls_name_are_validated_and_stored(client, principals):
    admin = principals.admin.headers
    good = {
        **NODE,
        "name": "fra-in",
        "core": "v2ray",
        "tls_server_name": "fra.rayfleet.test",
        "tls_self_signed": True,
        "inbounds": [
            {"profile": "vless-tcp-tls", "port": 443},
            {"profile": "vless-h2-tls", "port": 8445, "path": "/h2"},
        ],
    }
    created = client.post("/api/v1/nodes", json=good, headers=admin)
    assert created.status_code == 201, created.json
    assert created.json["inbounds"] == good["inbounds"] and created.json["tls_self_signed"] is True
    bad_bodies = [
        {"inbounds": [{"profile": "vless-ws-tls", "port": 8443}]},  # ws needs a path
        {"inbounds": [{"profile": "vless-tcp-tls", "port": 443, "path": "/x"}]},  # tcp takes none
        {
            "inbounds": [
                {"profile": "vless-tcp-tls", "port": 443},
                {"profile": "vmess-ws-tls", "port": 443, "path": "/v"},
            ]
        },
        {"inbounds": [{"profile": "vless-h2-tls", "port": 8445, "path": "/h2"}], "core": "xray"},  # v2ray only
        {"inbounds": [{"profile": "vless-reality-vision", "port": 443}]},  # keys live in host vars
        {"inbounds": [{"profile": "vless-tcp-tls", "port": 70000}]},
        {"inbounds": [{"profile": "vless-ws-tls", "port": 8443, "path": "/ws\n"}]},
        {"tls_server_name": "bad name"},
        {"tls_server_name": "node.example.com\n"},
        {"tls_self_signed": "yes"},
    ]
    for number, bad in enumerate(bad_bodies):
        response = client.post("/api/v1/nodes", json={**NODE, "name": f"bad-{number}", **bad}, headers=admin)
        assert response.status_code == 422, (bad, response.json)
        assert response.json["error"] == "validation_error", bad
    names = {node["name"] for node in client.get("/api/v1/nodes", headers=admin).json["items"]}
    assert not any(name.startswith("bad-") for name in names)


def test_provision_queues_one_job_per_node(app, client, principals, settings):
    admin = principals.admin.headers
    node_id = principals.node.principal_id
    first = client.post(f"/api/v1/nodes/{node_id}/provision", headers=admin)
    assert first.status_code == 202 and first.json == {"node_id": node_id, "queued": True}
    again = client.post(f"/api/v1/nodes/{node_id}/provision", headers=admin)
    assert again.status_code == 202 and again.json["queued"] is False
    assert Queue("nodes", connection=redis.Redis.from_url(settings.redis_url)).job_ids == [f"provision-node-{node_id}"]
    assert client.post("/api/v1/nodes/424242/provision", headers=admin).status_code == 404

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.get(Node, node_id).status = "disabled"
        session.commit()
    disabled = client.post(f"/api/v1/nodes/{node_id}/provision", headers=admin)
    assert disabled.status_code == 409 and disabled.json["error"] == "node_disabled"


def test_the_jobs_inventory_takes_inbounds_and_tls_from_the_row():
    node = Node(
        name="fra-1",
        public_ip="203.0.113.7",
        core="v2ray",
        inbounds=[{"profile": "vless-tcp-tls", "port": 443}],
        tls_server_name="fra.rayfleet.test",
        tls_self_signed=True,
    )
    host = node_inventory(node, lambda _n: {"ansible_user": "ops"})["all"]["children"]["vpn_nodes"]["hosts"]["fra-1"]
    assert host == {
        "ansible_host": "203.0.113.7",
        "ansible_user": "ops",
        "xray_core": "v2ray",
        "xray_inbounds": [{"profile": "vless-tcp-tls", "port": 443}],
        "xray_tls_server_name": "fra.rayfleet.test",
        "xray_tls_self_signed": True,
    }


def test_the_bot_lists_nodes_only_for_a_telegram_admin(client, principals):
    admin, bot = principals.admin.headers, principals.bot.headers
    staff = client.put("/api/v1/users/telegram/6001", json={}, headers=admin).json["id"]
    client.put("/api/v1/users/telegram/6002", json={}, headers=admin)
    client.put(f"/api/v1/users/{staff}/admin", json={"is_admin": True}, headers=admin)

    listed = client.get("/api/v1/nodes?acting_telegram_id=6001", headers=bot)
    assert listed.status_code == 200 and [n["name"] for n in listed.json["items"]] == ["node-a", "node-b"]
    assert "client_secret" not in listed.json["items"][0]
    stranger = client.get("/api/v1/nodes?acting_telegram_id=6002", headers=bot)
    assert stranger.status_code == 403 and stranger.json["error"] == "not_an_admin"
    assert client.get("/api/v1/nodes", headers=bot).status_code == 422
    assert client.get("/api/v1/nodes?acting_telegram_id=6001", headers=admin).status_code == 422
    assert client.get("/api/v1/nodes", headers=principals.node.headers).status_code == 403


def test_provisioning_is_refused_at_once_without_a_safe_node_api_url(settings, principals):
    """Issue 13, item 13: said before anything is queued, not found later in a failed job."""
    for url, allow, expected in (
        ("", False, "RAYFLEET_NODE_API_URL is not set"),
        ("http://api.rayfleet.test", False, "unencrypted"),
        ("http://api.rayfleet.test", True, None),
    ):
        app = create_app(replace(settings, node_api_url=url, node_api_allow_insecure_http=allow))
        response = app.test_client().post(
            f"/api/v1/nodes/{principals.node.principal_id}/provision", headers=principals.admin.headers
        )
        app.extensions["rayfleet.db"].engine.dispose()
        if expected is None:
            assert response.status_code == 202, response.json
        else:
            assert response.status_code == 409 and response.json["error"] == "node_api_url_unusable"
            assert expected in response.json["message"]
