"""Wallets on real PostgreSQL + Redis: top-ups through the proof and review flow, purchases from the balance
(one transaction, never an overdraft, even under concurrent purchases), admin adjustments, and who may do what."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_api import migrate
from control_api.actors import Principal
from control_api.database import make_engine
from control_api.errors import Conflict
from control_api.models import AuditLog, Node, Notification, Plan, User, UserConfig, WalletEntry, utcnow
from control_api.services import wallet
from control_api.services.lifecycle import run_lifecycle
from tests.integration.test_bad_input import assert_json_error, database_unchanged

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


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with an inbound, a plan, a customer and a Telegram admin."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    customer = client.put("/api/v1/users/telegram/7001", json={"username": "buyer"}, headers=principals.bot.headers)
    staff = client.put("/api/v1/users/telegram/7002", json={"username": "shopkeeper"}, headers=admin).json
    assert client.put(f"/api/v1/users/{staff['id']}/admin", json={"is_admin": True}, headers=admin).status_code == 200

    class Shop:
        plan_id = plan["id"]
        user_id = customer.json["id"]
        wallet = f"/api/v1/users/{customer.json['id']}/wallet"
        staff_telegram_id = 7002

    return Shop


def topup(client, principals, shop, evidence="receipt-1", **overrides):
    body = {
        "user_id": shop.user_id,
        "purpose": "topup",
        "amount_cents": 5000,
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
    }
    return client.post("/api/v1/payments", json={**body, **overrides}, headers=principals.bot.headers)


def adjust(client, principals, shop, amount, reason="goodwill", who="admin"):
    body = {"amount_cents": amount, "reason": reason}
    return client.post(f"{shop.wallet}/adjust", json=body, headers=principals.of(who).headers)


def buy(client, principals, shop, who="bot", **overrides):
    body = {"plan_id": shop.plan_id, **overrides}
    return client.post(f"{shop.wallet}/purchases", json=body, headers=principals.of(who).headers)


def balance_of(client, principals, shop):
    return client.get(shop.wallet, headers=principals.bot.headers).json["balance_cents"]


def ledger(app, user_id):
    with app.app_context():
        return db(app).scalars(select(WalletEntry).where(WalletEntry.user_id == user_id).order_by(WalletEntry.id)).all()


def count(app, model, *where):
    with app.app_context():
        return db(app).scalar(select(func.count()).select_from(model).where(*where))


# --- top-ups: proof, review, exactly one credit ---------------------------------------------------------


def test_an_approved_top_up_credits_once_and_gives_no_config(app, client, principals, shop):
    created = topup(client, principals, shop)
    assert created.status_code == 201, created.json
    payment = created.json
    assert (payment["purpose"], payment["status"], payment["amount_cents"]) == ("topup", "pending", 5000)
    assert payment["plan_id"] is None and payment["plan"] is None and payment["config"] is None
    assert payment["auto_accept_at"] is None and payment["config_id"] is None
    assert topup(client, principals, shop).json["id"] == payment["id"]  # a retried proof is the same payment
    assert balance_of(client, principals, shop) == 0
    queue = client.get("/api/v1/payments?status=pending&purpose=topup", headers=principals.admin.headers).json
    assert [p["id"] for p in queue["items"]] == [payment["id"]]

    url = f"/api/v1/payments/{payment['id']}/approve"
    approved = client.post(url, json={"acting_telegram_id": shop.staff_telegram_id}, headers=principals.bot.headers)
    assert approved.status_code == 200 and approved.json["status"] == "approved", approved.json
    again = client.post(url, json={}, headers=principals.admin.headers)
    assert again.status_code == 409 and again.json["error"] == "already_reviewed"

    (entry,) = ledger(app, shop.user_id)
    assert (entry.amount_cents, entry.reason, entry.payment_id, entry.config_id) == (5000, "topup", payment["id"], None)
    assert (entry.actor_type, entry.actor_id, entry.actor_name) == ("admin", "tg:7002", "shopkeeper")
    view = client.get(shop.wallet, headers=principals.bot.headers).json
    assert view["balance_cents"] == 5000 and [item["id"] for item in view["items"]] == [entry.id]
    assert count(app, UserConfig) == 0
    with app.app_context():
        notes = db(app).execute(select(Notification.kind, Notification.payload).order_by(Notification.id)).all()
    assert notes[0] == ("wallet_credited", {"payment_id": payment["id"], "amount_cents": 5000, "reason": "topup"})
    assert [kind for kind, _ in notes[1:]] == ["payment_decided"]  # the admins' cards show it


def test_reviewers_racing_on_a_top_up_credit_it_once(app, principals, shop):
    with app.test_client() as client:
        payment = topup(client, principals, shop).json
    barrier = threading.Barrier(8)
    results = []

    def approve():
        with app.test_client() as client:
            barrier.wait()
            url = f"/api/v1/payments/{payment['id']}/approve"
            results.append(client.post(url, json={}, headers=principals.admin.headers).status_code)

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [409] * 7
    assert [entry.amount_cents for entry in ledger(app, shop.user_id)] == [5000]


def test_a_rejected_top_up_credits_nothing_and_the_sweep_never_accepts_one(app, client, principals, shop):
    payment = topup(client, principals, shop).json
    with app.app_context():
        summary = run_lifecycle(
            db(app),
            lambda _node_id: None,
            now=utcnow() + timedelta(days=30),
            referral_percent=app.extensions["rayfleet.settings"].referral_percent,
        )
    assert summary["auto_accepted"] == 0
    assert client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json["status"] == "pending"

    rejected = client.post(
        f"/api/v1/payments/{payment['id']}/reject", json={"reason": "Unreadable"}, headers=principals.admin.headers
    )
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    assert ledger(app, shop.user_id) == [] and balance_of(client, principals, shop) == 0
    assert count(app, UserConfig) == 0
    late = client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers)
    assert late.status_code == 409 and ledger(app, shop.user_id) == []


def test_bad_top_ups_are_refused(app, client, principals, shop):
    for overrides in ({"amount_cents": 0}, {"amount_cents": -5}, {"plan_id": shop.plan_id}, {"purpose": "gift"}):
        with database_unchanged(app):
            refused = topup(client, principals, shop, evidence="bad", **overrides)
        assert_json_error(refused, 422)
    # A purchase still needs its plan.
    with database_unchanged(app):
        no_plan = topup(client, principals, shop, evidence="bad", purpose="purchase")
    assert assert_json_error(no_plan, 422)["details"]["json"] == {"plan_id": ["Missing data for required field."]}
    with database_unchanged(app):
        unknown = topup(client, principals, shop, user_id=999_999)
    assert_json_error(unknown, 404)
    first = topup(client, principals, shop, evidence="twice")
    reused = topup(client, principals, shop, evidence="twice", amount_cents=9000)
    assert first.status_code == 201 and reused.status_code == 409 and reused.json["error"] == "evidence_reused"


# --- purchases from the balance -------------------------------------------------------------------------


def test_a_purchase_debits_the_price_and_creates_the_full_config_at_once(app, client, principals, shop):
    assert adjust(client, principals, shop, 4000).status_code == 201
    node_id = principals.node.principal_id
    with app.app_context():
        before = db(app).get(Node, node_id).desired_revision
    bought = buy(client, principals, shop, protocol="vmess")
    assert bought.status_code == 201, bought.json
    config, entry = bought.json["config"], bought.json["entry"]
    assert bought.json["balance_cents"] == 2500 and balance_of(client, principals, shop) == 2500
    assert (config["kind"], config["status"], config["data_limit_mb"], config["protocol"]) == (
        "full",
        "pending",
        10_000,
        "vmess",
    )
    assert (config["node_id"], config["plan_id"], config["user_id"]) == (node_id, shop.plan_id, shop.user_id)
    assert timedelta(days=29, hours=23) < timedelta(seconds=config["remaining_seconds"]) <= timedelta(days=30)
    assert (entry["amount_cents"], entry["reason"], entry["config_id"]) == (-PRICE, "purchase", config["id"])
    assert (entry["actor_type"], entry["actor_name"]) == ("bot", "shopbot")
    with app.app_context():
        assert db(app).get(Node, node_id).desired_revision == before + 1  # the sync that serves it was queued
        row = db(app).scalar(select(AuditLog).where(AuditLog.action == "wallet.purchase"))
        assert row.details["config_id"] == config["id"] and row.details["amount_cents"] == -PRICE
    assert count(app, Notification) == 0 and count(app, UserConfig) == 1

    # Admins may buy for a customer too; the ledger pages newest first.
    assert buy(client, principals, shop, who="admin").status_code == 201
    page = client.get(f"{shop.wallet}?limit=2&offset=0", headers=principals.admin.headers).json
    assert (page["balance_cents"], page["total"], page["limit"]) == (1000, 3, 2)
    assert [item["reason"] for item in page["items"]] == ["purchase", "purchase"]
    rest = client.get(f"{shop.wallet}?limit=2&offset=2", headers=principals.admin.headers).json
    assert [item["reason"] for item in rest["items"]] == ["admin_credit"]

    short = buy(client, principals, shop)
    assert short.status_code == 409 and short.json["error"] == "insufficient_balance"
    assert short.json["details"] == {"balance_cents": 1000, "needed_cents": PRICE}
    assert balance_of(client, principals, shop) == 1000 and count(app, UserConfig) == 2


def test_a_purchase_that_cannot_be_placed_debits_nothing(app, client, principals, shop):
    adjust(client, principals, shop, 2000)
    with app.app_context():
        session = db(app)
        for node in session.scalars(select(Node)):
            node.status = "draining"
        session.commit()
    with database_unchanged(app):
        refused = buy(client, principals, shop)
    assert assert_json_error(refused, 409)["error"] == "no_node_available"
    assert balance_of(client, principals, shop) == 2000


def test_purchases_refused_before_anything_is_written(app, client, principals, shop):
    adjust(client, principals, shop, 10_000)
    archived = client.post("/api/v1/plans", json={**PLAN, "name": "Old"}, headers=principals.admin.headers).json
    client.patch(f"/api/v1/plans/{archived['id']}", json={"is_active": False}, headers=principals.admin.headers)
    cases = [
        ({"plan_id": archived["id"]}, 409, "plan_not_for_sale"),
        ({"plan_id": 999_999}, 404, "not_found"),
        ({"plan_id": 0}, 422, "validation_error"),
        ({"plan_id": -1}, 422, "validation_error"),
        ({"plan_id": "1"}, 422, "validation_error"),
        ({"protocol": "trojan"}, 422, "validation_error"),
        ({"pay_with": "card"}, 422, "validation_error"),
    ]
    for overrides, status, code in cases:
        with database_unchanged(app):
            response = buy(client, principals, shop, **overrides)
        assert assert_json_error(response, status)["error"] == code, (overrides, response.json)
    with database_unchanged(app):
        nobody = client.post(
            "/api/v1/users/999999/wallet/purchases", json={"plan_id": shop.plan_id}, headers=principals.bot.headers
        )
    assert_json_error(nobody, 404)
    assert_json_error(client.get("/api/v1/users/999999/wallet", headers=principals.bot.headers), 404)


def test_a_price_changed_since_the_quote_is_never_debited(app, client, principals, shop):
    """The bot sends the price it showed (expected_amount_cents): a price raised in between debits nothing."""
    adjust(client, principals, shop, 10_000)
    client.patch(f"/api/v1/plans/{shop.plan_id}", json={"price_cents": PRICE + 500}, headers=principals.admin.headers)
    with database_unchanged(app):
        stale = buy(client, principals, shop, expected_amount_cents=PRICE)
    refused = assert_json_error(stale, 422)
    assert refused["error"] == "amount_mismatch" and refused["details"]["price_cents"] == PRICE + 500, refused
    with database_unchanged(app):
        assert assert_json_error(buy(client, principals, shop, expected_amount_cents=-1), 422)["error"] == (
            "validation_error"
        )
    bought = buy(client, principals, shop, expected_amount_cents=PRICE + 500)
    assert bought.status_code == 201, bought.json
    assert bought.json["balance_cents"] == 10_000 - PRICE - 500


def test_a_banned_user_can_neither_top_up_nor_buy(app, client, principals, shop):
    adjust(client, principals, shop, 10_000)
    client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "Chargeback"}, headers=principals.admin.headers)
    with database_unchanged(app):
        bought = buy(client, principals, shop)
        topped = topup(client, principals, shop)
    for response in (bought, topped):
        assert assert_json_error(response, 403)["error"] == "user_banned"
    assert balance_of(client, principals, shop) == 10_000


# --- admin adjustments ----------------------------------------------------------------------------------


def test_adjustments_need_a_reason_are_audited_and_never_overdraw(app, client, principals, shop):
    credited = adjust(client, principals, shop, 3000, reason="Refund for outage")
    assert credited.status_code == 201, credited.json
    assert credited.json["balance_cents"] == 3000
    assert (credited.json["entry"]["reason"], credited.json["entry"]["note"]) == ("admin_credit", "Refund for outage")
    debited = adjust(client, principals, shop, -1000, reason="Manual correction")
    assert debited.status_code == 201 and debited.json["balance_cents"] == 2000
    assert debited.json["entry"]["reason"] == "admin_debit"
    with app.app_context():
        rows = db(app).scalars(select(AuditLog).where(AuditLog.action == "wallet.adjust").order_by(AuditLog.id)).all()
    assert [(row.actor_type, row.details["amount_cents"], row.details["reason"]) for row in rows] == [
        ("admin", 3000, "Refund for outage"),
        ("admin", -1000, "Manual correction"),
    ]

    url = f"{shop.wallet}/adjust"
    bad_bodies = [
        {"amount_cents": 100},  # no reason
        {"amount_cents": 100, "reason": ""},
        {"reason": "no amount"},
        {"amount_cents": 0, "reason": "zero"},
        {"amount_cents": 0.0, "reason": "zero"},
        {"amount_cents": "100", "reason": "text"},
        {"amount_cents": 1.5, "reason": "fraction"},
        {"amount_cents": 10**12 + 1, "reason": "too much"},
        {"amount_cents": 100, "reason": "bell\x07"},
    ]
    for body in bad_bodies:
        with database_unchanged(app):
            response = client.post(url, json=body, headers=principals.admin.headers)
        assert assert_json_error(response, 422)["error"] == "validation_error", body
    with database_unchanged(app):
        overdraw = adjust(client, principals, shop, -2001, reason="Too much")
    assert assert_json_error(overdraw, 409)["error"] == "insufficient_balance"
    with database_unchanged(app):
        nobody = client.post(
            "/api/v1/users/999999/wallet/adjust",
            json={"amount_cents": 5, "reason": "x"},
            headers=principals.admin.headers,
        )
    assert_json_error(nobody, 404)
    assert adjust(client, principals, shop, -2000, reason="To zero").json["balance_cents"] == 0


def test_who_may_touch_a_wallet(app, client, principals, shop):
    adjust(client, principals, shop, 5000)
    with database_unchanged(app):
        by_bot = adjust(client, principals, shop, 100, who="bot")
    assert assert_json_error(by_bot, 403)["error"] == "forbidden"
    for node in ("node", "other_node"):
        headers = principals.of(node).headers
        calls = [
            client.get(shop.wallet, headers=headers),
            client.post(f"{shop.wallet}/adjust", json={"amount_cents": 5, "reason": "x"}, headers=headers),
            client.post(f"{shop.wallet}/purchases", json={"plan_id": shop.plan_id}, headers=headers),
        ]
        for response in calls:
            assert assert_json_error(response, 403)["error"] == "forbidden"
    assert client.get(shop.wallet).status_code == 401
    assert balance_of(client, principals, shop) == 5000


# --- concurrency: purchases racing on one balance -------------------------------------------------------


def race(engine, user_id: int, plan_id: int, buyers: int) -> list[str]:
    """BUYERS threads, each with its own session and connection, call pay_from_balance at the same moment."""
    bot = Principal("bot", 1, "shopbot")
    barrier = threading.Barrier(buyers)
    outcomes: list[str] = []

    def purchase() -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                wallet.pay_from_balance(
                    session,
                    bot,
                    user_id,
                    {"plan_id": plan_id, "protocol": "vless"},
                    lambda _: None,
                    referral_percent=10,
                )
                outcomes.append("paid")
            except Conflict as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=purchase) for _ in range(buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def assert_never_overdrawn(engine, user_id: int, expected_balance: int, paid: int) -> None:
    with Session(engine) as session:
        amounts = session.scalars(
            select(WalletEntry.amount_cents).where(WalletEntry.user_id == user_id).order_by(WalletEntry.id)
        ).all()
        running = 0
        for amount in amounts:
            running += amount
            assert running >= 0, amounts
        assert running == wallet.balance(session, user_id) == expected_balance
        configs = session.scalar(select(func.count()).select_from(UserConfig).where(UserConfig.user_id == user_id))
        assert configs == paid


def test_twenty_concurrent_purchases_from_a_balance_for_three(app, client, principals, shop):
    adjust(client, principals, shop, 3 * PRICE + PRICE // 2)
    engine = make_engine(app.extensions["rayfleet.settings"].database_url)  # 20 connections, one per buyer
    try:
        outcomes = race(engine, shop.user_id, shop.plan_id, 20)
        assert sorted(outcomes) == ["insufficient_balance"] * 17 + ["paid"] * 3
        assert_never_overdrawn(engine, shop.user_id, PRICE // 2, paid=3)
    finally:
        engine.dispose()
    assert balance_of(client, principals, shop) == PRICE // 2


def test_concurrent_purchases_never_overdraw_on_the_embedded_sqlite_either(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wallet.sqlite3'}")
    try:
        migrate.upgrade(engine)
        with Session(engine) as session:
            user = User(telegram_id=1, subscription_token="t")
            plan = Plan(
                name="p", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=100, price_cents=PRICE
            )
            node = Node(name="n", region="eu", location_tag="abroad", status="active", client_id="c", secret_hash="h")
            session.add_all([user, plan, node])
            session.flush()
            wallet.book(session, Principal("system", None, "system"), user.id, 3 * PRICE, "admin_credit", note="seed")
            session.commit()
            user_id, plan_id = user.id, plan.id
        outcomes = race(engine, user_id, plan_id, 20)
        assert sorted(outcomes) == ["insufficient_balance"] * 17 + ["paid"] * 3
        assert_never_overdrawn(engine, user_id, 0, paid=3)
    finally:
        engine.dispose()
