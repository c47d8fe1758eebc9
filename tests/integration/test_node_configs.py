"""What a node must serve, and its acknowledgement of a revision, on real PostgreSQL."""

from __future__ import annotations

import uuid

from control_api.models import Node, User, UserConfig


def seed(app, node_id: int, statuses: tuple[str, ...], desired_revision: int) -> list[int]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        user = User(telegram_id=9100 + node_id, subscription_token=f"tok-{uuid.uuid4()}")
        session.add(user)
        session.flush()
        configs = [
            UserConfig(
                user_id=user.id,
                node_id=node_id,
                uuid=str(uuid.uuid4()),
                kind="full",
                status=status,
                protocol="vmess" if index == 1 else "vless",
            )
            for index, status in enumerate(statuses)
        ]
        session.add_all(configs)
        session.get(Node, node_id).desired_revision = desired_revision
        session.commit()
        return [config.id for config in configs]


def statuses(app, ids: list[int]) -> list[str]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        return [session.get(UserConfig, config_id).status for config_id in ids]


def test_a_node_reads_the_users_it_must_serve(app, client, principals):
    node = principals.node
    ids = seed(app, node.principal_id, ("pending", "active", "suspended", "expired"), desired_revision=3)
    response = client.get(f"/api/v1/nodes/{node.principal_id}/configs", headers=node.headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["node_id"], body["revision"], body["applied_revision"]) == (node.principal_id, 3, 0)
    assert [(user["email"], user["protocol"], user["level"]) for user in body["users"]] == [
        (f"cfg-{ids[0]}", "vless", 0),
        (f"cfg-{ids[1]}", "vmess", 0),
    ]
    assert all(len(user["id"]) == 36 for user in body["users"])
    admin_view = client.get(f"/api/v1/nodes/{node.principal_id}/configs", headers=principals.admin.headers)
    assert admin_view.json == body
    other = client.get(f"/api/v1/nodes/{principals.other_node.principal_id}/configs", headers=node.headers)
    assert other.status_code == 403


def test_acknowledging_the_desired_revision_makes_pending_configs_live(app, client, principals):
    node = principals.node
    ids = seed(app, node.principal_id, ("pending", "pending", "suspended"), desired_revision=2)
    url = f"/api/v1/nodes/{node.principal_id}/configs/sync"

    ahead = client.post(url, json={"revision": 3}, headers=node.headers)
    assert ahead.status_code == 409
    assert ahead.json["error"] == "revision_ahead"

    partial = client.post(url, json={"revision": 1}, headers=node.headers)
    assert partial.json["applied_revision"] == 1
    assert statuses(app, ids) == ["pending", "pending", "suspended"]

    full = client.post(url, json={"revision": 2}, headers=node.headers)
    assert full.json["applied_revision"] == 2
    assert statuses(app, ids) == ["active", "active", "suspended"]

    stale = client.post(url, json={"revision": 1}, headers=node.headers)
    assert stale.json["applied_revision"] == 2  # never moves backwards


def test_a_node_cannot_acknowledge_for_another(client, principals):
    other = principals.other_node.principal_id
    response = client.post(f"/api/v1/nodes/{other}/configs/sync", json={"revision": 0}, headers=principals.node.headers)
    assert response.status_code == 403
