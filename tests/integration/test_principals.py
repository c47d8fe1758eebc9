"""Principals can be disabled, enabled and have their secrets rotated without SQL (issue 13, item 4):
through the admin API and the CLI, each audited; a disabled principal's tokens, and every token issued
before a rotation, stop working on their next request. Real PostgreSQL + Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from control_api.models import AuditLog
from tests.conftest import Credentials, cli_output, create_admin, login

pytestmark = pytest.mark.postgres

API = "/api/v1/principals"


def me(client, credentials: Credentials):
    return client.get("/api/v1/auth/me", headers=credentials.headers)


def token_for(client, credentials: Credentials):
    return client.post("/api/v1/auth/token", json=credentials.login_body())


def audited(app, action: str) -> list[dict]:
    with app.app_context():
        rows = app.extensions["rayfleet.db"].session().scalars(select(AuditLog).where(AuditLog.action == action))
        return [{"actor": (row.actor_type, row.actor_id), **row.details} for row in rows]


def test_a_disabled_bot_client_is_locked_out_until_enabled(app, client, principals):
    admin, bot = principals.admin, principals.bot
    listed = client.get(f"{API}/bot-clients", headers=admin.headers).json["items"]
    assert [(item["name"], item["disabled"]) for item in listed] == [("shopbot", False)]

    disabled = client.post(f"{API}/bot-clients/{bot.principal_id}/disable", headers=admin.headers)
    assert disabled.status_code == 200 and disabled.json["disabled"] is True
    assert me(client, bot).status_code == 401  # its live token, on the very next request
    assert token_for(client, bot).status_code == 401

    assert client.post(f"{API}/bot-clients/{bot.principal_id}/enable", headers=admin.headers).json["disabled"] is False
    assert me(client, login(client, bot)).status_code == 200
    assert [entry["actor"] for entry in audited(app, "principal.disable")] == [("admin", str(admin.principal_id))]
    assert len(audited(app, "principal.enable")) == 1


def test_rotating_a_secret_ends_every_token_issued_with_the_old_one(app, client, principals):
    admin, bot = principals.admin, principals.bot
    old_token = bot.token
    assert me(client, bot).status_code == 200  # the token's claims are verified, and kept (jwt_claims.py)
    rotated = client.post(f"{API}/bot-clients/{bot.principal_id}/rotate-secret", headers=admin.headers)
    assert rotated.status_code == 200 and rotated.json["secret_rotated_at"] is not None
    new_secret = rotated.json["secret"]
    assert new_secret != bot.secret

    assert me(client, bot).status_code == 401  # not disabled: issued before the rotation
    assert token_for(client, bot).status_code == 401  # the old secret
    fresh = login(client, Credentials("bot", bot.identifier, new_secret, bot.principal_id))
    assert fresh.token != old_token and me(client, fresh).status_code == 200
    # The secret is shown once: it is in no audit row.
    assert all(new_secret not in str(entry) for entry in audited(app, "principal.rotate_secret"))


def test_a_disabled_node_can_neither_report_nor_be_provisioned(app, client, principals):
    admin, node = principals.admin, principals.node
    heartbeat = {"cpu": 1.0, "mem": 1.0, "bandwidth_in": 0, "bandwidth_out": 0, "core_active": True}
    assert client.post("/api/v1/nodes/heartbeat", json=heartbeat, headers=node.headers).status_code == 200
    assert client.post(f"{API}/nodes/{node.principal_id}/disable", headers=admin.headers).json["disabled"] is True
    assert client.post("/api/v1/nodes/heartbeat", json=heartbeat, headers=node.headers).status_code == 401
    refused = client.post(f"/api/v1/nodes/{node.principal_id}/provision", headers=admin.headers)
    assert refused.status_code == 409 and refused.json["error"] == "node_disabled"
    enabled = client.post(f"{API}/nodes/{node.principal_id}/enable", headers=admin.headers)
    # Never provisioned (nothing applied yet): it comes back as provisioning, not as a live node.
    assert enabled.json["disabled"] is False
    assert client.get(f"/api/v1/nodes/{node.principal_id}", headers=admin.headers).json["status"] == "provisioning"
    assert (
        client.post("/api/v1/nodes/heartbeat", json=heartbeat, headers=login(client, node).headers).status_code == 200
    )


def test_admins_cannot_lock_the_shop_out(app, client, principals):
    alice = principals.admin
    own = client.post(f"{API}/admins/{alice.principal_id}/disable", headers=alice.headers)
    assert own.status_code == 409 and own.json["error"] == "cannot_disable_self"

    bob = create_admin(app, client, "bob")
    assert client.post(f"{API}/admins/{bob.principal_id}/disable", headers=alice.headers).status_code == 200
    assert me(client, bob).status_code == 401 and token_for(client, bob).status_code == 401
    # Alice is now the only enabled admin: not even the CLI may disable her.
    refused = app.test_cli_runner().invoke(args=["principal", "disable", "admins", "alice"])
    assert refused.exit_code != 0 and "last enabled admin" in refused.output
    assert me(client, alice).status_code == 200


def test_the_cli_disables_enables_and_rotates_by_name(app, client, principals):
    bot, node = principals.bot, principals.node
    out = cli_output(app, "principal", "rotate-secret", "bot-clients", "shopbot")
    assert out["client_id"] == bot.identifier and out["secret"] != bot.secret
    assert me(client, bot).status_code == 401
    assert (
        me(client, login(client, Credentials("bot", bot.identifier, out["secret"], bot.principal_id))).status_code
        == 200
    )

    runner = app.test_cli_runner()
    assert runner.invoke(args=["principal", "disable", "nodes", "node-a"]).exit_code == 0
    assert me(client, node).status_code == 401
    assert runner.invoke(args=["principal", "enable", "nodes", "node-a"]).exit_code == 0
    missing = runner.invoke(args=["principal", "disable", "bot-clients", "nobody"])
    assert missing.exit_code != 0 and "nobody" in missing.output
    assert [entry["actor"] for entry in audited(app, "principal.disable")] == [("system", None)]


def test_only_admins_manage_principals(client, principals):
    for caller in (principals.bot, principals.node):
        response = client.post(f"{API}/bot-clients/{principals.bot.principal_id}/disable", headers=caller.headers)
        assert response.status_code == 403
    assert client.get(f"{API}/admins").status_code == 401
