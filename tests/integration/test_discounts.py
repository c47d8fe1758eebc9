"""Discount codes on real PostgreSQL + Redis (issue 16, item 3): the admins' catalogue, the quote, the amount
check of POST /payments, renewals and balance purchases, the uses (per customer, in all, released by a
rejection, kept by an approval), a free order that only an admin approves, the last use raced by ten
customers, and the limit on refused codes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_api import create_app, migrate
from control_api.actors import Principal
from control_api.database import make_engine
from control_api.errors import Conflict
from control_api.models import (
    AuditLog,
    DiscountCode,
    DiscountRedemption,
    Node,
    Payment,
    Plan,
    User,
    WalletEntry,
    utcnow,
)
from control_api.services import payments
from control_api.services.lifecycle import run_lifecycle
from tests.conftest import make_settings
from tests.integration.test_bad_input import assert_json_error, database_unchanged

pytestmark = pytest.mark.postgres

PLAN = {"location_tag": "abroad", "duration_days": 30, "max_devices": 2, "data_limit_mb": 10_000}
CODES = "/api/v1/discount-codes"


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with an inbound, two plans (999 and 1500), three customers and a Telegram admin."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin, bot = principals.admin.headers, principals.bot.headers
    odd = client.post("/api/v1/plans", json={**PLAN, "name": "Odd", "price_cents": 999}, headers=admin).json
    base = client.post("/api/v1/plans", json={**PLAN, "name": "Base", "price_cents": 1500}, headers=admin).json
    customers = [
        client.put(f"/api/v1/users/telegram/{7100 + number}", json={"username": f"c{number}"}, headers=bot).json["id"]
        for number in range(3)
    ]

    class Shop:
        odd_plan, plan = odd["id"], base["id"]
        user, other, third = customers

    return Shop


def new_code(client, principals, code="SAVE20", **fields):
    body = {"code": code, **({} if {"percent_off", "amount_off_cents"} & fields.keys() else {"percent_off": 20})}
    response = client.post(CODES, json={**body, **fields}, headers=principals.admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def quote(client, principals, code, plan_id, user_id, who="bot"):
    body = {"code": code, "plan_id": plan_id, "user_id": user_id}
    return client.post(f"{CODES}/quote", json=body, headers=principals.of(who).headers)


EVIDENCE = iter(range(1, 10**6))


def pay(client, principals, user_id, plan_id, amount, code=None, evidence=None, headers=None):
    evidence = evidence or f"receipt-{next(EVIDENCE)}"
    body = {
        "user_id": user_id,
        "plan_id": plan_id,
        "amount_cents": amount,
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
    }
    if code is not None:
        body["discount_code"] = code
    return client.post("/api/v1/payments", json=body, headers=headers or principals.bot.headers)


def refused(response, code, status=409):
    body = assert_json_error(response, status)
    assert body["error"] == code, body
    return body


def uses(app, code):
    with app.app_context():
        session = db(app)
        code_id = session.scalar(select(DiscountCode.id).where(DiscountCode.code == code))
        return session.scalar(
            select(func.count())
            .select_from(DiscountRedemption)
            .where(DiscountRedemption.code_id == code_id, DiscountRedemption.released_at.is_(None))
        )


# --- the catalogue ------------------------------------------------------------------------------------------


def test_codes_are_created_case_insensitively_listed_changed_and_audited(app, client, principals, shop):
    admin = principals.admin.headers
    created = new_code(client, principals, "Nowruz-1404", percent_off=15, plan_id=shop.plan)
    assert created["code"] == "NOWRUZ-1404" and created["uses"] == 0
    assert (created["percent_off"], created["amount_off_cents"], created["plan_id"]) == (15, None, shop.plan)
    assert (created["max_uses"], created["max_uses_per_user"], created["is_active"]) == (None, 1, True)
    with database_unchanged(app):
        taken = client.post(CODES, json={"code": "nowruz-1404", "percent_off": 5}, headers=admin)
    refused(taken, "discount_code_taken")
    fixed = new_code(client, principals, "FIXED300", amount_off_cents=300, max_uses=10, max_uses_per_user=None)
    assert (fixed["percent_off"], fixed["amount_off_cents"], fixed["max_uses_per_user"]) == (None, 300, None)

    listed = client.get(f"{CODES}?limit=1", headers=admin).json
    assert (listed["total"], [item["code"] for item in listed["items"]]) == (2, ["NOWRUZ-1404"])
    assert [c["code"] for c in client.get(f"{CODES}?plan_id={shop.plan}", headers=admin).json["items"]] == [
        "NOWRUZ-1404"
    ]

    expiry = (utcnow() + timedelta(days=7)).replace(microsecond=0)
    changed = client.patch(
        f"{CODES}/{created['id']}",
        json={"is_active": False, "expires_at": expiry.isoformat(), "plan_id": None, "max_uses": 50},
        headers=admin,
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["is_active"], changed.json["plan_id"], changed.json["max_uses"]) == (False, None, 50)
    assert changed.json["expires_at"].startswith(expiry.strftime("%Y-%m-%dT%H:%M:%S"))
    assert [c["code"] for c in client.get(f"{CODES}?is_active=true", headers=admin).json["items"]] == ["FIXED300"]
    assert client.get(f"{CODES}/{created['id']}", headers=admin).json["is_active"] is False

    assert client.delete(f"{CODES}/{fixed['id']}", headers=admin).status_code == 204
    refused(client.get(f"{CODES}/{fixed['id']}", headers=admin), "not_found", 404)
    with app.app_context():
        actions = db(app).execute(select(AuditLog.action, AuditLog.actor_type).order_by(AuditLog.id)).all()
    assert [a for a in actions if a[0].startswith("discount_code.")] == [
        ("discount_code.create", "admin"),
        ("discount_code.create", "admin"),
        ("discount_code.update", "admin"),
        ("discount_code.delete", "admin"),
    ]


def test_bad_codes_are_refused_before_anything_is_written(app, client, principals, shop):
    admin = principals.admin.headers
    bad = [
        {"code": "ABCD"},  # no discount
        {"code": "ABCD", "percent_off": 10, "amount_off_cents": 100},  # both
        {"code": "ABCD", "percent_off": 0},
        {"code": "ABCD", "percent_off": 101},
        {"code": "ABCD", "percent_off": 10.5},
        {"code": "ABCD", "amount_off_cents": 0},
        {"code": "ABC", "percent_off": 10},  # too short
        {"code": "A" * 33, "percent_off": 10},
        {"code": "TWO WORDS", "percent_off": 10},
        {"code": "ÄBCD", "percent_off": 10},
        {"code": "ABCD\n", "percent_off": 10},
        {"code": "ABCD", "percent_off": 10, "expires_at": "2027-01-01T00:00:00"},  # no offset: ambiguous
        {"code": "ABCD", "percent_off": 10, "max_uses": 0},
        {"code": "ABCD", "percent_off": 10, "max_uses_per_user": 0},
        {"code": "ABCD", "percent_off": 10, "uses": 3},
    ]
    for body in bad:
        with database_unchanged(app):
            response = client.post(CODES, json=body, headers=admin)
        refused(response, "validation_error", 422)
    with database_unchanged(app):
        refused(
            client.post(CODES, json={"code": "ABCD", "percent_off": 10, "plan_id": 99_999}, headers=admin),
            "not_found",
            404,
        )
    code = new_code(client, principals, "KEEPME")
    for patch in ({"code": "OTHER"}, {"percent_off": 50}, {"max_uses": 0}, {"is_active": "no"}):
        with database_unchanged(app):
            refused(client.patch(f"{CODES}/{code['id']}", json=patch, headers=admin), "validation_error", 422)
    # The bot quotes; only admins manage codes.
    for call in (
        client.post(CODES, json={"code": "BOTS", "percent_off": 10}, headers=principals.bot.headers),
        client.get(CODES, headers=principals.bot.headers),
        client.delete(f"{CODES}/{code['id']}", headers=principals.bot.headers),
    ):
        refused(call, "forbidden", 403)


def test_a_used_code_is_deactivated_not_deleted_and_a_plan_with_codes_is_kept(app, client, principals, shop):
    admin = principals.admin.headers
    code = new_code(client, principals, "USEDONCE", plan_id=shop.plan)
    assert pay(client, principals, shop.user, shop.plan, 1200, "usedonce").status_code == 201
    with database_unchanged(app):
        refused(client.delete(f"{CODES}/{code['id']}", headers=admin), "discount_code_in_use")
    with database_unchanged(app):
        refused(client.delete(f"/api/v1/plans/{shop.plan}", headers=admin), "plan_in_use")
    off = client.patch(f"{CODES}/{code['id']}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200 and off.json["uses"] == 1
    refused(quote(client, principals, "USEDONCE", shop.plan, shop.other), "discount_unknown")


# --- what a code takes off -----------------------------------------------------------------------------------


def test_percent_and_fixed_maths_with_the_rounding_stated(client, principals, shop):
    """A percent's amount off is rounded down (the customer pays the rest, rounded up); a fixed amount takes
    at most the price; a code that takes all of it makes the order free, which needs an admin's review."""
    new_code(client, principals, "FIFTEEN", percent_off=15)
    new_code(client, principals, "THIRD", percent_off=33)
    new_code(client, principals, "ALL100", percent_off=100)
    new_code(client, principals, "MINUS300", amount_off_cents=300)
    new_code(client, principals, "HUGE", amount_off_cents=5000)
    expected = {
        "FIFTEEN": (149, 850, False),  # 999 * 15 / 100 = 149.85 -> 149 off
        "third": (329, 670, False),  # 329.67 -> 329 off; any case
        "ALL100": (999, 0, True),
        "MINUS300": (300, 699, False),
        " huge ": (999, 0, True),  # spaces around are ignored; never more than the price
    }
    for code, (off, to_pay, free) in expected.items():
        response = quote(client, principals, code, shop.odd_plan, shop.user)
        assert response.status_code == 200, response.json
        body = response.json
        assert (body["code"], body["price_cents"]) == (code.strip().upper(), 999)
        assert (body["amount_off_cents"], body["amount_cents"], body["needs_review"]) == (off, to_pay, free), code
    assert quote(client, principals, "FIFTEEN", shop.plan, shop.user).json["amount_cents"] == 1275  # 225 off 1500


def test_a_code_for_one_plan_and_an_expired_code_are_refused_clearly(app, client, principals, shop):
    new_code(client, principals, "BASEONLY", plan_id=shop.plan)
    new_code(client, principals, "OLDIE", percent_off=10, expires_at=(utcnow() - timedelta(minutes=1)).isoformat())
    new_code(client, principals, "LATER", percent_off=10, expires_at=(utcnow() + timedelta(days=1)).isoformat())
    assert quote(client, principals, "BASEONLY", shop.plan, shop.user).json["amount_cents"] == 1200
    wrong_plan = refused(quote(client, principals, "BASEONLY", shop.odd_plan, shop.user), "discount_not_for_this_plan")
    assert wrong_plan["message"] == "This discount code is not for this plan."
    expired = refused(quote(client, principals, "OLDIE", shop.plan, shop.user), "discount_expired")
    assert expired["message"] == "This discount code has expired." and set(expired) == {"error", "message"}
    unknown = refused(quote(client, principals, "NOSUCH", shop.plan, shop.user), "discount_unknown")
    assert set(unknown) == {"error", "message"}  # nothing beyond the refusal
    with database_unchanged(app):  # (another customer: refused codes count, DISCOUNT_CODE_FAILURES_PER_USER)
        refused(pay(client, principals, shop.other, shop.odd_plan, 799, "baseonly"), "discount_not_for_this_plan")
        refused(pay(client, principals, shop.other, shop.plan, 1350, "oldie"), "discount_expired")
    assert pay(client, principals, shop.third, shop.plan, 1350, "later").status_code == 201
    # The plan must exist and be on sale; the customer must exist.
    refused(quote(client, principals, "LATER", 99_999, shop.third), "not_found", 404)
    refused(quote(client, principals, "LATER", shop.plan, 99_999), "not_found", 404)
    client.patch(f"/api/v1/plans/{shop.odd_plan}", json={"is_active": False}, headers=principals.admin.headers)
    refused(quote(client, principals, "LATER", shop.odd_plan, shop.third), "plan_not_for_sale")


# --- the amount check and the uses ---------------------------------------------------------------------------


def test_the_amount_check_uses_the_discounted_price(app, client, principals, shop):
    new_code(client, principals, "SAVE20")
    with database_unchanged(app):
        full = pay(client, principals, shop.user, shop.plan, 1500, "save20")  # a code, the full price
        assert refused(full, "amount_mismatch", 422)["details"] == {"json": {"amount_cents": ["Expected 1200."]}}
        bare = pay(client, principals, shop.user, shop.plan, 1200)  # the discounted price, no code
        assert refused(bare, "amount_mismatch", 422)["details"] == {"json": {"amount_cents": ["Expected 1500."]}}
    paid = pay(client, principals, shop.user, shop.plan, 1200, "save20", evidence="twice")
    assert paid.status_code == 201, paid.json
    payment = paid.json
    assert payment["amount_cents"] == 1200 and payment["auto_accept_at"] is not None
    assert payment["discount"] == {"code": "SAVE20", "price_cents": 1500, "amount_off_cents": 300, "released_at": None}
    # A retried proof is the same payment, though its use is taken now; the same proof without the code is not.
    again = pay(client, principals, shop.user, shop.plan, 1200, "Save20", evidence="twice")
    assert again.status_code == 200 and again.json["id"] == payment["id"]
    refused(pay(client, principals, shop.user, shop.plan, 1500, evidence="twice"), "evidence_reused")
    with app.app_context():
        (row,) = db(app).scalars(select(DiscountRedemption)).all()
        audit = db(app).scalar(select(AuditLog).where(AuditLog.action == "payment.create"))
    assert (row.user_id, row.payment_id, row.wallet_entry_id, row.price_cents, row.amount_off_cents) == (
        shop.user,
        payment["id"],
        None,
        1500,
        300,
    )
    assert audit.details["discount_code"] == "SAVE20" and audit.details["amount_off_cents"] == 300
    listed = client.get(f"/api/v1/payments?user_id={shop.user}", headers=principals.admin.headers).json["items"]
    assert listed[0]["discount"]["code"] == "SAVE20"
    # A top-up takes no code.
    topup = {"user_id": shop.user, "purpose": "topup", "amount_cents": 500, "discount_code": "SAVE20"}
    topup |= {"evidence_file_id": "t", "evidence_unique_id": "t"}
    with database_unchanged(app):
        refused(client.post("/api/v1/payments", json=topup, headers=principals.bot.headers), "validation_error", 422)


def test_per_customer_and_total_limits(app, client, principals, shop):
    new_code(client, principals, "TWICE", max_uses_per_user=2)
    new_code(client, principals, "TWOINALL", max_uses=2, max_uses_per_user=None)
    for _ in range(2):
        assert pay(client, principals, shop.user, shop.plan, 1200, "twice").status_code == 201
    mine = refused(quote(client, principals, "TWICE", shop.plan, shop.user), "discount_already_used_by_you")
    assert mine["message"] == "This customer has already used this discount code."
    refused(pay(client, principals, shop.user, shop.plan, 1200, "twice"), "discount_already_used_by_you")
    assert pay(client, principals, shop.other, shop.plan, 1200, "twice").status_code == 201  # another customer

    assert pay(client, principals, shop.user, shop.plan, 1200, "twoinall").status_code == 201
    assert pay(client, principals, shop.user, shop.plan, 1200, "twoinall").status_code == 201
    refused(quote(client, principals, "TWOINALL", shop.plan, shop.other), "discount_used_up")
    refused(pay(client, principals, shop.other, shop.plan, 1200, "twoinall"), "discount_used_up")
    assert [c["uses"] for c in client.get(CODES, headers=principals.admin.headers).json["items"]] == [3, 2]


def test_a_rejection_frees_the_use_and_an_approval_or_the_sweep_keeps_it(app, client, principals, shop):
    new_code(client, principals, "ONCE", max_uses=1)
    admin = principals.admin.headers
    first = pay(client, principals, shop.user, shop.plan, 1200, "once").json
    refused(pay(client, principals, shop.other, shop.plan, 1200, "once"), "discount_used_up")
    rejected = client.post(f"/api/v1/payments/{first['id']}/reject", json={"reason": "Unreadable"}, headers=admin)
    assert rejected.status_code == 200 and rejected.json["discount"]["released_at"] is not None
    assert uses(app, "ONCE") == 0
    # Free again: for the same customer (their own limit counts only uses that stand) or another.
    second = pay(client, principals, shop.other, shop.plan, 1200, "once").json
    approved = client.post(f"/api/v1/payments/{second['id']}/approve", json={}, headers=admin)
    assert approved.status_code == 200 and approved.json["discount"]["released_at"] is None
    refused(pay(client, principals, shop.user, shop.plan, 1200, "once"), "discount_used_up")
    assert uses(app, "ONCE") == 1

    # The sweep's automatic acceptance keeps it too; a ban's rejections release theirs.
    new_code(client, principals, "SWEPT", max_uses=1)
    swept = pay(client, principals, shop.third, shop.plan, 1200, "swept").json
    with app.app_context():
        summary = run_lifecycle(db(app), lambda _node_id: None, now=utcnow() + timedelta(days=4), referral_percent=0)
    assert summary["auto_accepted"] == 1
    assert client.get(f"/api/v1/payments/{swept['id']}", headers=admin).json["status"] == "approved"
    assert uses(app, "SWEPT") == 1
    new_code(client, principals, "BANNED", max_uses=1)
    assert pay(client, principals, shop.third, shop.plan, 1200, "banned").status_code == 201
    client.post(f"/api/v1/users/{shop.third}/ban", json={"reason": "Fake receipts"}, headers=admin)
    assert uses(app, "BANNED") == 0


def test_a_free_order_waits_for_an_admin_and_is_never_bought_from_the_balance(app, client, principals, shop):
    new_code(client, principals, "GIFT", percent_off=100)
    admin = principals.admin.headers
    free = pay(client, principals, shop.user, shop.plan, 0, "gift")
    assert free.status_code == 201, free.json
    assert free.json["auto_accept_at"] is None and free.json["config"]["kind"] == "temporary"
    assert free.json["discount"]["amount_off_cents"] == 1500
    with app.app_context():
        summary = run_lifecycle(db(app), lambda _node_id: None, now=utcnow() + timedelta(days=30), referral_percent=0)
    assert summary["auto_accepted"] == 0
    assert client.get(f"/api/v1/payments/{free.json['id']}", headers=admin).json["status"] == "pending"
    approved = client.post(f"/api/v1/payments/{free.json['id']}/approve", json={}, headers=admin)
    assert approved.status_code == 200 and approved.json["status"] == "approved"

    credit = {"amount_cents": 5000, "reason": "test"}
    client.post(f"/api/v1/users/{shop.other}/wallet/adjust", json=credit, headers=admin)
    with database_unchanged(app):
        response = client.post(
            f"/api/v1/users/{shop.other}/wallet/purchases",
            json={"plan_id": shop.plan, "discount_code": "GIFT"},
            headers=principals.bot.headers,
        )
    refused(response, "free_order_needs_review")


def test_balance_purchases_and_renewals_debit_the_discounted_price(app, client, principals, shop):
    admin, bot = principals.admin.headers, principals.bot.headers
    new_code(client, principals, "SAVE20", max_uses_per_user=None)
    client.post(f"/api/v1/users/{shop.user}/wallet/adjust", json={"amount_cents": 5000, "reason": "t"}, headers=admin)
    wallet = f"/api/v1/users/{shop.user}/wallet/purchases"
    bought = client.post(wallet, json={"plan_id": shop.plan, "discount_code": "save20"}, headers=bot)
    assert bought.status_code == 201, bought.json
    assert (bought.json["entry"]["amount_cents"], bought.json["balance_cents"]) == (-1200, 3800)
    assert bought.json["discount"] == {
        "code": "SAVE20",
        "price_cents": 1500,
        "amount_off_cents": 300,
        "released_at": None,
    }
    config_id = bought.json["config"]["id"]
    renewed = client.post(
        wallet, json={"plan_id": shop.plan, "extends_config_id": config_id, "discount_code": "SAVE20"}, headers=bot
    )
    assert renewed.status_code == 201, renewed.json
    assert (renewed.json["entry"]["reason"], renewed.json["entry"]["amount_cents"]) == ("renewal", -1200)
    with database_unchanged(app):
        refused(
            client.post(wallet, json={"plan_id": shop.plan, "discount_code": "NOPE"}, headers=bot), "discount_unknown"
        )
        extra = {"extends_config_id": config_id, "data_mb": 1024, "discount_code": "SAVE20"}
        refused(client.post(wallet, json=extra, headers=bot), "validation_error", 422)
    with app.app_context():
        rows = (
            db(app)
            .execute(
                select(DiscountRedemption.wallet_entry_id, WalletEntry.amount_cents).join(
                    WalletEntry, WalletEntry.id == DiscountRedemption.wallet_entry_id
                )
            )
            .all()
        )
    assert sorted(amount for _entry, amount in rows) == [-1200, -1200]

    # A renewal with a proof: the discounted amount, the code's use with the payment.
    renew = {
        "user_id": shop.user,
        "plan_id": shop.plan,
        "amount_cents": 1500,
        "discount_code": "SAVE20",
        "evidence_file_id": "renewal",
        "evidence_unique_id": "renewal",
    }
    with database_unchanged(app):
        refused(client.post(f"/api/v1/configs/{config_id}/renew", json=renew, headers=bot), "amount_mismatch", 422)
    proof = client.post(f"/api/v1/configs/{config_id}/renew", json={**renew, "amount_cents": 1200}, headers=bot)
    assert proof.status_code == 201, proof.json
    assert proof.json["purpose"] == "renewal" and proof.json["discount"]["amount_off_cents"] == 300
    assert uses(app, "SAVE20") == 3


# --- the last use, raced --------------------------------------------------------------------------------------


def test_ten_customers_racing_for_the_last_use_get_it_once(app, client, principals, shop):
    """Ten customers send a payment with the code's last use at the same moment, each in a request of its
    own: the code's row lock decides once."""
    new_code(client, principals, "LAST", max_uses=3, max_uses_per_user=None)
    for _ in range(2):
        assert pay(client, principals, shop.user, shop.plan, 1200, "last").status_code == 201
    bot = principals.bot.headers
    racers = [
        client.put(f"/api/v1/users/telegram/{8000 + number}", json={}, headers=bot).json["id"] for number in range(10)
    ]
    barrier = threading.Barrier(len(racers))
    results: list[tuple[int, str]] = []

    def race(user_id: int) -> None:
        with app.test_client() as own:
            barrier.wait()
            response = pay(own, principals, user_id, shop.plan, 1200, "last", evidence=f"race-{user_id}")
            results.append((response.status_code, (response.json or {}).get("error", "created")))

    threads = [threading.Thread(target=race, args=(user_id,)) for user_id in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [(201, "created")] + [(409, "discount_used_up")] * 9, results
    assert uses(app, "LAST") == 3
    with app.app_context():
        assert db(app).scalar(select(func.count()).select_from(Payment)) == 3


def test_the_last_use_is_granted_once_on_the_embedded_sqlite_too(tmp_path):
    """SQLite ignores SELECT ... FOR UPDATE; the code's lock is a write, which serialises there too."""
    url = f"sqlite:///{tmp_path / 'codes.sqlite3'}"
    engine = make_engine(url)
    settings = make_settings(url)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session:
            users = [User(telegram_id=number, subscription_token=f"t{number}") for number in range(1, 11)]
            plan = Plan(name="p", price_cents=1000, **PLAN)
            node = Node(name="n", region="eu", location_tag="abroad", status="active", client_id="c", secret_hash="h")
            session.add_all([*users, plan, node])
            session.flush()
            session.add(DiscountCode(code="LAST", percent_off=50, max_uses=1, max_uses_per_user=None))
            session.commit()
            user_ids, plan_id = [user.id for user in users], plan.id
        barrier = threading.Barrier(len(user_ids))
        outcomes: list[str] = []

        def send(user_id: int) -> None:
            data = {
                "user_id": user_id,
                "plan_id": plan_id,
                "amount_cents": 500,
                "discount_code": "last",
                "evidence_file_id": f"file-{user_id}",
                "evidence_unique_id": f"unique-{user_id}",
                "protocol": "vless",
            }
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                try:
                    payments.create_payment(session, Principal("bot", 1, "shopbot"), settings, data, lambda _: None)
                    outcomes.append("created")
                except Conflict as exc:
                    outcomes.append(exc.code)

        threads = [threading.Thread(target=send, args=(user_id,)) for user_id in user_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["created"] + ["discount_used_up"] * 9, outcomes
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(DiscountRedemption)) == 1
    finally:
        engine.dispose()


# --- guessing -------------------------------------------------------------------------------------------------


def test_refused_codes_are_limited_per_customer_and_per_caller(settings, principals, shop):
    """A leaked bot token cannot try codes cheaply: refusals count per customer and per caller."""
    app = create_app(
        replace(settings, discount_code_failures_per_user=(3, 600), discount_code_failures_per_caller=(5, 600))
    )
    client = app.test_client()
    try:
        new_code(client, principals, "REAL")
        for guess in ("AAAA", "BBBB", "CCCC"):
            refused(quote(client, principals, guess, shop.plan, shop.user), "discount_unknown")
        blocked = quote(client, principals, "REAL", shop.plan, shop.user)  # even a good code, for a while
        body = refused(blocked, "rate_limited", 429)
        assert int(blocked.headers["Retry-After"]) > 0 and "REAL" not in body["message"]
        with database_unchanged(app):
            refused(pay(client, principals, shop.user, shop.plan, 1200, "real"), "rate_limited", 429)
        # Another customer is not blocked by the first one's guesses, until the caller's own limit.
        assert quote(client, principals, "REAL", shop.plan, shop.other).status_code == 200
        for guess in ("DDDD", "EEEE"):
            refused(pay(client, principals, shop.other, shop.plan, 1200, guess), "discount_unknown")
        refused(quote(client, principals, "REAL", shop.plan, shop.third), "rate_limited", 429)
        # Orders without a code are never limited; another caller (an admin) has a limit of its own.
        assert pay(client, principals, shop.third, shop.plan, 1500).status_code == 201
        assert quote(client, principals, "REAL", shop.plan, shop.third, who="admin").status_code == 200
    finally:
        app.extensions["rayfleet.db"].engine.dispose()
