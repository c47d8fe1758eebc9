"""The sales lifecycle on real PostgreSQL + Redis: payments, temporary configs, approval in place,
rejection with a ban, trials, the sales sweep (auto-accept, expiry, quotas) and the notification outbox."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from control_api.models import AuditLog, Node, Notification, Payment, User, UserConfig, utcnow
from control_api.services.lifecycle import run_lifecycle

pytestmark = pytest.mark.postgres

PLAN = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": 1500,
}
MIB = 1024 * 1024


def activate_node(app, node_id: int) -> None:
    """NODE_ID active and serving one VLESS inbound at a documentation address."""
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        node = session.get(Node, node_id)
        node.status = "active"
        node.public_ip = "198.51.100.30"
        node.tls_server_name = "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()


@pytest.fixture
def shop(app, client, principals):
    """An active node, a plan, a customer and a Telegram admin; returns a small namespace of ids."""
    activate_node(app, principals.node.principal_id)
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    customer = client.put("/api/v1/users/telegram/7001", json={"username": "buyer"}, headers=principals.bot.headers)
    staff = client.put("/api/v1/users/telegram/7002", json={"username": "shopkeeper"}, headers=admin).json
    assert client.put(f"/api/v1/users/{staff['id']}/admin", json={"is_admin": True}, headers=admin).status_code == 200

    class Shop:
        plan_id = plan["id"]
        user_id = customer.json["id"]
        staff_telegram_id = 7002

    return Shop


def pay(client, principals, shop, evidence="photo-1", **overrides):
    body = {
        "user_id": shop.user_id,
        "plan_id": shop.plan_id,
        "amount_cents": 1500,
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
    }
    return client.post("/api/v1/payments", json={**body, **overrides}, headers=principals.bot.headers)


def db(app):
    return app.extensions["rayfleet.db"].session()


def revision(app, node_id):
    with app.app_context():
        return db(app).get(Node, node_id).desired_revision


def notes(app, kind=None):
    """The customers' notifications (the admins' payment_decided are tested in test_review.py)."""
    with app.app_context():
        query = select(Notification.kind, Notification.payload).where(Notification.audience == "user")
        query = query.order_by(Notification.id)
        if kind:
            query = query.where(Notification.kind == kind)
        return db(app).execute(query).all()


def test_pending_payment_gets_a_temporary_config_and_approval_upgrades_it_in_place(app, client, principals, shop):
    before = revision(app, principals.node.principal_id)
    created = pay(client, principals, shop)
    assert created.status_code == 201, created.json
    payment, temporary = created.json, created.json["config"]
    assert payment["status"] == "pending" and payment["reviewer"] is None
    assert payment["user"]["telegram_id"] == 7001 and payment["plan"]["name"] == PLAN["name"]
    assert (temporary["kind"], temporary["status"], temporary["data_limit_mb"]) == ("temporary", "pending", 1000)
    assert timedelta(days=2, hours=23) < timedelta(seconds=temporary["remaining_seconds"]) <= timedelta(days=3)
    assert len(temporary["links"]) == 1 and temporary["uuid"] in temporary["links"][0]
    assert revision(app, principals.node.principal_id) == before + 1  # the sync that serves it was queued

    pending = client.get("/api/v1/payments?status=pending", headers=principals.admin.headers).json["items"]
    assert [(p["id"], p["evidence_file_id"], p["user"]["username"]) for p in pending] == [
        (payment["id"], "photo-1", "buyer")
    ]

    approved = client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved" and approved.json["reviewer"] == "alice"
    configs = client.get(f"/api/v1/users/{shop.user_id}/configs", headers=principals.bot.headers).json["items"]
    assert len(configs) == 1
    full = configs[0]
    assert (full["id"], full["uuid"], full["links"]) == (temporary["id"], temporary["uuid"], temporary["links"])
    assert (full["kind"], full["data_limit_mb"], full["remaining_bytes"]) == ("full", 10_000, 10_000 * MIB)
    assert timedelta(days=29, hours=23) < timedelta(seconds=full["remaining_seconds"]) <= timedelta(days=30)
    # Upgraded in place: the node serves the same UUID, so nothing to sync.
    assert revision(app, principals.node.principal_id) == before + 1
    assert [kind for kind, _ in notes(app)] == ["approved"]
    with app.app_context():
        stored = db(app).get(Payment, payment["id"])
        assert stored.reviewed_by == principals.admin.principal_id and stored.reviewed_at is not None

    again = client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers)
    assert again.status_code == 409 and again.json["error"] == "already_reviewed"
    assert "already approved by alice" in again.json["message"]
    rejected_late = client.post(f"/api/v1/payments/{payment['id']}/reject", json={}, headers=principals.admin.headers)
    assert rejected_late.status_code == 409


def test_reject_revokes_the_temporary_config_and_can_ban(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    node_id = principals.node.principal_id
    before = revision(app, node_id)
    no_reason = client.post(
        f"/api/v1/payments/{payment['id']}/reject", json={"ban": True}, headers=principals.admin.headers
    )
    assert no_reason.status_code == 422  # a ban needs a reason; nothing changed
    assert client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json["status"] == "pending"

    rejected = client.post(
        f"/api/v1/payments/{payment['id']}/reject",
        json={"reason": "Forged receipt", "ban": True},
        headers=principals.admin.headers,
    )
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    assert rejected.json["review_note"] == "Forged receipt"
    config = client.get(f"/api/v1/configs/{payment['config']['id']}", headers=principals.admin.headers).json
    assert config["status"] == "revoked"
    assert revision(app, node_id) == before + 1  # the next sync removes it from the node
    user = client.get(f"/api/v1/users/{shop.user_id}", headers=principals.bot.headers).json
    assert user["is_banned"] and user["ban_reason"] == "Forged receipt"
    assert notes(app, "rejected") == [
        ("rejected", {"payment_id": payment["id"], "reason": "Forged receipt", "banned": True})
    ]

    refused = pay(client, principals, shop, evidence="photo-2")
    assert refused.status_code == 403 and refused.json["error"] == "user_banned"
    assert "Forged receipt" in refused.json["message"]
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers)
    assert trial.status_code == 403 and "Forged receipt" in trial.json["message"]
    with app.app_context():
        assert db(app).scalar(select(func.count()).select_from(Payment)) == 1


def test_bad_payments_are_refused_and_a_retry_is_the_same_payment(app, client, principals, shop):
    wrong = pay(client, principals, shop, amount_cents=1)
    assert wrong.status_code == 422 and wrong.json["error"] == "amount_mismatch" and "1500" in wrong.json["message"]
    assert pay(client, principals, shop, user_id=999_999).status_code == 404
    assert pay(client, principals, shop, plan_id=999_999).status_code == 404
    assert pay(client, principals, shop, evidence="").status_code == 422

    first = pay(client, principals, shop, evidence="photo-r")
    retry = pay(client, principals, shop, evidence="photo-r")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json["id"] == first.json["id"] and retry.json["config"]["id"] == first.json["config"]["id"]
    other = client.post(
        "/api/v1/plans", json={**PLAN, "name": "Other", "price_cents": 900}, headers=principals.admin.headers
    )
    reused = pay(client, principals, shop, evidence="photo-r", plan_id=other.json["id"], amount_cents=900)
    assert reused.status_code == 409 and reused.json["error"] == "evidence_reused"

    client.patch(f"/api/v1/plans/{other.json['id']}", json={"is_active": False}, headers=principals.admin.headers)
    archived = pay(client, principals, shop, evidence="photo-z", plan_id=other.json["id"], amount_cents=900)
    assert archived.status_code == 409 and archived.json["error"] == "plan_not_for_sale"
    with app.app_context():
        assert db(app).scalar(select(func.count()).select_from(Payment)) == 1
        assert db(app).scalar(select(func.count()).select_from(UserConfig)) == 1


def test_two_admins_approving_at_once_upgrade_exactly_once(app, principals, shop):
    with app.test_client() as client:
        payment = pay(client, principals, shop).json
    barrier = threading.Barrier(8)

    def approve(_):
        with app.test_client() as client:
            barrier.wait()
            return client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers)

    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(approve(i))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [200] + [409] * 7
    with app.app_context():
        session = db(app)
        assert session.scalar(select(func.count()).where(AuditLog.action == "payment.approve")) == 1
        # The customer is told once, and so are the admins (payment_decided).
        assert sorted(session.scalars(select(Notification.kind))) == ["approved", "payment_decided"]


def test_the_bot_reviews_for_a_telegram_admin_only(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    url = f"/api/v1/payments/{payment['id']}/approve"
    missing = client.post(url, json={}, headers=principals.bot.headers)
    assert missing.status_code == 422
    stranger = client.post(url, json={"acting_telegram_id": 7001}, headers=principals.bot.headers)
    assert stranger.status_code == 403 and stranger.json["error"] == "not_an_admin"
    assert client.post(url, json={"acting_telegram_id": 7002}, headers=principals.admin.headers).status_code == 422

    approved = client.post(url, json={"acting_telegram_id": 7002}, headers=principals.bot.headers)
    assert approved.status_code == 200 and approved.json["reviewer"] == "shopkeeper"
    pressed_again = client.post(url, json={"acting_telegram_id": 7002}, headers=principals.bot.headers)
    assert pressed_again.status_code == 409
    assert pressed_again.json["message"] == f"Payment {payment['id']} is already approved by shopkeeper."
    with app.app_context():
        row = db(app).scalar(select(AuditLog).where(AuditLog.action == "payment.approve"))
        assert (row.actor_type, row.actor_id) == ("admin", "tg:7002")


def test_a_trial_works_once(app, client, principals, shop):
    first = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers)
    assert first.status_code == 201, first.json
    assert (first.json["kind"], first.json["data_limit_mb"], first.json["plan_id"]) == ("trial", 200, None)
    assert timedelta(hours=23, minutes=59) < timedelta(seconds=first.json["remaining_seconds"]) <= timedelta(days=1)
    second = client.post(
        f"/api/v1/users/{shop.user_id}/trial", json={"protocol": "vmess"}, headers=principals.bot.headers
    )
    assert second.status_code == 409 and second.json["error"] == "trial_used"
    assert "already had" in second.json["message"]
    with app.app_context():
        assert db(app).scalar(select(func.count()).select_from(UserConfig)) == 1
        assert db(app).get(User, shop.user_id).trial_used_at is not None


def test_a_trial_without_a_node_leaves_the_trial_unused(app, client, principals, shop):
    with app.app_context():
        session = db(app)
        for node in session.scalars(select(Node)):
            node.status = "draining"
        session.commit()
    refused = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers)
    assert refused.status_code == 409 and refused.json["error"] == "no_node_available"
    with app.app_context():
        assert db(app).get(User, shop.user_id).trial_used_at is None


def run_sweep_at(app, when):
    dispatched = []
    with app.app_context():
        summary = run_lifecycle(
            db(app), dispatched.append, now=when, referral_percent=app.extensions["rayfleet.settings"].referral_percent
        )
    return summary, dispatched


def test_the_sweep_auto_accepts_after_three_days(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    summary, _ = run_sweep_at(app, utcnow() + timedelta(days=2, hours=23))
    assert summary["auto_accepted"] == 0
    assert client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json["status"] == "pending"

    later = utcnow() + timedelta(days=3, minutes=1)
    summary, _ = run_sweep_at(app, later)
    assert summary["auto_accepted"] == 1 and summary["expired"] == 0  # accepted before the temporary one expired
    accepted = client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json
    assert accepted["status"] == "approved" and accepted["reviewer"] == "the automatic acceptance"
    config = client.get(f"/api/v1/configs/{payment['config']['id']}", headers=principals.admin.headers).json
    assert (config["kind"], config["status"], config["uuid"]) == ("full", "pending", payment["config"]["uuid"])
    with app.app_context():
        assert db(app).get(UserConfig, config["id"]).expires_at > later + timedelta(days=29)
    assert run_sweep_at(app, later)[0]["auto_accepted"] == 0
    assert [kind for kind, _ in notes(app)] == ["approved"]


def test_the_sweep_expires_configs_and_warns_before(app, client, principals, shop):
    config = client.post(
        f"/api/v1/users/{shop.user_id}/configs", json={"plan_id": shop.plan_id}, headers=principals.admin.headers
    ).json
    node_id = principals.node.principal_id
    expires = utcnow() + timedelta(days=30)
    for _ in range(2):
        run_sweep_at(app, expires - timedelta(hours=5))
    assert [kind for kind, _ in notes(app)] == ["expiring"]

    before = revision(app, node_id)
    summary, dispatched = run_sweep_at(app, expires + timedelta(minutes=1))
    assert summary["expired"] == 1 and dispatched == [node_id]
    assert revision(app, node_id) == before + 1
    assert client.get(f"/api/v1/configs/{config['id']}", headers=principals.admin.headers).json["status"] == "expired"
    assert run_sweep_at(app, expires + timedelta(minutes=2))[0]["expired"] == 0
    assert [kind for kind, _ in notes(app)] == ["expiring", "expired"]


def heartbeat(client, node, *usage: tuple[int, int], report_id: str = "", devices: list | None = None) -> dict:
    """NODE's heartbeat reporting USAGE, (config id, bytes down) pairs, as one traffic report (and DEVICES, the
    heartbeat's devices entries, when given); its answer."""
    body = {
        "cpu": 1.0,
        "mem": 1.0,
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "core_active": True,
        "reports": [
            {
                "report_id": report_id,
                "period_start": (utcnow() - timedelta(minutes=1)).isoformat(),
                "period_end": utcnow().isoformat(),
                "usage": [{"email": f"cfg-{config_id}", "uplink": 0, "downlink": n} for config_id, n in usage],
            }
        ]
        if usage
        else [],
        **({"devices": devices} if devices is not None else {}),
    }
    response = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
    assert response.status_code == 200, response.json
    return response.json


def traffic(client, principals, config_id, report_id, down_bytes):
    heartbeat(client, principals.node, (config_id, down_bytes), report_id=report_id)


def test_usage_reports_exhaust_the_quota_and_the_heartbeat_suspends(app, client, principals, shop):
    """The heartbeat that brings a config to its cap suspends it (tests/integration/test_enforcement.py has
    the details); the sweep finds nothing left to do."""
    payment = pay(client, principals, shop).json  # temporary: 1000 MB
    config_id = payment["config"]["id"]
    node_id = principals.node.principal_id
    traffic(client, principals, config_id, "r1", 700 * MIB)
    run_sweep_at(app, utcnow())
    assert notes(app) == []
    traffic(client, principals, config_id, "r2", 150 * MIB)
    for _ in range(2):
        summary, _ = run_sweep_at(app, utcnow())
        assert summary["quota_suspended"] == 0
    assert [kind for kind, _ in notes(app)] == ["quota_80"]
    listed = client.get(f"/api/v1/users/{shop.user_id}/configs", headers=principals.bot.headers).json["items"][0]
    assert (listed["used_bytes"], listed["remaining_bytes"]) == (850 * MIB, 150 * MIB)

    before = revision(app, node_id)
    traffic(client, principals, config_id, "r3", 150 * MIB)
    assert revision(app, node_id) == before + 1
    summary, dispatched = run_sweep_at(app, utcnow())
    assert summary["quota_suspended"] == 0 and dispatched == []
    config = client.get(f"/api/v1/configs/{config_id}", headers=principals.admin.headers).json
    assert (config["status"], config["remaining_bytes"]) == ("suspended", 0)
    assert [kind for kind, _ in notes(app)] == ["quota_80", "quota_100"]

    # Approval brings the used-up temporary config back with the full plan (same link), onto the node again.
    client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers)
    config = client.get(f"/api/v1/configs/{config_id}", headers=principals.admin.headers).json
    assert (config["status"], config["kind"], config["links"]) == ("pending", "full", payment["config"]["links"])
    assert config["remaining_bytes"] == 10_000 * MIB - 1000 * MIB
    assert revision(app, node_id) == before + 2


def test_the_bot_reads_and_acknowledges_notifications(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    client.post(
        f"/api/v1/payments/{payment['id']}/reject", json={"reason": "Unreadable"}, headers=principals.admin.headers
    )
    listed = client.get("/api/v1/notifications", headers=principals.bot.headers)
    assert listed.status_code == 200
    note, decided = listed.json["items"]  # the customer's, then the admins' (payment_decided)
    assert (note["kind"], note["telegram_id"], note["language"]) == ("rejected", 7001, "en")
    assert note["payload"] == {"payment_id": payment["id"], "reason": "Unreadable", "banned": False}
    assert (decided["kind"], decided["audience"], decided["telegram_id"]) == ("payment_decided", "admins", None)
    assert client.get("/api/v1/notifications", headers=principals.admin.headers).status_code == 403

    ids = [note["id"], decided["id"]]
    ack = client.post("/api/v1/notifications/ack", json={"ids": ids}, headers=principals.bot.headers)
    assert ack.json == {"acknowledged": 2}
    again = client.post("/api/v1/notifications/ack", json={"ids": [note["id"], 999]}, headers=principals.bot.headers)
    assert again.json == {"acknowledged": 0}
    assert client.get("/api/v1/notifications", headers=principals.bot.headers).json["items"] == []
    for bad in ({"ids": []}, {"ids": ["1"]}, {}, {"ids": [0]}):
        assert client.post("/api/v1/notifications/ack", json=bad, headers=principals.bot.headers).status_code == 422
