"""Referrals on real PostgreSQL + Redis: invite codes, who may be referred (new customers only, never
themselves, never re-attached), and the referrer's credit at the referred customer's first paid purchase,
exactly once, whichever way it is approved (an admin, the sweep, the balance) and however they race."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_api import create_app, migrate
from control_api.actors import SYSTEM, Principal
from control_api.database import make_engine
from control_api.models import AuditLog, Node, Notification, Plan, Referral, User, WalletEntry, utcnow
from control_api.services import referrals, wallet
from control_api.services.lifecycle import run_lifecycle

pytestmark = pytest.mark.postgres

PRICE = 1500  # 10 % (the default REFERRAL_PERCENT) is 150
PLAN = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": PRICE,
}
PROOFS = itertools.count(1)
TELEGRAM_IDS = itertools.count(9001)


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with an inbound, a plan, and a referrer who asked for their invite link."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        node.capacity_score = 10**6
        session.commit()
    plan = client.post("/api/v1/plans", json=PLAN, headers=principals.admin.headers).json
    referrer = customer(client, principals, username="inviter")
    invite = client.get(f"/api/v1/users/{referrer}/referral", headers=principals.bot.headers)
    assert invite.status_code == 200, invite.json

    class Shop:
        plan_id = plan["id"]
        referrer_id = referrer
        code = invite.json["code"]

    return Shop


def customer(client, principals, username="friend", **body):
    """A Telegram user's first /start (the upsert the bot makes), with BODY (e.g. referral_code)."""
    telegram_id = next(TELEGRAM_IDS)
    created = client.put(
        f"/api/v1/users/telegram/{telegram_id}", json={"username": username, **body}, headers=principals.bot.headers
    )
    assert created.status_code == 201, created.json
    return created.json["id"]


def pay(client, principals, shop, user_id, **overrides):
    proof = next(PROOFS)
    body = {
        "user_id": user_id,
        "plan_id": shop.plan_id,
        "amount_cents": PRICE,
        "evidence_file_id": f"photo-{proof}",
        "evidence_unique_id": f"unique-{proof}",
        **overrides,
    }
    created = client.post("/api/v1/payments", json=body, headers=principals.bot.headers)
    assert created.status_code == 201, created.json
    return created.json["id"]


def decide(client, principals, payment_id, verb="approve", **body):
    return client.post(f"/api/v1/payments/{payment_id}/{verb}", json=body, headers=principals.admin.headers)


def invite(client, principals, user_id):
    response = client.get(f"/api/v1/users/{user_id}/referral", headers=principals.bot.headers)
    assert response.status_code == 200, response.json
    return response.json


def referral_credits(app, user_id):
    with app.app_context():
        return (
            db(app)
            .scalars(
                select(WalletEntry.amount_cents).where(WalletEntry.user_id == user_id, WalletEntry.reason == "referral")
            )
            .all()
        )


def referral_of(app, user_id):
    with app.app_context():
        return db(app).get(Referral, user_id)


def notes(app, kind="referral_credited"):
    with app.app_context():
        return (
            db(app).execute(select(Notification.user_id, Notification.payload).where(Notification.kind == kind)).all()
        )


def balance(client, principals, user_id):
    return client.get(f"/api/v1/users/{user_id}/wallet", headers=principals.bot.headers).json["balance_cents"]


# --- the invite link -------------------------------------------------------------------------------------


def test_each_user_gets_a_random_code_once_and_the_link_parts(app, client, principals, shop):
    first = invite(client, principals, shop.referrer_id)
    assert first == {
        "user_id": shop.referrer_id,
        "code": shop.code,
        "start_parameter": f"ref_{shop.code}",
        "percent": 10,
        "invited_count": 0,
        "credited_count": 0,
        "credited_cents": 0,
        "referred_by_user_id": None,
    }
    assert re.fullmatch(r"[a-km-z2-9]{10}", shop.code)  # 32 symbols, no 0/o/1/l: 50 random bits
    assert invite(client, principals, shop.referrer_id)["code"] == shop.code  # stable
    codes = {invite(client, principals, customer(client, principals))["code"] for _ in range(20)}
    assert len(codes) == 20 and shop.code not in codes
    assert all(str(shop.referrer_id) not in code for code in codes | {shop.code})
    admin_view = client.get(f"/api/v1/users/{shop.referrer_id}/referral", headers=principals.admin.headers)
    assert admin_view.status_code == 200 and admin_view.json["code"] == shop.code
    missing = client.get("/api/v1/users/999999/referral", headers=principals.admin.headers)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    for who in ("node", None):
        headers = principals.of(who).headers if who else {}
        assert client.get(f"/api/v1/users/{shop.referrer_id}/referral", headers=headers).status_code in (401, 403)


def test_concurrent_first_requests_agree_on_one_code(app, principals, shop):
    with app.test_client() as client:
        user_id = customer(client, principals)
    barrier = threading.Barrier(8)
    codes = []

    def ask():
        with app.test_client() as client:
            barrier.wait()
            codes.append(client.get(f"/api/v1/users/{user_id}/referral", headers=principals.bot.headers).json["code"])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(codes) == 8 and len(set(codes)) == 1


# --- who can be referred -----------------------------------------------------------------------------------


def test_a_new_customer_through_the_link_is_referred_and_never_reattached(app, client, principals, shop):
    friend = customer(client, principals, referral_code=shop.code.upper())  # typed in capitals: the same code
    assert invite(client, principals, friend)["referred_by_user_id"] == shop.referrer_id
    assert invite(client, principals, shop.referrer_id)["invited_count"] == 1
    other = customer(client, principals, username="other")
    other_code = invite(client, principals, other)["code"]
    # The same customer's next /start, with another inviter's link: ignored, no error.
    telegram_id = client.get(f"/api/v1/users/{friend}", headers=principals.bot.headers).json["telegram_id"]
    again = client.put(
        f"/api/v1/users/telegram/{telegram_id}", json={"referral_code": other_code}, headers=principals.bot.headers
    )
    assert again.status_code == 200, again.json
    assert referral_of(app, friend).referrer_user_id == shop.referrer_id
    assert invite(client, principals, other)["invited_count"] == 0
    with app.app_context():
        attached = db(app).scalars(select(AuditLog.details).where(AuditLog.action == "referral.attach")).all()
    assert attached == [{"user_id": friend, "referrer_user_id": shop.referrer_id}]


def test_an_existing_customer_is_never_attached_later_and_nobody_refers_themselves(app, client, principals, shop):
    # Known before (a /start without a link), then a friend's link: too late, and their purchase credits nobody.
    early = customer(client, principals, username="early")
    telegram_id = client.get(f"/api/v1/users/{early}", headers=principals.bot.headers).json["telegram_id"]
    late = client.put(
        f"/api/v1/users/telegram/{telegram_id}", json={"referral_code": shop.code}, headers=principals.bot.headers
    )
    assert late.status_code == 200 and late.json["id"] == early
    assert referral_of(app, early) is None
    assert decide(client, principals, pay(client, principals, shop, early)).status_code == 200
    # The referrer with their own link.
    own = client.get(f"/api/v1/users/{shop.referrer_id}", headers=principals.bot.headers).json["telegram_id"]
    mine = client.put(
        f"/api/v1/users/telegram/{own}", json={"referral_code": shop.code}, headers=principals.bot.headers
    )
    assert mine.status_code == 200
    assert referral_of(app, shop.referrer_id) is None
    # Even called for a user being created (the service's own guard, and a CHECK behind it).
    with app.app_context():
        session = db(app)
        user = session.get(User, shop.referrer_id)
        assert referrals.attach(session, SYSTEM, user, shop.code) is False
        session.rollback()
    assert decide(client, principals, pay(client, principals, shop, shop.referrer_id)).status_code == 200
    assert referral_credits(app, shop.referrer_id) == [] and notes(app) == []
    assert invite(client, principals, shop.referrer_id)["invited_count"] == 0


def test_bad_or_unknown_codes_are_ignored_quietly_and_logged_without_the_code(app, client, principals, shop, caplog):
    caplog.set_level(logging.DEBUG, logger="control_api.services.referrals")
    unknown = "zzzzzzzzzz" if shop.code != "zzzzzzzzzz" else "yyyyyyyyyy"
    for code in (unknown, "ref_" + shop.code, "x", "' OR 1=1 --", "ü" * 10, ""):
        user_id = customer(client, principals, referral_code=code)
        assert referral_of(app, user_id) is None
    nobody = customer(client, principals, referral_code=None)
    assert referral_of(app, nobody) is None
    messages = [record.getMessage() for record in caplog.records if record.name.endswith("referrals")]
    assert len(messages) == 6 and all("referral ignored for user" in message for message in messages), messages
    assert not any(shop.code in message or unknown in message for message in messages), messages
    assert all(record.levelno == logging.DEBUG for record in caplog.records if record.name.endswith("referrals"))


# --- the credit ------------------------------------------------------------------------------------------


def test_the_first_approved_purchase_credits_the_referrer_once(app, client, principals, shop):
    friend = customer(client, principals, referral_code=shop.code)
    first = pay(client, principals, shop, friend)
    second = pay(client, principals, shop, friend)
    assert referral_credits(app, shop.referrer_id) == []  # pending: nothing yet

    assert decide(client, principals, first).status_code == 200
    assert referral_credits(app, shop.referrer_id) == [150]
    assert balance(client, principals, shop.referrer_id) == 150
    assert balance(client, principals, friend) == 0
    referral = referral_of(app, friend)
    assert (referral.outcome, referral.payment_id, referral.price_cents, referral.percent, referral.amount_cents) == (
        "credited",
        first,
        PRICE,
        10,
        150,
    )
    assert referral.entry_id is not None and referral.config_id is not None
    assert notes(app) == [(shop.referrer_id, {"amount_cents": 150, "percent": 10, "balance_cents": 150})]
    with app.app_context():
        entry = db(app).get(WalletEntry, referral.entry_id)
        assert (entry.user_id, entry.reason, entry.actor_type, entry.actor_name) == (
            shop.referrer_id,
            "referral",
            "admin",
            "alice",
        )
        credit = db(app).scalar(select(AuditLog.details).where(AuditLog.action == "referral.credit"))
    assert credit == {
        "user_id": friend,
        "referrer_user_id": shop.referrer_id,
        "payment_id": first,
        "config_id": referral.config_id,
        "entry_id": referral.entry_id,
        "amount_cents": 150,
    }

    # A retried approval, the second purchase, a purchase from the balance: nothing more.
    assert decide(client, principals, first).status_code == 409
    assert decide(client, principals, second).status_code == 200
    adjust = {"amount_cents": 10 * PRICE, "reason": "gift"}
    credited = client.post(f"/api/v1/users/{friend}/wallet/adjust", json=adjust, headers=principals.admin.headers)
    assert credited.status_code == 201, credited.json
    bought = client.post(
        f"/api/v1/users/{friend}/wallet/purchases", json={"plan_id": shop.plan_id}, headers=principals.bot.headers
    )
    assert bought.status_code == 201, bought.json
    assert referral_credits(app, shop.referrer_id) == [150]
    assert len(notes(app)) == 1
    assert invite(client, principals, shop.referrer_id) | {"code": None} == {
        "user_id": shop.referrer_id,
        "code": None,
        "start_parameter": f"ref_{shop.code}",
        "percent": 10,
        "invited_count": 1,
        "credited_count": 1,
        "credited_cents": 150,
        "referred_by_user_id": None,
    }


def test_the_sweeps_auto_acceptance_and_a_balance_purchase_credit_too(app, client, principals, shop):
    by_sweep = customer(client, principals, referral_code=shop.code)
    payment = pay(client, principals, shop, by_sweep)
    with app.app_context():
        summary = run_lifecycle(db(app), lambda _node_id: None, now=utcnow() + timedelta(days=4), referral_percent=10)
    assert summary["auto_accepted"] == 1
    assert referral_of(app, by_sweep).payment_id == payment
    # referral_of opens an app context of its own: outside this one, whose session its teardown would close.
    entry_id = referral_of(app, by_sweep).entry_id
    with app.app_context():
        entry = db(app).get(WalletEntry, entry_id)
        assert (entry.actor_type, entry.amount_cents) == ("system", 150)

    from_balance = customer(client, principals, referral_code=shop.code)
    topped = {"amount_cents": PRICE, "reason": "prepaid"}
    credited = client.post(f"/api/v1/users/{from_balance}/wallet/adjust", json=topped, headers=principals.admin.headers)
    assert credited.status_code == 201, credited.json
    bought = client.post(
        f"/api/v1/users/{from_balance}/wallet/purchases", json={"plan_id": shop.plan_id}, headers=principals.bot.headers
    )
    assert bought.status_code == 201, bought.json
    referral = referral_of(app, from_balance)
    assert (referral.outcome, referral.payment_id, referral.config_id) == (
        "credited",
        None,
        bought.json["config"]["id"],
    )
    assert referral_credits(app, shop.referrer_id) == [150, 150]
    assert [payload["balance_cents"] for _user, payload in notes(app)] == [150, 300]


def test_a_rejected_payment_credits_nothing_and_the_next_approved_one_does(app, client, principals, shop):
    friend = customer(client, principals, referral_code=shop.code)
    rejected = pay(client, principals, shop, friend)
    assert decide(client, principals, rejected, "reject", reason="forged").status_code == 200
    assert referral_credits(app, shop.referrer_id) == [] and notes(app) == []
    assert referral_of(app, friend).decided_at is None  # still open: a rejected payment is no purchase
    assert decide(client, principals, pay(client, principals, shop, friend)).status_code == 200
    assert referral_credits(app, shop.referrer_id) == [150]


def test_renewals_top_ups_and_free_plans_are_not_a_first_paid_purchase(app, client, principals, shop):
    friend = customer(client, principals, referral_code=shop.code)
    topup = {
        "user_id": friend,
        "purpose": "topup",
        "amount_cents": 5000,
        "evidence_file_id": "topup-proof",
        "evidence_unique_id": "topup-unique",
    }
    top_up = client.post("/api/v1/payments", json=topup, headers=principals.bot.headers).json["id"]
    assert decide(client, principals, top_up).status_code == 200
    free = client.post(
        "/api/v1/plans", json={**PLAN, "name": "Free", "price_cents": 0}, headers=principals.admin.headers
    )
    bought = client.post(
        f"/api/v1/users/{friend}/wallet/purchases", json={"plan_id": free.json["id"]}, headers=principals.bot.headers
    )
    assert bought.status_code == 201, bought.json
    # A renewal of a config (given by an admin, so it is not their purchase) from the balance.
    given = client.post(
        f"/api/v1/users/{friend}/configs",
        json={"plan_id": shop.plan_id, "node_id": principals.node.principal_id},
        headers=principals.admin.headers,
    )
    assert given.status_code == 201, given.json
    renewal = {"plan_id": shop.plan_id, "extends_config_id": given.json["id"]}
    renewed = client.post(f"/api/v1/users/{friend}/wallet/purchases", json=renewal, headers=principals.bot.headers)
    assert renewed.status_code == 201, renewed.json
    assert referral_credits(app, shop.referrer_id) == []
    assert referral_of(app, friend).decided_at is None
    assert decide(client, principals, pay(client, principals, shop, friend)).status_code == 200
    assert referral_credits(app, shop.referrer_id) == [150]


def test_rounding_down_a_zero_percent_and_a_banned_referrer_credit_nothing_and_close_the_referral(
    app, client, principals, shop, settings
):
    """REFERRAL_PERCENT of the price, rounded down to the smallest unit (15 % of 1999 is 299, not 299.85);
    a credit that rounds to 0, a percent of 0 and a banned referrer credit nothing, and the referral is
    decided all the same (only the first paid purchase counts), audited as skipped."""
    odd = client.post(
        "/api/v1/plans", json={**PLAN, "name": "Odd", "price_cents": 1999}, headers=principals.admin.headers
    )
    cheap = client.post(
        "/api/v1/plans", json={**PLAN, "name": "Cheap", "price_cents": 6}, headers=principals.admin.headers
    )

    def first_purchase(app_, client_, plan, price):
        friend = customer(client_, principals, referral_code=shop.code)
        payment = pay(client_, principals, shop, friend, plan_id=plan.json["id"], amount_cents=price)
        assert decide(client_, principals, payment).status_code == 200
        assert decide(client_, principals, pay(client_, principals, shop, friend)).status_code == 200  # a second
        return referral_of(app_, friend)

    fifteen = create_app(replace(settings, referral_percent=15))
    zero = create_app(replace(settings, referral_percent=0))
    try:
        rounded = first_purchase(fifteen, fifteen.test_client(), odd, 1999)
        assert (rounded.outcome, rounded.amount_cents) == ("credited", 299)
        tiny = first_purchase(fifteen, fifteen.test_client(), cheap, 6)  # 0.9 of a cent
        assert (tiny.outcome, tiny.amount_cents, tiny.entry_id) == ("too_small", 0, None)
        disabled = first_purchase(zero, zero.test_client(), odd, 1999)
        assert (disabled.outcome, disabled.percent, disabled.amount_cents) == ("disabled", 0, 0)
        assert invite(zero.test_client(), principals, shop.referrer_id)["percent"] == 0
    finally:
        fifteen.extensions["rayfleet.db"].engine.dispose()
        zero.extensions["rayfleet.db"].engine.dispose()
    assert referral_credits(app, shop.referrer_id) == [299]

    friend = customer(client, principals, referral_code=shop.code)
    banned = client.post(
        f"/api/v1/users/{shop.referrer_id}/ban", json={"reason": "abuse"}, headers=principals.admin.headers
    )
    assert banned.status_code == 200
    assert decide(client, principals, pay(client, principals, shop, friend)).status_code == 200
    assert referral_of(app, friend).outcome == "referrer_banned"
    assert referral_credits(app, shop.referrer_id) == [299]
    assert len(notes(app)) == 1
    with app.app_context():
        skipped = (
            db(app)
            .scalars(select(AuditLog.details["outcome"].as_string()).where(AuditLog.action == "referral.skip"))
            .all()
        )
    assert sorted(skipped) == ["disabled", "referrer_banned", "too_small"]
    counts = invite(client, principals, shop.referrer_id)
    assert (counts["invited_count"], counts["credited_count"], counts["credited_cents"]) == (4, 1, 299)


# --- concurrency -----------------------------------------------------------------------------------------


def test_approvals_and_balance_purchases_of_one_customer_racing_credit_once(app, principals, shop):
    """Six payments of one referred customer approved at the same moment, by admins and the sweep, beside
    two purchases from their balance: one of them is the first paid purchase, and the referrer is credited
    once."""
    with app.test_client() as client:
        friend = customer(client, principals, referral_code=shop.code)
        payments = [pay(client, principals, shop, friend) for _ in range(6)]
        gift = {"amount_cents": 2 * PRICE, "reason": "gift"}
        credited = client.post(f"/api/v1/users/{friend}/wallet/adjust", json=gift, headers=principals.admin.headers)
        assert credited.status_code == 201, credited.json
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def approve(payment_id):
        with app.test_client() as client:
            barrier.wait()
            statuses.append(decide(client, principals, payment_id).status_code)

    def buy():
        with app.test_client() as client:
            barrier.wait()
            body = {"plan_id": shop.plan_id}
            url = f"/api/v1/users/{friend}/wallet/purchases"
            statuses.append(client.post(url, json=body, headers=principals.bot.headers).status_code)

    threads = [threading.Thread(target=approve, args=(payment_id,)) for payment_id in payments]
    threads += [threading.Thread(target=buy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 6 + [201] * 2
    assert referral_credits(app, shop.referrer_id) == [150]
    assert len(notes(app)) == 1
    with app.app_context():
        session = db(app)
        assert (
            session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "referral.credit")) == 1
        )
    assert balance(app.test_client(), principals, shop.referrer_id) == 150


def test_purchases_racing_on_the_embedded_sqlite_credit_once_too(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'referrals.sqlite3'}")
    bot = Principal("bot", 1, "shopbot")
    try:
        migrate.upgrade(engine)
        with Session(engine, expire_on_commit=False) as session:
            referrer = User(telegram_id=1, subscription_token="t1")
            plan = Plan(
                name="p", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=100, price_cents=PRICE
            )
            node = Node(name="n", region="eu", location_tag="abroad", status="active", client_id="c", secret_hash="h")
            session.add_all([referrer, plan, node])
            session.commit()
            code = referrals.ensure_code(session, referrer)
            friend = User(telegram_id=2, subscription_token="t2")
            session.add(friend)
            session.flush()
            assert referrals.attach(session, bot, friend, code)
            wallet.book(session, SYSTEM, friend.id, 4 * PRICE, "admin_credit", note="seed")
            session.commit()
        barrier = threading.Barrier(4)
        outcomes: list[str] = []

        def purchase() -> None:
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                data = {"plan_id": plan.id, "protocol": "vless"}
                wallet.pay_from_balance(session, bot, friend.id, data, lambda _: None, referral_percent=10)
                outcomes.append("paid")

        threads = [threading.Thread(target=purchase) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == ["paid"] * 4
        with Session(engine) as session:
            rewards = session.scalars(select(WalletEntry.amount_cents).where(WalletEntry.reason == "referral")).all()
            assert rewards == [150] and wallet.balance(session, referrer.id) == 150
            assert session.get(Referral, friend.id).outcome == "credited"
    finally:
        engine.dispose()
