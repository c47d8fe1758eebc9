"""Auto-renewal on real PostgreSQL + Redis (issue 16, item 5) with the sweep's clock in the test's hands
(run_lifecycle(now=...)): an opted-in config is renewed from the balance AUTO_RENEW_HOURS_BEFORE its expiry,
in place and once per period whatever sweeps run at once; a refusal charges nothing and is told once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_api import migrate
from control_api.actors import SYSTEM
from control_api.database import make_engine
from control_api.models import AuditLog, AutoRenewal, Node, Notification, Plan, User, UserConfig, WalletEntry, utcnow
from control_api.services import wallet
from control_api.services.lifecycle import run_lifecycle
from tests.conftest import make_settings
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
UPGRADE = {**BASE, "name": "Abroad 60 days", "duration_days": 60, "data_limit_mb": 20_000, "price_cents": 2500}


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """An active node with an inbound, two plans of one location and one of another, three customers."""
    with app.app_context():
        session = db(app)
        node = session.get(Node, principals.node.principal_id)
        node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    admin = principals.admin.headers
    plans = [client.post("/api/v1/plans", json=plan, headers=admin).json for plan in (BASE, UPGRADE)]
    local = client.post("/api/v1/plans", json={**BASE, "name": "Local", "location_tag": "local"}, headers=admin).json
    users = [
        client.put(f"/api/v1/users/telegram/{7001 + n}", json={"username": f"c{n}"}, headers=principals.bot.headers)
        for n in range(3)
    ]

    class Shop:
        plan_id, upgrade_plan_id, local_plan_id = plans[0]["id"], plans[1]["id"], local["id"]
        user_id, second_user_id, third_user_id = (user.json["id"] for user in users)

    return Shop


def paid_config(client, principals, shop, user_id=None, plan_id=None):
    response = client.post(
        f"/api/v1/users/{user_id or shop.user_id}/configs",
        json={"plan_id": plan_id or shop.plan_id},
        headers=principals.admin.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def opt(client, principals, shop, config_id, enabled=True, user_id=None, who="bot", **extra):
    body = {"user_id": user_id or shop.user_id, "enabled": enabled, **extra}
    return client.put(f"/api/v1/configs/{config_id}/auto-renewal", json=body, headers=principals.of(who).headers)


def opted_in(client, principals, shop, config_id, user_id=None, **extra):
    response = opt(client, principals, shop, config_id, user_id=user_id, **extra)
    assert response.status_code == 200, response.json
    return response.json


def credit(client, principals, user_id, amount):
    body = {"amount_cents": amount, "reason": "test money"}
    response = client.post(f"/api/v1/users/{user_id}/wallet/adjust", json=body, headers=principals.admin.headers)
    assert response.status_code == 201, response.json


def stored(app, config_id):
    with app.app_context():
        session = db(app)
        config = session.get(UserConfig, config_id)
        session.expunge(config)
        return config


def sweep(app, when):
    with app.app_context():
        return run_lifecycle(db(app), lambda _node_id: None, now=when, settings=app.extensions["rayfleet.settings"])


def ledger(app, user_id):
    with app.app_context():
        return (
            db(app)
            .execute(
                select(WalletEntry.amount_cents, WalletEntry.reason, WalletEntry.config_id, WalletEntry.actor_type)
                .where(WalletEntry.user_id == user_id)
                .order_by(WalletEntry.id)
            )
            .all()
        )


def notes(app, kind):
    with app.app_context():
        return db(app).scalars(select(Notification.payload).where(Notification.kind == kind)).all()


def attempts(app, config_id):
    with app.app_context():
        return (
            db(app)
            .execute(
                select(AutoRenewal.outcome, AutoRenewal.reason, AutoRenewal.attempts).where(
                    AutoRenewal.config_id == config_id
                )
            )
            .all()
        )


# --- renewed ----------------------------------------------------------------------------------------------


def test_an_opted_in_config_is_renewed_from_the_balance_in_place_once(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    assert (config["auto_renew"], config["auto_renew_plan_id"]) == (False, None)
    credit(client, principals, shop.user_id, 2000)
    view = opted_in(client, principals, shop, config["id"])
    assert (view["id"], view["auto_renew"], view["auto_renew_plan_id"]) == (config["id"], True, None)
    shown = client.get(f"/api/v1/configs/{config['id']}", headers=principals.admin.headers).json
    assert shown["auto_renew"] is True
    listed = client.get(f"/api/v1/users/{shop.user_id}/configs", headers=principals.bot.headers).json["items"]
    assert [item["auto_renew"] for item in listed] == [True]
    with app.app_context():
        session = db(app)
        session.get(UserConfig, config["id"]).used_bytes = 9000 * MIB
        session.commit()
    before = stored(app, config["id"])

    early = sweep(app, before.expires_at - timedelta(hours=24, minutes=1))
    assert early["auto_renewed"] == 0 and stored(app, config["id"]).expires_at == before.expires_at

    due = before.expires_at - timedelta(hours=23)
    assert sweep(app, due)["auto_renewed"] == 1
    after = stored(app, config["id"])
    assert (after.id, after.uuid, after.kind, after.plan_id, after.auto_renew) == (
        config["id"],
        config["uuid"],
        "full",
        shop.plan_id,
        True,
    )
    assert after.expires_at == before.expires_at + timedelta(days=30)  # from the old expiry, not from now
    assert (after.data_limit_mb, after.used_bytes, after.status) == (10_000, 0, before.status)
    view = client.get(f"/api/v1/configs/{config['id']}", headers=principals.admin.headers).json
    assert view["links"] == config["links"]

    for later in (due, due + timedelta(minutes=1), due + timedelta(hours=23)):  # a sweep every minute
        assert sweep(app, later)["auto_renewed"] == 0
    assert ledger(app, shop.user_id) == [
        (2000, "admin_credit", None, "admin"),
        (-1500, "renewal", config["id"], "system"),
    ]
    balance = client.get(f"/api/v1/users/{shop.user_id}/wallet", headers=principals.bot.headers).json
    assert balance["balance_cents"] == 500
    (note,) = notes(app, "auto_renewed")
    assert note == {
        "config_id": config["id"],
        "plan": BASE["name"],
        "amount_cents": 1500,
        "balance_cents": 500,
        "previous_expires_at": before.expires_at.isoformat(),
        "expires_at": after.expires_at.isoformat(),
        "data_limit_mb": 10_000,
    }
    assert notes(app, "auto_renew_failed") == [] and notes(app, "expiring") == []
    assert attempts(app, config["id"]) == [("renewed", None, 1)]
    with app.app_context():
        actions = db(app).execute(select(AuditLog.actor_type, AuditLog.action).order_by(AuditLog.id)).all()
    assert actions[-1] == ("system", "wallet.renewal") and ("bot", "config.auto_renewal") in actions

    # The next period is renewed in its turn, counted from its own expiry.
    credit(client, principals, shop.user_id, 1000)
    assert sweep(app, after.expires_at - timedelta(hours=1))["auto_renewed"] == 1
    assert stored(app, config["id"]).expires_at == before.expires_at + timedelta(days=60)
    assert len(notes(app, "auto_renewed")) == 2 and len(attempts(app, config["id"])) == 2


def test_the_chosen_plan_renews_and_a_config_past_its_expiry_is_renewed_before_it_is_expired(
    app, client, principals, shop
):
    config = paid_config(client, principals, shop)
    credit(client, principals, shop.user_id, 2500)
    assert opted_in(client, principals, shop, config["id"], plan_id=shop.upgrade_plan_id)["auto_renew_plan_id"] == (
        shop.upgrade_plan_id
    )
    before = stored(app, config["id"])
    late = before.expires_at + timedelta(minutes=3)  # no sweep ran in the window (an outage)
    summary = sweep(app, late)
    assert (summary["auto_renewed"], summary["expired"]) == (1, 0)
    after = stored(app, config["id"])
    assert (after.plan_id, after.data_limit_mb, after.status) == (shop.upgrade_plan_id, 20_000, "pending")
    assert after.expires_at == late + timedelta(days=60)  # max(now, expiry): the days lost are not charged
    assert ledger(app, shop.user_id)[-1] == (-2500, "renewal", config["id"], "system")


# --- refused ----------------------------------------------------------------------------------------------


def test_a_balance_short_of_the_plan_charges_nothing_tells_once_and_a_top_up_still_renews(
    app, client, principals, shop
):
    config = paid_config(client, principals, shop)
    credit(client, principals, shop.user_id, 1000)
    opted_in(client, principals, shop, config["id"])
    before = stored(app, config["id"])
    due = before.expires_at - timedelta(hours=20)
    for minute in range(3):  # a sweep every minute
        assert sweep(app, due + timedelta(minutes=minute))["auto_renew_failed"] == 1
    assert stored(app, config["id"]).expires_at == before.expires_at
    assert ledger(app, shop.user_id) == [(1000, "admin_credit", None, "admin")]
    (note,) = notes(app, "auto_renew_failed")
    assert {key: value for key, value in note.items() if key != "message"} == {
        "config_id": config["id"],
        "plan": BASE["name"],
        "reason": "insufficient_balance",
        "amount_cents": 1500,
        "balance_cents": 1000,
        "missing_cents": 500,
        "expires_at": before.expires_at.isoformat(),
    }
    assert attempts(app, config["id"]) == [("failed", "insufficient_balance", 3)]

    credit(client, principals, shop.user_id, 600)  # the customer topped up
    assert sweep(app, due + timedelta(hours=2))["auto_renewed"] == 1
    assert stored(app, config["id"]).expires_at == before.expires_at + timedelta(days=30)
    assert [row[:2] for row in ledger(app, shop.user_id)] == [
        (1000, "admin_credit"),
        (600, "admin_credit"),
        (-1500, "renewal"),
    ]
    assert attempts(app, config["id"]) == [("renewed", None, 4)]
    assert len(notes(app, "auto_renew_failed")) == 1 and len(notes(app, "auto_renewed")) == 1


def test_with_no_top_up_the_config_expires_as_usual(app, client, principals, shop):
    config = paid_config(client, principals, shop)
    opted_in(client, principals, shop, config["id"])
    expiry = stored(app, config["id"]).expires_at
    sweep(app, expiry - timedelta(hours=2))
    summary = sweep(app, expiry + timedelta(minutes=1))
    assert (summary["auto_renew_failed"], summary["expired"]) == (1, 1)  # tried once more before expiring it
    assert stored(app, config["id"]).status == "expired"
    assert sweep(app, expiry + timedelta(minutes=2))["auto_renew_failed"] == 0  # an expired config is left alone
    assert len(notes(app, "auto_renew_failed")) == 1 and ledger(app, shop.user_id) == []
    assert notes(app, "auto_renew_failed")[0]["missing_cents"] == 1500


def test_a_config_not_opted_in_or_opted_out_is_left_alone(app, client, principals, shop):
    credit(client, principals, shop.user_id, 10_000)
    never = paid_config(client, principals, shop)
    out = paid_config(client, principals, shop)
    opted_in(client, principals, shop, out["id"], plan_id=shop.upgrade_plan_id)
    stopped = opt(client, principals, shop, out["id"], enabled=False)
    assert stopped.status_code == 200 and (stopped.json["auto_renew"], stopped.json["auto_renew_plan_id"]) == (
        False,
        None,
    )
    expiry = stored(app, out["id"]).expires_at
    for hours in (23, 1):
        summary = sweep(app, expiry - timedelta(hours=hours))
        assert (summary["auto_renewed"], summary["auto_renew_failed"]) == (0, 0)
    for config in (never, out):
        assert stored(app, config["id"]).expires_at <= expiry and attempts(app, config["id"]) == []
    assert [row[1] for row in ledger(app, shop.user_id)] == ["admin_credit"]
    assert notes(app, "auto_renewed") == notes(app, "auto_renew_failed") == []
    assert len(notes(app, "expiring")) == 2  # the usual reminder instead


def test_a_suspended_banned_archived_or_in_review_renewal_is_refused_and_told(app, client, principals, shop):
    admin = principals.admin.headers
    suspended = paid_config(client, principals, shop)
    archived_plan = client.post("/api/v1/plans", json={**BASE, "name": "Old"}, headers=admin).json
    archived = paid_config(client, principals, shop)
    in_review = paid_config(client, principals, shop)
    banned = paid_config(client, principals, shop, user_id=shop.second_user_id)
    credit(client, principals, shop.user_id, 10_000)
    credit(client, principals, shop.second_user_id, 10_000)
    for config in (suspended, in_review):
        opted_in(client, principals, shop, config["id"])
    opted_in(client, principals, shop, archived["id"], plan_id=archived_plan["id"])
    opted_in(client, principals, shop, banned["id"], user_id=shop.second_user_id)
    assert client.post(f"/api/v1/configs/{suspended['id']}/suspend", headers=admin).status_code == 200
    client.patch(f"/api/v1/plans/{archived_plan['id']}", json={"is_active": False}, headers=admin)
    renewal = client.post(
        f"/api/v1/configs/{in_review['id']}/renew",
        json={
            "user_id": shop.user_id,
            "plan_id": shop.plan_id,
            "amount_cents": 1500,
            "evidence_file_id": "proof",
            "evidence_unique_id": "unique-proof",
        },
        headers=principals.bot.headers,
    )
    assert renewal.status_code == 201, renewal.json
    ban = client.post(f"/api/v1/users/{shop.second_user_id}/ban", json={"reason": "Chargeback"}, headers=admin)
    assert ban.status_code == 200
    configs = {"config_not_renewable": suspended, "plan_not_for_sale": archived, "extension_in_review": in_review}
    configs["user_banned"] = banned
    # Due in 12 hours: the proof came while the period was long (else it would have bridged it for 3 days),
    # and the sweep runs before the 3-day auto-acceptance.
    now = utcnow()
    with app.app_context():
        session = db(app)
        for config in configs.values():
            session.get(UserConfig, config["id"]).expires_at = now + timedelta(hours=12)
        session.commit()
    before = {config["id"]: stored(app, config["id"]).expires_at for config in configs.values()}

    for minutes in (0, 5):
        summary = sweep(app, now + timedelta(minutes=minutes))
        assert (summary["auto_renew_failed"], summary["auto_accepted"]) == (4, 0)
    for config_id, expires_at in before.items():
        assert stored(app, config_id).expires_at == expires_at
    for user_id in (shop.user_id, shop.second_user_id):
        assert [row[1] for row in ledger(app, user_id)] == ["admin_credit"]
    told = {note["reason"]: note["config_id"] for note in notes(app, "auto_renew_failed")}
    assert told == {reason: config["id"] for reason, config in configs.items()}
    assert notes(app, "auto_renewed") == []


# --- racing sweeps ----------------------------------------------------------------------------------------


def test_sweeps_racing_charge_each_period_once(app, client, principals, shop):
    configs = [paid_config(client, principals, shop) for _ in range(3)]
    short = paid_config(client, principals, shop, user_id=shop.third_user_id)
    credit(client, principals, shop.user_id, 3 * 1500 + 100)
    credit(client, principals, shop.third_user_id, 100)
    for config in configs:
        opted_in(client, principals, shop, config["id"])
    opted_in(client, principals, shop, short["id"], user_id=shop.third_user_id)
    before = {config["id"]: stored(app, config["id"]).expires_at for config in (*configs, short)}
    now = max(before.values()) - timedelta(hours=12)
    settings = app.extensions["rayfleet.settings"]
    engine = make_engine(settings.database_url)  # one connection per sweep
    sweeps = 6
    barrier = threading.Barrier(sweeps)
    summaries, errors = [], []

    def run() -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                summaries.append(run_lifecycle(session, lambda _node_id: None, now=now, settings=settings))
            except Exception as exc:  # noqa: BLE001 -- reported below
                errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(sweeps)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    assert errors == []
    assert sum(summary["auto_renewed"] for summary in summaries) == 3
    assert [row[:2] for row in ledger(app, shop.user_id)] == [(4600, "admin_credit")] + [(-1500, "renewal")] * 3
    for config in configs:
        assert stored(app, config["id"]).expires_at == before[config["id"]] + timedelta(days=30)
        assert attempts(app, config["id"]) == [("renewed", None, 1)]
    assert stored(app, short["id"]).expires_at == before[short["id"]]
    assert len(notes(app, "auto_renewed")) == 3 and len(notes(app, "auto_renew_failed")) == 1
    with app.app_context():
        renewed = db(app).scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "wallet.renewal"))
    assert renewed == 3


# --- opting in and out ------------------------------------------------------------------------------------


def test_who_may_opt_in_what(app, client, principals, shop):
    admin = principals.admin.headers
    config = paid_config(client, principals, shop)
    theirs = paid_config(client, principals, shop, user_id=shop.second_user_id)
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers).json
    expired = paid_config(client, principals, shop)
    created_at = stored(app, expired["id"]).created_at  # its own app context, not inside this one
    with app.app_context():
        session = db(app)
        session.get(UserConfig, expired["id"]).expires_at = created_at
        session.commit()
    sweep(app, stored(app, expired["id"]).expires_at + timedelta(seconds=1))
    assert stored(app, expired["id"]).status == "expired"
    archived = client.post("/api/v1/plans", json={**BASE, "name": "Old"}, headers=admin).json
    client.patch(f"/api/v1/plans/{archived['id']}", json={"is_active": False}, headers=admin)
    cases = [
        (config["id"], {"plan_id": shop.local_plan_id}, 409, "plan_not_allowed"),
        (config["id"], {"plan_id": archived["id"]}, 409, "plan_not_for_sale"),
        (config["id"], {"plan_id": 999_999}, 404, "not_found"),
        (theirs["id"], {}, 404, "not_found"),
        (999_999, {}, 404, "not_found"),
        (config["id"], {"user_id": 999_999}, 404, "not_found"),
        (trial["id"], {}, 409, "config_not_renewable"),
        (expired["id"], {}, 409, "config_not_renewable"),
        (config["id"], {"enabled": "yes"}, 422, "validation_error"),
        (config["id"], {"enabled": 1}, 422, "validation_error"),
        (config["id"], {"plan_id": "2"}, 422, "validation_error"),
    ]
    for config_id, extra, status, code in cases:
        with database_unchanged(app):
            response = opt(client, principals, shop, config_id, **extra)
        assert assert_json_error(response, status)["error"] == code, (config_id, extra, response.json)
    missing = client.put(f"/api/v1/configs/{config['id']}/auto-renewal", json={"enabled": True}, headers=admin)
    assert assert_json_error(missing, 422)["error"] == "validation_error"

    # An admin may do it too; opting out always works, even for a config that could not be opted in.
    by_admin = opt(client, principals, shop, config["id"], who="admin", plan_id=shop.upgrade_plan_id)
    assert by_admin.status_code == 200 and by_admin.json["auto_renew_plan_id"] == shop.upgrade_plan_id
    assert opt(client, principals, shop, trial["id"], enabled=False).status_code == 200
    # A plan a customer chose to renew with is in use.
    unused = client.delete(f"/api/v1/plans/{shop.upgrade_plan_id}", headers=admin)
    assert assert_json_error(unused, 409)["error"] == "plan_in_use"

    client.post(f"/api/v1/users/{shop.user_id}/ban", json={"reason": "Chargeback"}, headers=admin)
    with database_unchanged(app):
        refused = opt(client, principals, shop, config["id"])
    assert assert_json_error(refused, 403)["error"] == "user_banned"
    assert opt(client, principals, shop, config["id"], enabled=False).status_code == 200


def test_racing_sweeps_on_the_embedded_sqlite_charge_once_and_tell_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'auto-renewal.sqlite3'}"
    engine = make_engine(url)
    settings = make_settings(url)
    try:
        migrate.upgrade(engine)
        now = utcnow()
        with Session(engine, expire_on_commit=False) as session:
            plan = Plan(**BASE)
            node = Node(name="n", region="eu", location_tag="abroad", status="active", client_id="c", secret_hash="h")
            rich, poor = User(telegram_id=1, subscription_token="a"), User(telegram_id=2, subscription_token="b")
            session.add_all([plan, node, rich, poor])
            session.flush()
            configs = [
                UserConfig(
                    user_id=user.id,
                    node_id=node.id,
                    plan_id=plan.id,
                    uuid=f"00000000-0000-4000-8000-00000000000{user.id}",
                    kind="full",
                    data_limit_mb=10_000,
                    expires_at=now + timedelta(hours=6),
                    auto_renew=True,
                )
                for user in (rich, poor)
            ]
            session.add_all(configs)
            wallet.book(session, SYSTEM, rich.id, 2000, "admin_credit", note="seed")
            session.commit()
            renewed_id, short_id, rich_id = configs[0].id, configs[1].id, rich.id
        sweeps = 4
        barrier = threading.Barrier(sweeps)
        summaries = []

        def run() -> None:
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                summaries.append(run_lifecycle(session, lambda _node_id: None, now=now, settings=settings))

        threads = [threading.Thread(target=run) for _ in range(sweeps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(summaries) == sweeps and sum(summary["auto_renewed"] for summary in summaries) == 1
        with Session(engine) as session:
            assert wallet.balance(session, rich_id) == 500
            assert session.get(UserConfig, renewed_id).expires_at == now + timedelta(hours=6, days=30)
            assert session.get(UserConfig, short_id).expires_at == now + timedelta(hours=6)
            kinds = session.scalars(select(Notification.kind).order_by(Notification.kind)).all()
            # Opted-in configs get no expiry warning: the renewal, or why it failed, is what they hear.
            assert kinds == ["auto_renew_failed", "auto_renewed"]
    finally:
        engine.dispose()
