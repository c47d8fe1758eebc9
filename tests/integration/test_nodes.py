"""Nodes: admins create them (with a one-time agent secret stored only as a hash); agents read only their own."""

from __future__ import annotations

from sqlalchemy import select

from control_api.models import AuditLog, Node

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
