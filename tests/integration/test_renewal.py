"""Renewals and extra data on real PostgreSQL + Redis (issue 16, item 1): the same config (id, UUID, links)
gets another period or more data, through the proof flow (temporary extension, approval, rejection, the
sweep's auto-acceptance) or from the balance, and every refusal changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from control_api import create_app
from control_api.models import AuditLog, Node, Notification, Payment, UserConfig, WalletEntry, utcnow
from control_api.services.lifecycle import run_lifecycle
from control_api.services.revisions import desired_users
from tests.integration.test_bad_input import assert_json_error, database_unchanged

pytestmark = pytest.mark.postgres

MIB = 1024 * 1024
BASE = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": 1500,
}
CARRY = {**BASE, "name": "Abroad 60 days, carry", "duration_days": 60, "data_limit_mb": 20_000, "price_cents": 2500}


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with an inbound, plans (reset, carry, another location), a customer, a second customer
    and a Telegram admin."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin = principals.admin.headers
    base = client.post("/api/v1/plans", json=BASE, headers=admin).json
    carry = client.post("/api/v1/plans", json={**CARRY, "renewal_data_rule": "carry"}, headers=admin).json
    local = client.post("/api/v1/plans", json={**BASE, "name": "Local", "location_tag": "local"}, headers=admin).json
    assert (base["renewal_data_rule"], carry["renewal_data_rule"]) == ("reset", "carry")
    customer = client.put("/api/v1/users/telegram/7001", json={"username": "buyer"}, headers=principals.bot.headers)
    other = client.put("/api/v1/users/telegram/7003", json={"username": "other"}, headers=principals.bot.headers)
    staff = client.put("/api/v1/users/telegram/7002", json={"username": "shopkeeper"}, headers=admin).json
    assert client.put(f"/api/v1/users/{staff['id']}/admin", json={"is_admin": True}, headers=admin).status_code == 200

    class Shop:
        plan_id, carry_plan_id, local_plan_id = base["id"], carry["id"], local["id"]
        user_id, other_user_id = customer.json["id"], other.json["id"]
        node_id = principals.node.principal_id
        staff_telegram_id = 7002

    return Shop


def paid_config(client, principals, shop, user_id=None):
    """A full config of the base plan, as an approved purchase leaves it."""
    response = client.post(
        f"/api/v1/users/{user_id or shop.user_id}/configs",
        json={"plan_id": shop.plan_id},
        headers=principals.admin.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def stored(app, config_id):
    with app.app_context():
        session = db(app)
        config = session.get(UserConfig, config_id)
        session.expunge(config)
        return config


def set_config(app, config_id, **values):
    with app.app_context():
        session = db(app)
        config = session.get(UserConfig, config_id)
        for name, value in values.items():
            setattr(config, name, value)
        session.commit()


def revision(app, node_id):
    with app.app_context():
        return db(app).get(Node, node_id).desired_revision


def served(app, node_id):
    with app.app_context():
        session = db(app)
        _revision, users = desired_users(session, node_id)
        session.commit()
    return {user["email"] for user in users}


def notes(app, kind):
    with app.app_context():
        return db(app).scalars(select(Notification.payload).where(Notification.kind == kind)).all()


def quote(client, principals, shop, config_id, plan_id, user_id=None, who="bot"):
    query = f"user_id={user_id or shop.user_id}&plan_id={plan_id}"
    return client.get(f"/api/v1/configs/{config_id}/renewal?{query}", headers=principals.of(who).headers)


def renew(client, principals, shop, config_id, plan_id=None, evidence="renew-1", **overrides):
    plan_id = plan_id or shop.plan_id
    body = {
        "user_id": shop.user_id,
        "plan_id": plan_id,
        "amount_cents": {shop.carry_plan_id: 2500}.get(plan_id, 1500),
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
        **overrides,
    }
    return client.post(f"/api/v1/configs/{config_id}/renew", json=body, headers=principals.bot.headers)


def extra_data(client, principals, shop, config_id, data_mb=2048, evidence="extra-1", **overrides):
    body = {
        "user_id": shop.user_id,
        "data_mb": data_mb,
        "amount_cents": -(-data_mb * 100 // 1024),
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
        **overrides,
    }
    return client.post(f"/api/v1/configs/{config_id}/extra-data", json=body, headers=principals.bot.headers)


def decide(client, principals, payment_id, verb="approve", **body):
    return client.post(f"/api/v1/payments/{payment_id}/{verb}", json=body, headers=principals.admin.headers)


def sweep(app, when):
    with app.app_context():
        return run_lifecycle(
            db(app),
            lambda _node_id: None,
            now=when,
            referral_percent=app.extensions["rayfleet.settings"].referral_percent,
        )


def expire(app, config_id):
    """The config's period ends and the sweep takes it off its node."""
    set_config(app, config_id, expires_at=utcnow() - timedelta(hours=1))
    sweep(app, utcnow())
    assert stored(app, config_id).status == "expired"


# --- renewing before expiry -----------------------------------------------------------------------------


def test_a_renewal_before_expiry_adds_time_from_the_expiry_and_resets_the_data(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=3000 * MIB)
    before = stored(app, config["id"])
    node_revision = revision(app, shop.node_id)

    quoted = quote(client, principals, shop, config["id"], shop.plan_id)
    assert quoted.status_code == 200, quoted.json
    assert (quoted.json["same_plan"], quoted.json["upgrade"], quoted.json["price_cents"]) == (True, False, 1500)
    assert (quoted.json["data_rule"], quoted.json["carried_mb"], quoted.json["new_data_limit_mb"]) == (
        "reset",
        0,
        10_000,
    )
    assert quoted.json["while_in_review"] is None  # served for 30 days more: nothing to bridge
    assert quoted.json["new_expires_at"] == (before.expires_at + timedelta(days=30)).isoformat()

    created = renew(client, principals, shop, config["id"])
    assert created.status_code == 201, created.json
    payment = created.json
    assert (payment["purpose"], payment["status"], payment["extends_config_id"]) == ("renewal", "pending", config["id"])
    assert (payment["plan_id"], payment["config_id"], payment["extra_data_mb"]) == (shop.plan_id, None, None)
    assert payment["auto_accept_at"] is not None
    assert (payment["config"]["id"], payment["config"]["uuid"]) == (config["id"], config["uuid"])
    assert stored(app, config["id"]).expires_at == before.expires_at  # nothing changes while in review
    retry = renew(client, principals, shop, config["id"])
    assert retry.status_code == 200 and retry.json["id"] == payment["id"]

    approved = decide(client, principals, payment["id"])
    assert approved.status_code == 200 and approved.json["status"] == "approved", approved.json
    after = stored(app, config["id"])
    assert (after.id, after.uuid, after.kind, after.plan_id) == (config["id"], config["uuid"], "full", shop.plan_id)
    assert after.expires_at == before.expires_at + timedelta(days=30)
    assert (after.data_limit_mb, after.used_bytes) == (10_000, 0)
    view = client.get(f"/api/v1/configs/{config['id']}", headers=principals.admin.headers).json
    assert view["links"] == config["links"] and view["remaining_bytes"] == 10_000 * MIB
    assert revision(app, shop.node_id) == node_revision  # the node serves the same UUID: nothing to sync
    (note,) = notes(app, "renewed")
    assert note == {
        "payment_id": payment["id"],
        "config_id": config["id"],
        "plan": BASE["name"],
        "carried_mb": 0,
        "data_limit_mb": 10_000,
        "expires_at": after.expires_at.isoformat(),
    }


def test_an_upgrade_under_carry_adds_the_unused_data(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=4000 * MIB + 5)
    before = stored(app, config["id"])
    quoted = quote(client, principals, shop, config["id"], shop.carry_plan_id).json
    assert (quoted["same_plan"], quoted["upgrade"], quoted["data_rule"]) == (False, True, "carry")
    assert (quoted["carried_mb"], quoted["new_data_limit_mb"]) == (5999, 25_999)  # whole MB left unused
    assert quoted["plan"] == {
        "id": shop.carry_plan_id,
        "name": CARRY["name"],
        "name_fa": None,
        "price_cents": 2500,
        "duration_days": 60,
        "data_limit_mb": 20_000,
        "renewal_data_rule": "carry",
    }

    payment = renew(client, principals, shop, config["id"], shop.carry_plan_id).json
    bot_approval = client.post(
        f"/api/v1/payments/{payment['id']}/approve",
        json={"acting_telegram_id": shop.staff_telegram_id},
        headers=principals.bot.headers,
    )
    assert bot_approval.status_code == 200 and bot_approval.json["reviewer"] == "shopkeeper"
    after = stored(app, config["id"])
    assert (after.uuid, after.plan_id, after.data_limit_mb, after.used_bytes) == (
        config["uuid"],
        shop.carry_plan_id,
        25_999,
        0,
    )
    assert after.expires_at == before.expires_at + timedelta(days=60)


# --- renewing after expiry: the temporary extension -----------------------------------------------------


def test_an_expired_config_is_served_again_at_once_and_approval_extends_it(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=2500 * MIB)
    expire(app, config["id"])
    assert f"cfg-{config['id']}" not in served(app, shop.node_id)
    previous = stored(app, config["id"])
    quoted = quote(client, principals, shop, config["id"], shop.carry_plan_id).json
    assert quoted["carried_mb"] == 0  # an expired period carries nothing
    assert quoted["while_in_review"]["data_limit_mb"] == 2500 + 2000  # 10 % of the new plan's 20,000 MB
    node_revision = revision(app, shop.node_id)

    payment = renew(client, principals, shop, config["id"]).json
    temporary = stored(app, config["id"])
    assert (temporary.status, temporary.uuid, temporary.data_limit_mb) == ("pending", config["uuid"], 2500 + 1000)
    assert timedelta(days=2, hours=23) < temporary.expires_at - utcnow() <= timedelta(days=3)
    assert payment["config"]["status"] == "pending" and payment["config"]["links"] == config["links"]
    assert revision(app, shop.node_id) == node_revision + 1 and f"cfg-{config['id']}" in served(app, shop.node_id)

    decided_at = utcnow()
    decide(client, principals, payment["id"])
    after = stored(app, config["id"])
    assert (after.status, after.kind, after.data_limit_mb, after.used_bytes) == ("pending", "full", 10_000, 0)
    assert decided_at + timedelta(days=30) <= after.expires_at <= utcnow() + timedelta(days=30)
    assert after.expires_at > previous.expires_at + timedelta(days=30)  # counted from now, not the old expiry
    assert revision(app, shop.node_id) == node_revision + 1  # already back on its node


def test_rejecting_a_renewal_undoes_only_the_temporary_part(app, client, principals, shop):
    expired = paid_config(client, principals, shop)
    expire(app, expired["id"])
    live = paid_config(client, principals, shop)
    previous = {config_id: stored(app, config_id) for config_id in (expired["id"], live["id"])}
    node_revision = revision(app, shop.node_id)
    first = renew(client, principals, shop, expired["id"]).json
    second = renew(client, principals, shop, live["id"], evidence="renew-2").json
    assert revision(app, shop.node_id) == node_revision + 1  # only the expired one came back

    for payment in (first, second):
        rejected = decide(client, principals, payment["id"], "reject", reason="Unreadable")
        assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    for config_id, before in previous.items():
        after = stored(app, config_id)
        assert (after.status, after.expires_at, after.data_limit_mb, after.uuid, after.kind) == (
            before.status,
            before.expires_at,
            before.data_limit_mb,
            before.uuid,
            "full",
        )
    assert stored(app, expired["id"]).status == "expired" and stored(app, live["id"]).status == "pending"
    assert revision(app, shop.node_id) == node_revision + 2  # the expired one left its node again
    assert served(app, shop.node_id) == {f"cfg-{live['id']}"}
    assert len(notes(app, "rejected")) == 2 and notes(app, "renewed") == []


def test_a_ban_undoes_the_temporary_extension_and_keeps_the_config(app, client, principals, shop):
    expired = paid_config(client, principals, shop)
    expire(app, expired["id"])
    previous = stored(app, expired["id"])
    payment = renew(client, principals, shop, expired["id"]).json
    banned = client.post(
        f"/api/v1/users/{shop.user_id}/ban", json={"reason": "Chargeback"}, headers=principals.admin.headers
    )
    assert banned.status_code == 200
    assert (
        client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json["status"] == "rejected"
    )
    after = stored(app, expired["id"])
    assert (after.status, after.expires_at, after.data_limit_mb) == ("expired", previous.expires_at, 10_000)
    assert served(app, shop.node_id) == set()


def test_the_sweep_auto_accepts_a_renewal_the_same_way(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    expire(app, config["id"])
    payment = renew(client, principals, shop, config["id"]).json
    assert sweep(app, utcnow() + timedelta(days=2, hours=23))["auto_accepted"] == 0
    later = utcnow() + timedelta(days=3, minutes=1)
    summary = sweep(app, later)
    assert (summary["auto_accepted"], summary["expired"]) == (1, 0)  # accepted before the bridge ran out
    accepted = client.get(f"/api/v1/payments/{payment['id']}", headers=principals.admin.headers).json
    assert (accepted["status"], accepted["reviewer"]) == ("approved", "the automatic acceptance")
    after = stored(app, config["id"])
    assert (after.status, after.uuid, after.data_limit_mb) == ("pending", config["uuid"], 10_000)
    assert after.expires_at == later + timedelta(days=30)
    assert len(notes(app, "renewed")) == 1 and sweep(app, later)["auto_accepted"] == 0


# --- refusals -------------------------------------------------------------------------------------------


def test_renewals_that_are_refused_change_nothing(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    theirs = paid_config(client, principals, shop, user_id=shop.other_user_id)
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers).json
    revoked = paid_config(client, principals, shop)
    set_config(app, revoked["id"], status="revoked")
    suspended = paid_config(client, principals, shop)
    client.post(f"/api/v1/configs/{suspended['id']}/suspend", headers=principals.admin.headers)
    purchase = client.post(
        "/api/v1/payments",
        json={
            "user_id": shop.user_id,
            "plan_id": shop.plan_id,
            "amount_cents": 1500,
            "evidence_file_id": "purchase",
            "evidence_unique_id": "unique-purchase",
        },
        headers=principals.bot.headers,
    ).json
    archived = client.post("/api/v1/plans", json={**BASE, "name": "Old"}, headers=principals.admin.headers).json
    client.patch(f"/api/v1/plans/{archived['id']}", json={"is_active": False}, headers=principals.admin.headers)
    constant = client.post(
        "/api/v1/plans", json={**BASE, "name": "Fixed IP", "is_constant_ip": True}, headers=principals.admin.headers
    ).json
    cases = [
        (config["id"], shop.local_plan_id, {}, 409, "plan_not_allowed"),
        (config["id"], constant["id"], {}, 409, "plan_not_allowed"),
        (config["id"], archived["id"], {}, 409, "plan_not_for_sale"),
        (config["id"], 999_999, {}, 404, "not_found"),
        (theirs["id"], shop.plan_id, {}, 404, "not_found"),
        (999_999, shop.plan_id, {}, 404, "not_found"),
        (config["id"], shop.plan_id, {"user_id": 999_999}, 404, "not_found"),
        (trial["id"], shop.plan_id, {}, 409, "config_not_renewable"),
        (revoked["id"], shop.plan_id, {}, 409, "config_not_renewable"),
        (suspended["id"], shop.plan_id, {}, 409, "config_not_renewable"),
        (purchase["config"]["id"], shop.plan_id, {}, 409, "config_not_renewable"),  # still temporary
        (config["id"], shop.plan_id, {"amount_cents": 1499}, 422, "amount_mismatch"),
        (config["id"], shop.plan_id, {"amount_cents": "1500"}, 422, "validation_error"),
        (config["id"], shop.plan_id, {"protocol": "vmess"}, 422, "validation_error"),
    ]
    for config_id, plan_id, overrides, status, code in cases:
        with database_unchanged(app):
            response = renew(client, principals, shop, config_id, plan_id, evidence="refused", **overrides)
        assert assert_json_error(response, status)["error"] == code, (config_id, plan_id, overrides, response.json)
        if "amount_cents" not in overrides and "protocol" not in overrides:
            user_id = overrides.get("user_id", shop.user_id)
            quoted = quote(client, principals, shop, config_id, plan_id, user_id=user_id)
            assert assert_json_error(quoted, status)["error"] == code, (config_id, plan_id, quoted.json)
    assert "'local'" in renew(client, principals, shop, config["id"], shop.local_plan_id, evidence="x").json["message"]

    client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "Chargeback"}, headers=principals.admin.headers)
    with database_unchanged(app):
        refused = renew(client, principals, shop, config["id"], evidence="banned")
    assert assert_json_error(refused, 403)["error"] == "user_banned"


def test_proof_rules_apply_to_renewals(settings, principals, shop):
    app = create_app(replace(settings, max_pending_payments_per_user=1))
    client = app.test_client()
    try:
        config = paid_config(client, principals, shop)
        first = renew(client, principals, shop, config["id"], evidence="a")
        assert first.status_code == 201
        # One payment in review per customer, whatever it buys.
        second = renew(client, principals, shop, paid_config(client, principals, shop)["id"], evidence="b")
        assert second.status_code == 409 and second.json["error"] == "too_many_pending_payments"
        assert second.json["details"] == {"pending_payment_ids": [first.json["id"]]}
        # A retried proof is the same payment; the same proof for another order is refused.
        assert renew(client, principals, shop, config["id"], evidence="a").json["id"] == first.json["id"]
        reused = renew(client, principals, shop, config["id"], shop.carry_plan_id, evidence="a")
        assert reused.status_code == 409 and reused.json["error"] == "evidence_reused"
        elsewhere = client.post(
            "/api/v1/payments",
            json={
                "user_id": shop.other_user_id,
                "plan_id": shop.plan_id,
                "amount_cents": 1500,
                "evidence_file_id": "other-file-id",
                "evidence_unique_id": "unique-a",
            },
            headers=principals.bot.headers,
        )
        assert elsewhere.status_code == 409 and elsewhere.json["error"] == "evidence_used_elsewhere"
        # A renewal cannot be ordered through POST /payments.
        purpose = client.post(
            "/api/v1/payments",
            json={"user_id": shop.user_id, "purpose": "renewal", "plan_id": shop.plan_id, "amount_cents": 1500}
            | {"evidence_file_id": "p", "evidence_unique_id": "p"},
            headers=principals.bot.headers,
        )
        assert purpose.status_code == 422
    finally:
        app.extensions["rayfleet.db"].engine.dispose()


def test_one_renewal_or_extra_data_in_review_per_config(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    first = renew(client, principals, shop, config["id"]).json
    for response in (
        renew(client, principals, shop, config["id"], evidence="renew-2"),
        extra_data(client, principals, shop, config["id"]),
        quote(client, principals, shop, config["id"], shop.plan_id),
        client.post(
            f"/api/v1/users/{shop.user_id}/wallet/purchases",
            json={"plan_id": shop.plan_id, "extends_config_id": config["id"]},
            headers=principals.bot.headers,
        ),
    ):
        assert response.status_code == 409 and response.json["error"] == "extension_in_review", response.json
    decide(client, principals, first["id"])
    assert renew(client, principals, shop, config["id"], evidence="renew-2").status_code == 201


# --- paying from the balance ----------------------------------------------------------------------------


def buy(client, principals, shop, **body):
    return client.post(f"/api/v1/users/{shop.user_id}/wallet/purchases", json=body, headers=principals.bot.headers)


def credit(client, principals, shop, amount):
    body = {"amount_cents": amount, "reason": "test money"}
    response = client.post(f"/api/v1/users/{shop.user_id}/wallet/adjust", json=body, headers=principals.admin.headers)
    assert response.status_code == 201, response.json


def test_a_renewal_from_the_balance_debits_and_extends_in_one_go(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=9000 * MIB)
    before = stored(app, config["id"])
    credit(client, principals, shop, 2000)
    with database_unchanged(app):
        short = buy(client, principals, shop, plan_id=shop.carry_plan_id, extends_config_id=config["id"])
    assert assert_json_error(short, 409)["error"] == "insufficient_balance"
    assert short.json["details"] == {"balance_cents": 2000, "needed_cents": 2500}

    with database_unchanged(app):  # quoted at another price (changed since): nothing debited
        stale = buy(
            client, principals, shop, plan_id=shop.plan_id, extends_config_id=config["id"], expected_amount_cents=1400
        )
    assert assert_json_error(stale, 422)["error"] == "amount_mismatch"
    bought = buy(
        client, principals, shop, plan_id=shop.plan_id, extends_config_id=config["id"], expected_amount_cents=1500
    )
    assert bought.status_code == 201, bought.json
    assert bought.json["balance_cents"] == 500
    entry = bought.json["entry"]
    assert (entry["amount_cents"], entry["reason"], entry["config_id"]) == (-1500, "renewal", config["id"])
    assert (bought.json["config"]["id"], bought.json["config"]["uuid"]) == (config["id"], config["uuid"])
    after = stored(app, config["id"])
    assert after.expires_at == before.expires_at + timedelta(days=30)
    assert (after.data_limit_mb, after.used_bytes) == (10_000, 0)
    with app.app_context():
        session = db(app)
        assert (
            session.scalar(select(AuditLog.details).where(AuditLog.action == "wallet.renewal"))["config_id"]
            == (config["id"])
        )
        assert session.scalar(select(Payment.id)) is None  # nothing to review
    assert notes(app, "renewed") == []

    # The rules of a renewal hold here too, before anything is debited.
    theirs = paid_config(client, principals, shop, user_id=shop.other_user_id)
    for body, status, code in [
        ({"plan_id": shop.local_plan_id, "extends_config_id": config["id"]}, 409, "plan_not_allowed"),
        ({"plan_id": shop.plan_id, "extends_config_id": theirs["id"]}, 404, "not_found"),
        ({"plan_id": shop.plan_id, "extends_config_id": config["id"], "protocol": "vmess"}, 422, "validation_error"),
        ({"data_mb": 1024}, 422, "validation_error"),
        ({"plan_id": shop.plan_id, "data_mb": 1024, "extends_config_id": config["id"]}, 422, "validation_error"),
        ({"extends_config_id": config["id"]}, 422, "validation_error"),
    ]:
        credit(client, principals, shop, 5000)
        with database_unchanged(app):
            response = buy(client, principals, shop, **body)
        assert assert_json_error(response, status)["error"] == code, (body, response.json)


def test_extra_data_from_the_balance(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    credit(client, principals, shop, 300)
    bought = buy(client, principals, shop, extends_config_id=config["id"], data_mb=2500)
    assert bought.status_code == 201, bought.json
    assert (bought.json["entry"]["reason"], bought.json["entry"]["amount_cents"]) == ("extra_data", -245)
    assert bought.json["config"]["data_limit_mb"] == 12_500
    with database_unchanged(app):
        short = buy(client, principals, shop, extends_config_id=config["id"], data_mb=1024)
    assert assert_json_error(short, 409)["error"] == "insufficient_balance"
    with app.app_context():
        assert [row.reason for row in db(app).scalars(select(WalletEntry).order_by(WalletEntry.id))] == [
            "admin_credit",
            "extra_data",
        ]


# --- extra data through a proof -------------------------------------------------------------------------


def test_extra_data_is_quoted_approved_into_the_cap_or_rejected(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    quoted = client.get(
        f"/api/v1/configs/{config['id']}/extra-data?user_id={shop.user_id}&data_mb=2048",
        headers=principals.bot.headers,
    )
    assert quoted.status_code == 200, quoted.json
    assert (quoted.json["price_cents"], quoted.json["price_cents_per_gb"], quoted.json["new_data_limit_mb"]) == (
        200,
        100,
        12_048,
    )
    wrong = extra_data(client, principals, shop, config["id"], amount_cents=100)
    assert wrong.status_code == 422 and wrong.json["error"] == "amount_mismatch" and "200" in wrong.json["message"]

    created = extra_data(client, principals, shop, config["id"])
    assert created.status_code == 201, created.json
    payment = created.json
    assert (payment["purpose"], payment["extra_data_mb"], payment["plan_id"], payment["plan"]) == (
        "extra_data",
        2048,
        None,
        None,
    )
    assert stored(app, config["id"]).data_limit_mb == 10_000  # not before approval
    decide(client, principals, payment["id"])
    assert stored(app, config["id"]).data_limit_mb == 12_048
    (note,) = notes(app, "data_added")
    assert (note["extra_data_mb"], note["data_limit_mb"], note["config_id"]) == (2048, 12_048, config["id"])

    rejected = extra_data(client, principals, shop, config["id"], evidence="extra-2")
    decide(client, principals, rejected.json["id"], "reject", reason="Too little")
    assert stored(app, config["id"]).data_limit_mb == 12_048


def test_extra_data_brings_back_a_config_out_of_data_and_is_refused_once_expired(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=10_000 * MIB + 1)
    assert sweep(app, utcnow())["quota_suspended"] == 1
    node_revision = revision(app, shop.node_id)
    payment = extra_data(client, principals, shop, config["id"], data_mb=1024).json
    assert stored(app, config["id"]).status == "suspended"  # no bridge for extra data
    decide(client, principals, payment["id"])
    after = stored(app, config["id"])
    assert (after.status, after.suspend_reason, after.data_limit_mb) == ("pending", None, 11_024)
    assert revision(app, shop.node_id) == node_revision + 1 and f"cfg-{config['id']}" in served(app, shop.node_id)

    expire(app, config["id"])
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers).json
    for config_id in (config["id"], trial["id"]):
        with database_unchanged(app):
            refused = extra_data(client, principals, shop, config_id, evidence=f"late-{config_id}")
        assert assert_json_error(refused, 409)["error"] == "config_not_renewable"


def test_the_quota_warnings_come_again_in_a_renewed_period(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    set_config(app, config["id"], used_bytes=8500 * MIB)
    sweep(app, utcnow())
    credit(client, principals, shop, 1500)
    assert buy(client, principals, shop, plan_id=shop.plan_id, extends_config_id=config["id"]).status_code == 201
    set_config(app, config["id"], used_bytes=8500 * MIB)
    sweep(app, utcnow())
    assert len(notes(app, "quota_80")) == 2  # same cap, new period: warned again
