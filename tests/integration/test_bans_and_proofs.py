"""Abuse paths closed (issue 13, items 1 and 2) on real PostgreSQL + Redis: a ban stops every service
of the user at once and for good; a receipt buys one order; a customer has one payment in review at
a time; a payment that finds no free node is recorded anyway and its config placed later.

The same ban with real traffic through a real node: tests/e2e/test_fleet.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from control_api import create_app
from control_api.models import Node, Notification, Payment, UserConfig, utcnow
from control_api.services.revisions import desired_users
from tests.integration.test_payments import PLAN, db, pay, run_sweep_at

pytestmark = pytest.mark.postgres


@pytest.fixture
def shop(app, client, principals):
    """An active node (room for 1000), a plan, a customer and a second one."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip = "active", "198.51.100.30"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    customer = client.put("/api/v1/users/telegram/8001", json={"username": "mallory"}, headers=admin).json
    other = client.put("/api/v1/users/telegram/8002", json={"username": "trent"}, headers=admin).json

    class Shop:
        plan_id = plan["id"]
        user_id = customer["id"]
        other_id = other["id"]
        node_id = principals.node.principal_id

    return Shop


def statuses(app, user_id):
    with app.app_context():
        rows = db(app).execute(
            select(UserConfig.id, UserConfig.kind, UserConfig.status, UserConfig.suspend_reason)
            .where(UserConfig.user_id == user_id)
            .order_by(UserConfig.id)
        )
        return [tuple(row) for row in rows]


def served_emails(app, node_id):
    with app.app_context():
        session = db(app)
        _revision, users = desired_users(session, node_id)
        session.commit()
    return {user["email"] for user in users}


def test_a_ban_takes_every_config_off_the_nodes_and_rejects_every_pending_payment(app, client, principals, shop):
    admin, bot = principals.admin.headers, principals.bot.headers
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=bot).json
    first, second = (pay(client, principals, shop, evidence=name).json for name in ("p1", "p2"))
    paid = pay(client, principals, shop, evidence="p3").json
    assert client.post(f"/api/v1/payments/{paid['id']}/approve", json={}, headers=admin).status_code == 200
    mine = {f"cfg-{c}" for c in (trial["id"], first["config"]["id"], second["config"]["id"], paid["config"]["id"])}
    assert mine <= served_emails(app, shop.node_id)
    before = client.get(f"/api/v1/nodes/{shop.node_id}", headers=admin).json["desired_revision"]

    banned = client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "chargebacks"}, headers=admin)
    assert banned.status_code == 200, banned.json

    assert served_emails(app, shop.node_id).isdisjoint(mine)
    assert client.get(f"/api/v1/nodes/{shop.node_id}", headers=admin).json["desired_revision"] == before + 1
    assert statuses(app, shop.user_id) == [
        (trial["id"], "trial", "suspended", "ban"),
        (first["config"]["id"], "temporary", "revoked", None),
        (second["config"]["id"], "temporary", "revoked", None),
        (paid["config"]["id"], "full", "suspended", "ban"),
    ]
    for payment in (first, second):
        view = client.get(f"/api/v1/payments/{payment['id']}", headers=admin).json
        assert (view["status"], view["review_note"]) == ("rejected", "user banned: chargebacks")

    # Four days later the sweep has nothing of theirs to accept, and nothing comes back.
    summary, _ = run_sweep_at(app, utcnow() + timedelta(days=4))
    assert summary["auto_accepted"] == 0
    with app.app_context():
        assert db(app).scalar(select(Payment.id).where(Payment.status == "approved", Payment.id != paid["id"])) is None
    assert served_emails(app, shop.node_id).isdisjoint(mine)
    # Nor can an admin resume one of their configs while the ban holds, nor can they buy.
    resumed = client.post(f"/api/v1/configs/{paid['config']['id']}/resume", headers=admin)
    assert resumed.status_code == 409 and resumed.json["error"] == "user_banned"
    refused = pay(client, principals, shop, evidence="p4")
    assert refused.status_code == 403 and refused.json["error"] == "user_banned"


def test_rejecting_with_a_ban_takes_the_rest_of_their_service_too(app, client, principals, shop):
    admin, bot = principals.admin.headers, principals.bot.headers
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=bot).json
    payment = pay(client, principals, shop, evidence="fake-receipt").json
    rejected = client.post(
        f"/api/v1/payments/{payment['id']}/reject", json={"reason": "fake receipt", "ban": True}, headers=admin
    )
    assert rejected.status_code == 200
    assert statuses(app, shop.user_id) == [
        (trial["id"], "trial", "suspended", "ban"),
        (payment["config"]["id"], "temporary", "revoked", None),
    ]
    assert f"cfg-{trial['id']}" not in served_emails(app, shop.node_id)


def test_a_banned_users_config_is_never_served_whatever_its_status(app, client, principals, shop):
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers).json
    client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "abuse"}, headers=principals.admin.headers)
    with app.app_context():  # a racing writer (or a hand edit) puts it back to pending
        session = db(app)
        session.get(UserConfig, trial["id"]).status = "pending"
        session.commit()
    assert f"cfg-{trial['id']}" not in served_emails(app, shop.node_id)


def test_unbanning_brings_back_only_the_configs_the_admin_names(app, client, principals, shop):
    admin, bot = principals.admin.headers, principals.bot.headers
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=bot).json
    paid = pay(client, principals, shop, evidence="ok").json
    client.post(f"/api/v1/payments/{paid['id']}/approve", json={}, headers=admin)
    pending = pay(client, principals, shop, evidence="later").json
    client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "mistake"}, headers=admin)

    # A revoked temporary config, another user's config or an unknown id cannot be "resumed".
    other_trial = client.post(f"/api/v1/users/{shop.other_id}/trial", json={}, headers=bot).json
    for wrong in (pending["config"]["id"], other_trial["id"], 999_999):
        refused = client.post(f"/api/v1/users/{shop.user_id}/unban", json={"resume_config_ids": [wrong]}, headers=admin)
        assert refused.status_code == 422 and refused.json["error"] == "not_resumable", refused.json
    assert client.get(f"/api/v1/users/{shop.user_id}", headers=admin).json["is_banned"] is True

    unbanned = client.post(
        f"/api/v1/users/{shop.user_id}/unban", json={"resume_config_ids": [paid["config"]["id"]]}, headers=admin
    )
    assert unbanned.status_code == 200 and unbanned.json["is_banned"] is False
    assert statuses(app, shop.user_id) == [
        (trial["id"], "trial", "suspended", "ban"),
        (paid["config"]["id"], "full", "pending", None),
        (pending["config"]["id"], "temporary", "revoked", None),
    ]
    assert client.get(f"/api/v1/payments/{pending['id']}", headers=admin).json["status"] == "rejected"
    assert f"cfg-{paid['config']['id']}" in served_emails(app, shop.node_id)
    # The trial the ban took can still be brought back by hand, like any suspended config.
    assert client.post(f"/api/v1/configs/{trial['id']}/resume", headers=admin).json["status"] == "pending"


def test_one_payment_in_review_per_customer(settings, principals, shop):
    app = create_app(replace(settings, max_pending_payments_per_user=1))
    client = app.test_client()
    first = pay(client, principals, shop, evidence="a")
    assert first.status_code == 201
    second = pay(client, principals, shop, evidence="b")
    assert second.status_code == 409 and second.json["error"] == "too_many_pending_payments"
    assert second.json["details"] == {"pending_payment_ids": [first.json["id"]]}
    # The same proof again is a retry, not a second payment.
    assert pay(client, principals, shop, evidence="a").status_code == 200
    client.post(f"/api/v1/payments/{first.json['id']}/approve", json={}, headers=principals.admin.headers)
    assert pay(client, principals, shop, evidence="b").status_code == 201
    app.extensions["rayfleet.db"].engine.dispose()


def test_one_receipt_pays_for_one_order_whoever_sends_it(app, client, principals, shop):
    body = {"evidence_file_id": "file-id-seen-by-mallory", "evidence_unique_id": "AgADbQ4AAu1"}
    assert pay(client, principals, shop, **body).status_code == 201
    # Another customer forwards the same photo: a new file id, the same file_unique_id.
    stolen = pay(
        client, principals, shop, user_id=shop.other_id, evidence_file_id="file-id-seen-by-trent", **{
            "evidence_unique_id": "AgADbQ4AAu1"
        }
    )  # fmt: skip
    assert stolen.status_code == 409 and stolen.json["error"] == "evidence_used_elsewhere"
    assert "another customer" in stolen.json["message"]
    with app.app_context():
        assert db(app).scalar(select(Payment.id).where(Payment.user_id == shop.other_id)) is None


def test_temporary_configs_take_node_room_and_a_payment_without_room_waits_for_a_node(app, client, principals, shop):
    admin = principals.admin.headers
    with app.app_context():
        session = db(app)
        session.get(Node, shop.node_id).capacity_score = 1
        session.commit()
    assert client.get(f"/api/v1/plans/{shop.plan_id}", headers=admin).json["available"] is True
    first = pay(client, principals, shop, evidence="one").json
    assert first["config"]["node_id"] == shop.node_id
    # The temporary config filled the node: the catalogue says so, and the next sale is not placed.
    assert client.get(f"/api/v1/plans/{shop.plan_id}", headers=admin).json["available"] is False
    waiting = pay(client, principals, shop, user_id=shop.other_id, evidence="two")
    assert waiting.status_code == 201, waiting.json
    assert (waiting.json["status"], waiting.json["config"]["node_id"], waiting.json["config"]["links"]) == (
        "pending",
        None,
        [],
    )

    summary, _ = run_sweep_at(app, utcnow())
    assert summary["placed"] == 0  # still no room
    with app.app_context():
        session = db(app)
        session.get(Node, shop.node_id).capacity_score = 2
        session.commit()
    summary, dispatched = run_sweep_at(app, utcnow())
    assert summary["placed"] == 1 and dispatched == [shop.node_id]
    placed = client.get(f"/api/v1/configs/{waiting.json['config']['id']}", headers=admin).json
    assert placed["node_id"] == shop.node_id and placed["links"]
    with app.app_context():
        note = db(app).scalar(select(Notification).where(Notification.kind == "config_ready"))
        assert note.user_id == shop.other_id and note.payload["links"] == placed["links"]
    assert f"cfg-{placed['id']}" in served_emails(app, shop.node_id)
