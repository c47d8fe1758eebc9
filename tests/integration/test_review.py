"""Admin review on real PostgreSQL + Redis (issue 16, item 8): the customer's history for the review card,
rejection reasons as stable codes, the admins told of every decision wherever it was made (payment_decided),
and the audited events of a decision the bot holds for its undo window."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from control_api.models import AuditLog, Node, Notification, Payment, User, UserConfig, utcnow
from control_api.services.lifecycle import run_lifecycle

pytestmark = pytest.mark.postgres

PRICE = 1500
PLAN = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": PRICE,
}
PROOFS = itertools.count(1)
TELEGRAM_IDS = itertools.count(8001)
STAFF_TELEGRAM_ID = 7777


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with room, a plan, and a Telegram admin (STAFF_TELEGRAM_ID, @staff)."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.capacity_score = "active", 10**6
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    plan = client.post("/api/v1/plans", json=PLAN, headers=principals.admin.headers).json
    staff = client.put(
        f"/api/v1/users/telegram/{STAFF_TELEGRAM_ID}", json={"username": "staff"}, headers=principals.bot.headers
    ).json
    client.put(f"/api/v1/users/{staff['id']}/admin", json={"is_admin": True}, headers=principals.admin.headers)
    return plan


def customer(client, principals, username="buyer"):
    created = client.put(
        f"/api/v1/users/telegram/{next(TELEGRAM_IDS)}", json={"username": username}, headers=principals.bot.headers
    )
    assert created.status_code == 201, created.json
    return created.json["id"]


def pay(client, principals, plan, user_id, **overrides):
    proof = next(PROOFS)
    body = {
        "user_id": user_id,
        **({"plan_id": plan["id"]} if "id" in plan else {}),
        "amount_cents": plan["price_cents"],
        "evidence_file_id": f"photo-{proof}",
        "evidence_unique_id": f"unique-{proof}",
        **overrides,
    }
    created = client.post("/api/v1/payments", json=body, headers=principals.bot.headers)
    assert created.status_code == 201, created.json
    return created.json["id"]


def decide(client, principals, payment_id, verb="approve", as_bot=False, **body):
    headers = principals.bot.headers if as_bot else principals.admin.headers
    if as_bot:
        body = {"acting_telegram_id": STAFF_TELEGRAM_ID, **body}
    return client.post(f"/api/v1/payments/{payment_id}/{verb}", json=body, headers=headers)


def decided_notes(app):
    with app.app_context():
        rows = db(app).scalars(select(Notification).where(Notification.kind == "payment_decided")).all()
        return {note.payload["payment_id"]: (note.audience, note.user_id, note.payload) for note in rows}


def audit(app, action):
    with app.app_context():
        return [
            (row.actor_type, row.actor_id, row.details)
            for row in db(app).scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        ]


# --- the customer's history ----------------------------------------------------------------------------------


def test_the_history_counts_payments_money_trial_configs_and_a_ban(app, client, principals, shop):
    user_id = customer(client, principals)
    for headers in (principals.bot.headers, principals.admin.headers):
        fresh = client.get(f"/api/v1/users/{user_id}/history", headers=headers)
        assert fresh.status_code == 200, fresh.json
    assert fresh.json["payments"] == {"approved": 0, "rejected": 0, "pending": 0}
    assert fresh.json["trial_used_at"] is None and fresh.json["approved_cents"] == 0
    assert fresh.json["username"] == "buyer" and fresh.json["is_banned"] is False

    assert client.post(f"/api/v1/users/{user_id}/trial", json={}, headers=principals.bot.headers).status_code == 201
    approved = pay(client, principals, shop, user_id)
    assert decide(client, principals, approved).status_code == 200
    rejected = pay(client, principals, shop, user_id)
    assert decide(client, principals, rejected, "reject", reason_code="wrong_amount").status_code == 200
    pay(client, principals, shop, user_id)

    history = client.get(f"/api/v1/users/{user_id}/history", headers=principals.bot.headers).json
    assert history["payments"] == {"approved": 1, "rejected": 1, "pending": 1}
    assert history["approved_cents"] == PRICE and history["trial_used_at"] is not None
    with app.app_context():
        created = db(app).get(User, user_id).created_at
    assert datetime.fromisoformat(history["created_at"]) == created
    # The trial, and the approved purchase's config (its node has not synced: active once it has; pending now).
    with app.app_context():
        session = db(app)
        for config in session.scalars(select(UserConfig).where(UserConfig.user_id == user_id)):
            if config.status == "pending":
                config.status = "active"
        session.commit()
    history = client.get(f"/api/v1/users/{user_id}/history", headers=principals.bot.headers).json
    assert history["active_configs"] == 3  # the trial, the approved plan, the pending payment's temporary config

    banned = client.post(
        f"/api/v1/users/{user_id}/ban", json={"reason": "chargeback"}, headers=principals.admin.headers
    )
    assert banned.status_code == 200
    history = client.get(f"/api/v1/users/{user_id}/history", headers=principals.admin.headers).json
    assert (history["is_banned"], history["ban_reason"], history["active_configs"]) == (True, "chargeback", 0)
    assert history["payments"] == {"approved": 1, "rejected": 2, "pending": 0}
    assert client.get("/api/v1/users/999999/history", headers=principals.admin.headers).status_code == 404
    assert client.get(f"/api/v1/users/{user_id}/history", headers=principals.node.headers).status_code == 403


# --- rejection reasons as codes --------------------------------------------------------------------------------


def test_a_quick_reason_is_a_stable_code_for_the_customer_and_a_ban_may_use_it(app, client, principals, shop):
    user_id = customer(client, principals)
    first = pay(client, principals, shop, user_id)
    response = decide(client, principals, first, "reject", as_bot=True, reason_code="fake_receipt")
    assert response.status_code == 200, response.json
    assert (response.json["review_reason_code"], response.json["review_note"]) == ("fake_receipt", None)
    with app.app_context():
        note = db(app).scalar(select(Notification).where(Notification.dedupe_key == f"rejected:payment-{first}"))
        assert note.payload["reason_code"] == "fake_receipt" and note.payload["reason"] is None

    # Invalid codes and a ban without any reason are refused, and change nothing.
    second = pay(client, principals, shop, user_id)
    for body, field in (({"reason_code": "ugly"}, "reason_code"), ({"ban": True}, "reason")):
        refused = decide(client, principals, second, "reject", **body)
        assert refused.status_code == 422 and field in refused.json["details"]["json"], refused.json
    # A code alone is enough for a ban (it is the ban's reason); a written reason goes with it.
    banned = decide(client, principals, second, "reject", reason_code="already_used", reason="seen twice", ban=True)
    assert banned.status_code == 200, banned.json
    with app.app_context():
        assert db(app).get(User, user_id).ban_reason == "seen twice"
    other = customer(client, principals, "other")
    third = pay(client, principals, shop, other)
    assert decide(client, principals, third, "reject", reason_code="unreadable", ban=True).status_code == 200
    with app.app_context():
        assert db(app).get(User, other).ban_reason == "unreadable"
        assert db(app).get(Payment, third).review_reason_code == "unreadable"


# --- every decision reaches the admins -------------------------------------------------------------------------


def test_every_decision_queues_payment_decided_for_the_admins_wherever_it_was_made(app, client, principals, shop):
    user_id = customer(client, principals)
    by_admin = pay(client, principals, shop, user_id)
    assert decide(client, principals, by_admin).status_code == 200
    by_bot = pay(client, principals, shop, user_id)
    assert decide(client, principals, by_bot, "reject", as_bot=True, reason_code="unreadable").status_code == 200
    swept = pay(client, principals, shop, user_id)
    with app.app_context():
        session = db(app)
        session.get(Payment, swept).auto_accept_at = utcnow() - timedelta(minutes=1)
        session.commit()
        assert run_lifecycle(session, lambda node_id: None, referral_percent=10)["auto_accepted"] == 1
    topup = pay(client, principals, {"price_cents": 500}, user_id, purpose="topup")
    banned_away = pay(client, principals, shop, customer(client, principals, "cheat"))
    with app.app_context():
        cheat = db(app).get(Payment, banned_away).user_id
    assert decide(client, principals, topup, as_bot=True).status_code == 200
    ban = client.post(f"/api/v1/users/{cheat}/ban", json={"reason": "fraud"}, headers=principals.admin.headers)
    assert ban.status_code == 200

    notes = decided_notes(app)
    assert set(notes) == {by_admin, by_bot, swept, topup, banned_away}
    assert all(audience == "admins" and user is None for audience, user, _ in notes.values())
    payloads = {payment_id: payload for payment_id, (_a, _u, payload) in notes.items()}
    assert payloads[by_admin] | {"reason": None} == {
        "payment_id": by_admin,
        "status": "approved",
        "reviewer": principals.admin.identifier,
        "automatic": False,
        "reason": None,
        "reason_code": None,
        "banned": False,
    }
    assert (payloads[by_bot]["status"], payloads[by_bot]["reviewer"]) == ("rejected", "staff")
    assert payloads[by_bot]["reason_code"] == "unreadable"
    assert (payloads[swept]["status"], payloads[swept]["automatic"], payloads[swept]["reviewer"]) == (
        "approved",
        True,
        None,
    )
    assert (payloads[topup]["status"], payloads[topup]["reviewer"]) == ("approved", "staff")
    assert payloads[banned_away]["status"] == "rejected" and payloads[banned_away]["banned"] is True
    assert payloads[banned_away]["reviewer"] == principals.admin.identifier
    # The bot reads them in its outbox.
    outbox = client.get("/api/v1/notifications", headers=principals.bot.headers).json["items"]
    assert {note["payload"]["payment_id"] for note in outbox if note["kind"] == "payment_decided"} == set(notes)


# --- a held decision and its undo: audited, and nothing else ---------------------------------------------------


def test_a_hold_and_its_undo_are_audited_and_decide_nothing(app, client, principals, shop):
    user_id = customer(client, principals)
    payment_id = pay(client, principals, shop, user_id)
    url = f"/api/v1/payments/{payment_id}/review-events"
    bot = principals.bot.headers
    held = client.post(
        url, json={"event": "held", "decision": "approve", "acting_telegram_id": STAFF_TELEGRAM_ID}, headers=bot
    )
    assert held.status_code == 201, held.json
    assert held.json == {
        "payment_id": payment_id,
        "event": "held",
        "decision": "approve",
        "status": "pending",
        "actor": "staff",
    }
    body = {"event": "undone", "decision": "reject", "reason_code": "fake_receipt", "ban": True}
    undone = client.post(url, json={**body, "acting_telegram_id": STAFF_TELEGRAM_ID}, headers=bot)
    assert undone.status_code == 201 and undone.json["reason_code"] == "fake_receipt", undone.json
    assert client.post(url, json=body, headers=principals.admin.headers).status_code == 201
    with app.app_context():
        payment = db(app).get(Payment, payment_id)
        assert (payment.status, payment.reviewed_at) == ("pending", None)
    assert audit(app, "payment.review_held") == [
        ("admin", f"tg:{STAFF_TELEGRAM_ID}", {"payment_id": payment_id, "decision": "approve"})
    ]
    undos = audit(app, "payment.review_undone")
    assert [actor for _kind, actor, _details in undos] == [
        f"tg:{STAFF_TELEGRAM_ID}",
        str(principals.admin.principal_id),
    ]
    assert undos[0][2] == {"payment_id": payment_id, "decision": "reject", "ban": True, "reason_code": "fake_receipt"}

    # Refusals: who acts, and a hold of what is decided already.
    customer_tg = client.get(f"/api/v1/users/{user_id}", headers=bot).json["telegram_id"]
    not_admin = client.post(
        url, json={"event": "held", "decision": "approve", "acting_telegram_id": customer_tg}, headers=bot
    )
    assert not_admin.status_code == 403 and not_admin.json["error"] == "not_an_admin"
    unnamed = client.post(url, json={"event": "held", "decision": "approve"}, headers=bot)
    assert unnamed.status_code == 422 and unnamed.json["error"] == "acting_admin_required"
    assert (
        client.post(url, json={"event": "held", "decision": "approve"}, headers=principals.node.headers).status_code
        == 403
    )
    assert decide(client, principals, payment_id).status_code == 200
    late = client.post(
        url, json={"event": "held", "decision": "reject", "acting_telegram_id": STAFF_TELEGRAM_ID}, headers=bot
    )
    assert late.status_code == 409 and late.json["error"] == "already_reviewed"
    assert f"already approved by {principals.admin.identifier}" in late.json["message"]
    missing = client.post(
        "/api/v1/payments/999999/review-events",
        json={"event": "held", "decision": "approve"},
        headers=principals.admin.headers,
    )
    assert missing.status_code == 404
    assert len(audit(app, "payment.review_held")) == 1
