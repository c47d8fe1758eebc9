"""Alembic migrations go up and down on both engines and match the models exactly."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from control_api import migrate
from control_api.database import make_engine
from control_api.models import Base


@pytest.fixture
def scratch_postgres(postgres_url):
    """An empty database in the test cluster, dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()


@pytest.fixture
def scratch_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def scratch_engine(request):
    return request.getfixturevalue("scratch_postgres" if request.param == "postgresql" else "scratch_sqlite")


def user_tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_every_table_and_matches_the_models(scratch_engine):
    migrate.upgrade(scratch_engine)
    assert user_tables(scratch_engine) == set(Base.metadata.tables)
    with scratch_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert migrate.current(scratch_engine) is not None


def test_downgrade_to_base_and_up_again(scratch_engine):
    migrate.upgrade(scratch_engine)
    migrate.downgrade(scratch_engine, "base")
    assert user_tables(scratch_engine) == set()
    assert migrate.current(scratch_engine) is None
    migrate.upgrade(scratch_engine)
    assert user_tables(scratch_engine) == set(Base.metadata.tables)


def test_the_migrated_schema_enforces_integrity(scratch_engine):
    """Checks, unique constraints and foreign keys hold on both engines (SQLite needs foreign_keys=ON)."""
    migrate.upgrade(scratch_engine)
    statements = [
        # unknown language
        "INSERT INTO users (telegram_id, language, is_admin, subscription_token, created_at)"
        " VALUES (1, 'xx', false, 't1', CURRENT_TIMESTAMP)",
        # config for a user that does not exist
        "INSERT INTO user_configs (user_id, uuid, alter_id, protocol, status, kind, created_at)"
        " VALUES (999, 'u', 0, 'vless', 'active', 'full', CURRENT_TIMESTAMP)",
        # negative price
        "INSERT INTO plans (name, location_tag, duration_days, max_devices, data_limit_mb, is_constant_ip, price_cents,"
        " is_active, created_at) VALUES ('p', 'x', 1, 1, 1, false, -1, true, CURRENT_TIMESTAMP)",
    ]
    for statement in statements:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(statement))
    insert_user = (
        "INSERT INTO users (telegram_id, language, is_admin, subscription_token, created_at)"
        " VALUES (5, 'en', false, :token, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(insert_user), {"token": "a"})
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(insert_user), {"token": "b"})  # same telegram_id


def test_the_wallet_schema_refuses_what_the_ledger_never_holds(scratch_engine):
    """0007: a credit is positive and a debit is not, a payment credits at most once, and a payment's
    purpose decides whether it has a plan and an auto-acceptance time."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO plans (id, name, location_tag, duration_days, max_devices, data_limit_mb,"
                " is_constant_ip, price_cents, is_active, created_at)"
                " VALUES (1, 'p', 'x', 1, 1, 1, false, 5, true, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO payments (id, user_id, purpose, amount_cents, status, evidence_file_id, created_at)"
                " VALUES (1, 1, 'topup', 500, 'approved', 'f', CURRENT_TIMESTAMP)"
            )
        )
    entry = (
        "INSERT INTO wallet_entries (user_id, amount_cents, reason, actor_type, actor_name, payment_id, created_at)"
        " VALUES (1, :amount, :reason, 'admin', 'alice', :payment, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(entry), {"amount": 500, "reason": "topup", "payment": 1})
        connection.execute(text(entry), {"amount": 0, "reason": "purchase", "payment": None})
    refused = [
        {"amount": 500, "reason": "topup", "payment": 1},  # the same payment credited twice
        {"amount": -5, "reason": "topup", "payment": None},  # a credit that takes money
        {"amount": 5, "reason": "admin_debit", "payment": None},  # a debit that gives money
        {"amount": 0, "reason": "admin_credit", "payment": None},
        {"amount": 5, "reason": "gift", "payment": None},
    ]
    for values in refused:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(entry), values)
    payments = [
        # a top-up with a plan, a purchase without one, a top-up the sweep would accept, a zero top-up
        "INSERT INTO payments (user_id, plan_id, purpose, amount_cents, status, evidence_file_id, created_at)"
        " VALUES (1, 1, 'topup', 5, 'pending', 'g', CURRENT_TIMESTAMP)",
        "INSERT INTO payments (user_id, purpose, amount_cents, status, evidence_file_id, auto_accept_at, created_at)"
        " VALUES (1, 'purchase', 5, 'pending', 'h', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO payments (user_id, purpose, amount_cents, status, evidence_file_id, auto_accept_at, created_at)"
        " VALUES (1, 'topup', 5, 'pending', 'i', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO payments (user_id, purpose, amount_cents, status, evidence_file_id, created_at)"
        " VALUES (1, 'topup', 0, 'pending', 'j', CURRENT_TIMESTAMP)",
    ]
    for statement in payments:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(statement))


def test_the_renewal_schema_ties_each_purpose_to_its_columns(scratch_engine):
    """0008: a renewal names its plan and config, extra data its config and MB, only a renewal keeps the
    config's previous state, and a plan's renewal data rule is reset (the default) or carry."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO plans (id, name, location_tag, duration_days, max_devices, data_limit_mb,"
                " is_constant_ip, price_cents, is_active, created_at)"
                " VALUES (1, 'p', 'x', 1, 1, 1, false, 5, true, CURRENT_TIMESTAMP)"
            )
        )
        assert connection.execute(text("SELECT renewal_data_rule FROM plans")).scalar() == "reset"
        connection.execute(
            text(
                "INSERT INTO user_configs (id, user_id, plan_id, uuid, alter_id, protocol, status, kind, created_at)"
                " VALUES (1, 1, 1, 'u', 0, 'vless', 'active', 'full', CURRENT_TIMESTAMP)"
            )
        )
    insert = (
        "INSERT INTO payments (user_id, plan_id, purpose, amount_cents, status, evidence_file_id, auto_accept_at,"
        " extends_config_id, extra_data_mb, previous_status, previous_expires_at, created_at)"
        " VALUES (1, :plan, :purpose, 5, 'pending', :evidence, :auto, :config, :mb, :previous, :previous_at,"
        " CURRENT_TIMESTAMP)"
    )
    now = "2026-12-06 00:00:00+00:00"
    renewal = {"plan": 1, "purpose": "renewal", "auto": now, "config": 1, "mb": None, "previous": None}
    extra = {"plan": None, "purpose": "extra_data", "auto": now, "config": 1, "mb": 1024, "previous": None}
    with scratch_engine.begin() as connection:
        for number, values in enumerate(
            [renewal, extra, {**renewal, "previous": "expired", "previous_at": now}], start=1
        ):
            connection.execute(text(insert), {"previous_at": None, **values, "evidence": f"ok-{number}"})
    refused = [
        {**renewal, "config": None},  # a renewal of no config
        {**renewal, "plan": None},  # a renewal without a plan
        {**renewal, "auto": None},  # a renewal the sweep would never accept
        {**renewal, "mb": 5},  # megabytes on a renewal
        {**renewal, "previous": "gone", "previous_at": now},  # not a config status
        {**renewal, "previous": "expired"},  # a previous state without its expiry
        {**extra, "mb": None},
        {**extra, "mb": 0},
        {**extra, "plan": 1},
        {**extra, "previous": "expired", "previous_at": now},  # only a renewal extends temporarily
        {**renewal, "purpose": "purchase"},  # a purchase extends no config
    ]
    for number, values in enumerate(refused):
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(insert), {"previous_at": None, **values, "evidence": f"bad-{number}"})
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text("UPDATE plans SET renewal_data_rule = 'keep'"))
    with scratch_engine.begin() as connection:
        connection.execute(text("UPDATE plans SET renewal_data_rule = 'carry'"))
        connection.execute(
            text(
                "INSERT INTO wallet_entries (user_id, amount_cents, reason, actor_type, actor_name, created_at)"
                " VALUES (1, -5, 'extra_data', 'bot', 'shopbot', CURRENT_TIMESTAMP)"
            )
        )
    migrate.downgrade(scratch_engine, "0007")  # renewal rows go; the extra_data debit stays, as a purchase
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM payments")).scalar() == 0
        assert connection.execute(text("SELECT reason, amount_cents FROM wallet_entries")).all() == [("purchase", -5)]


def test_upgrading_a_database_with_sales_keeps_every_row(scratch_engine):
    """Rebuilding a referenced table (SQLite's batch mode) neither fails on RESTRICT nor cascades: the
    plans, configs, payments and ledger rows of a 0007 database are all there after 0008 and back."""
    migrate.upgrade(scratch_engine, "0007")
    rows = [
        "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
        " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)",
        "INSERT INTO plans (id, name, location_tag, duration_days, max_devices, data_limit_mb, is_constant_ip,"
        " price_cents, is_active, created_at) VALUES (1, 'p', 'x', 1, 1, 1, false, 5, true, CURRENT_TIMESTAMP)",
        "INSERT INTO user_configs (id, user_id, plan_id, uuid, alter_id, protocol, status, kind, created_at)"
        " VALUES (1, 1, 1, 'u', 0, 'vless', 'active', 'full', CURRENT_TIMESTAMP)",
        "INSERT INTO payments (id, user_id, plan_id, purpose, amount_cents, status, evidence_file_id,"
        " auto_accept_at, config_id, created_at)"
        " VALUES (1, 1, 1, 'purchase', 5, 'approved', 'f', CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP)",
        "INSERT INTO wallet_entries (user_id, amount_cents, reason, actor_type, actor_name, payment_id, config_id,"
        " created_at) VALUES (1, -5, 'purchase', 'bot', 'shopbot', 1, 1, CURRENT_TIMESTAMP)",
    ]
    with scratch_engine.begin() as connection:
        for statement in rows:
            connection.execute(text(statement))
    check = "SELECT p.plan_id, p.config_id, w.payment_id, w.config_id FROM payments p, wallet_entries w"
    for step in (lambda: migrate.upgrade(scratch_engine), lambda: migrate.downgrade(scratch_engine, "0007")):
        step()
        with scratch_engine.connect() as connection:
            assert connection.execute(text(check)).all() == [(1, 1, 1, 1)]
            assert connection.execute(text("SELECT count(*) FROM user_configs")).scalar() == 1


def test_the_referral_schema_keeps_one_referral_per_customer_decided_once(scratch_engine):
    """0010: a code belongs to one user, a customer is referred once and never by themselves, a referral is
    decided all at once (a credit is positive and only a credited one has a ledger row), the referrers'
    notifications have their kind; downgrading drops the referrals and the codes but keeps the credits."""
    migrate.upgrade(scratch_engine)
    user = (
        "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, referral_code, created_at)"
        " VALUES (:id, :id, 'en', false, :token, :code, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        for number, code in ((1, "abcdefghij"), (2, None), (3, None), (4, None)):
            connection.execute(text(user), {"id": number, "token": f"t{number}", "code": code})
        connection.execute(
            text(
                "INSERT INTO wallet_entries (id, user_id, amount_cents, reason, actor_type, actor_name, created_at)"
                " VALUES (1, 1, 150, 'referral', 'system', 'system', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO notifications (user_id, audience, kind, dedupe_key, payload, created_at)"
                " VALUES (1, 'user', 'referral_credited', 'referral_credited:user-2', '{}', CURRENT_TIMESTAMP)"
            )
        )
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(user), {"id": 5, "token": "t5", "code": "abcdefghij"})  # another user's code
    referral = (
        "INSERT INTO referrals (referred_user_id, referrer_user_id, created_at, decided_at, outcome, price_cents,"
        " percent, amount_cents, entry_id)"
        " VALUES (:referred, :referrer, CURRENT_TIMESTAMP, :decided, :outcome, :price, :percent, :amount, :entry)"
    )
    now = "2026-12-07 00:00:00+00:00"
    open_ = {"decided": None, "outcome": None, "price": None, "percent": None, "amount": None, "entry": None}
    credited = {"decided": now, "outcome": "credited", "price": 1500, "percent": 10, "amount": 150, "entry": 1}
    skipped = {**credited, "outcome": "referrer_banned", "amount": 0, "entry": None}
    with scratch_engine.begin() as connection:
        connection.execute(text(referral), {"referred": 2, "referrer": 1, **credited})
        connection.execute(text(referral), {"referred": 3, "referrer": 1, **skipped})
        connection.execute(text(referral), {"referred": 4, "referrer": 1, **open_})
    refused = [
        {"referred": 2, "referrer": 3, **open_},  # referred twice
        {"referred": 1, "referrer": 1, **open_},  # by themselves
        {"referred": 1, "referrer": 99, **open_},  # by nobody
        {"referred": 1, "referrer": 2, **credited, "entry": 1},  # one ledger row paying two referrals
        {"referred": 1, "referrer": 2, **credited, "entry": None, "amount": 0},  # credited nothing
        {"referred": 1, "referrer": 2, **skipped, "entry": 1},  # a ledger row for a skipped referral
        {"referred": 1, "referrer": 2, **skipped, "amount": 5},  # skipped, yet an amount
        {"referred": 1, "referrer": 2, **credited, "entry": None, "decided": None},  # decided without a time
        {"referred": 1, "referrer": 2, **open_, "percent": 10},  # half decided
        {"referred": 1, "referrer": 2, **skipped, "outcome": "forgotten"},
    ]
    for values in refused:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(referral), values)
    migrate.downgrade(scratch_engine, "0008")
    assert "referrals" not in user_tables(scratch_engine)
    assert "referral_code" not in {column["name"] for column in inspect(scratch_engine).get_columns("users")}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT reason, amount_cents FROM wallet_entries")).all() == [("referral", 150)]
        assert connection.execute(text("SELECT count(*) FROM notifications")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 4
    migrate.upgrade(scratch_engine)
    assert "referrals" in user_tables(scratch_engine)


def test_the_auto_renewal_schema_records_one_attempt_per_config_and_period(scratch_engine):
    """0011: every existing config is opted out and keeps its rows (user_configs, which payments and ledger rows
    reference, is rebuilt on SQLite); an attempt is unique per config and period, a failure names its reason and
    a renewal none; a config's auto-renewal plan is a plan. Down to 0008 and the opt-ins and attempts go."""
    migrate.upgrade(scratch_engine, "0008")
    rows = [
        "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
        " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)",
        "INSERT INTO plans (id, name, location_tag, duration_days, max_devices, data_limit_mb, is_constant_ip,"
        " price_cents, is_active, created_at) VALUES (1, 'p', 'x', 1, 1, 1, false, 5, true, CURRENT_TIMESTAMP)",
        "INSERT INTO user_configs (id, user_id, plan_id, uuid, alter_id, protocol, status, kind, created_at)"
        " VALUES (1, 1, 1, 'u', 0, 'vless', 'active', 'full', CURRENT_TIMESTAMP)",
        "INSERT INTO wallet_entries (id, user_id, amount_cents, reason, actor_type, actor_name, config_id, created_at)"
        " VALUES (1, 1, -5, 'renewal', 'system', 'system', 1, CURRENT_TIMESTAMP)",
    ]
    with scratch_engine.begin() as connection:
        for statement in rows:
            connection.execute(text(statement))
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        assert connection.execute(text("SELECT auto_renew, auto_renew_plan_id FROM user_configs")).one() == (
            False,
            None,
        )
        assert connection.execute(text("SELECT config_id FROM wallet_entries")).scalar() == 1
        connection.execute(text("UPDATE user_configs SET auto_renew = true, auto_renew_plan_id = 1"))
    insert = (
        "INSERT INTO auto_renewals (config_id, period_expires_at, outcome, reason, entry_id, attempts, created_at,"
        " updated_at) VALUES (1, :period, :outcome, :reason, :entry, :attempts, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    first, second = "2026-12-08 00:00:00+00:00", "2027-01-07 00:00:00+00:00"
    renewed = {"period": first, "outcome": "renewed", "reason": None, "entry": 1, "attempts": 1}
    failed = {"period": second, "outcome": "failed", "reason": "insufficient_balance", "entry": None, "attempts": 3}
    with scratch_engine.begin() as connection:
        connection.execute(text(insert), renewed)
        connection.execute(text(insert), failed)
    refused = [
        {**renewed, "outcome": "failed"},  # the same period twice
        {**renewed, "period": "2027-02-06 00:00:00+00:00", "reason": "insufficient_balance"},  # renewed, with a reason
        {**failed, "period": "2027-03-08 00:00:00+00:00", "reason": None},  # a failure without one
        {**failed, "period": "2027-04-07 00:00:00+00:00", "outcome": "skipped"},
        {**failed, "period": "2027-05-07 00:00:00+00:00", "attempts": 0},
    ]
    for values in refused:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(insert), values)
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text("UPDATE user_configs SET auto_renew_plan_id = 99"))
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO notifications (user_id, audience, kind, dedupe_key, payload, created_at)"
                " VALUES (1, 'user', 'auto_renew_failed', 'k', '{}', CURRENT_TIMESTAMP)"
            )
        )
    migrate.downgrade(scratch_engine, "0008")
    assert "auto_renewals" not in user_tables(scratch_engine)
    assert "auto_renew" not in {column["name"] for column in inspect(scratch_engine).get_columns("user_configs")}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notifications")).scalar() == 0
        assert connection.execute(text("SELECT id, config_id FROM wallet_entries")).all() == [(1, 1)]
        assert connection.execute(text("SELECT count(*) FROM user_configs")).scalar() == 1


def test_the_discount_schema_refuses_what_a_code_never_is(scratch_engine):
    """0009: a code is upper-case and unique, takes a percent (1-100) or an amount off, never both; a use takes
    off at most its price, belongs to one order, and a used code cannot be deleted; a free order (amount 0)
    may wait for an admin with no automatic acceptance, a paid one may not."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO plans (id, name, location_tag, duration_days, max_devices, data_limit_mb,"
                " is_constant_ip, price_cents, is_active, created_at)"
                " VALUES (1, 'p', 'x', 1, 1, 1, false, 500, true, CURRENT_TIMESTAMP)"
            )
        )
    code = (
        "INSERT INTO discount_codes (code, percent_off, amount_off_cents, plan_id, max_uses, max_uses_per_user,"
        " is_active, created_at) VALUES (:code, :percent, :amount, :plan, :uses, :per_user, true, CURRENT_TIMESTAMP)"
    )
    good = {"code": "SAVE10", "percent": 10, "amount": None, "plan": None, "uses": None, "per_user": 1}
    with scratch_engine.begin() as connection:
        connection.execute(text(code), good)
        connection.execute(text(code), {**good, "code": "FIXED", "percent": None, "amount": 100, "plan": 1})
    refused = [
        {**good},  # the same code again
        {**good, "code": "save10b"},  # lower case
        {**good, "code": "BOTH", "amount": 100},
        {**good, "code": "NONE", "percent": None},
        {**good, "code": "ZERO", "percent": 0},
        {**good, "code": "MORE", "percent": 101},
        {**good, "code": "NEGATIVE", "percent": None, "amount": -1},
        {**good, "code": "NOUSES", "uses": 0},
        {**good, "code": "NOUSER", "per_user": 0},
        {**good, "code": "NOPLAN", "plan": 99},
    ]
    for values in refused:
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(code), values)
    payment = (
        "INSERT INTO payments (id, user_id, plan_id, purpose, amount_cents, status, evidence_file_id, auto_accept_at,"
        " created_at) VALUES (:id, 1, 1, 'purchase', :amount, 'pending', :evidence, :auto, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(payment), {"id": 1, "amount": 0, "evidence": "free", "auto": None})
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(payment), {"id": 2, "amount": 450, "evidence": "paid", "auto": None})
    use = (
        "INSERT INTO discount_redemptions (code_id, user_id, payment_id, wallet_entry_id, price_cents,"
        " amount_off_cents, created_at) VALUES (1, 1, :payment, :entry, 500, :off, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(use), {"payment": 1, "entry": None, "off": 50})
        connection.execute(
            text(
                "INSERT INTO wallet_entries (id, user_id, amount_cents, reason, actor_type, actor_name, created_at)"
                " VALUES (1, 1, -450, 'purchase', 'bot', 'shopbot', CURRENT_TIMESTAMP)"
            )
        )
    for values in (
        {"payment": 1, "entry": None, "off": 50},  # the same payment twice
        {"payment": None, "entry": 1, "off": 501},  # more than the price
        {"payment": None, "entry": 1, "off": -1},
    ):
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(use), values)
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text("DELETE FROM discount_codes WHERE code = 'SAVE10'"))  # it was used
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text("DELETE FROM plans"))  # a code names it
    migrate.downgrade(scratch_engine, "0008")  # the free order waiting for an admin keeps waiting
    with scratch_engine.connect() as connection:
        waiting = connection.execute(text("SELECT auto_accept_at FROM payments")).scalar()
        assert str(waiting).startswith("9999-12-31")


def test_the_review_schema_keeps_reason_codes_on_rejections_and_tells_admins_of_decisions(scratch_engine):
    """0014: a rejection may carry a known reason code (only a rejection), the admins' payment_decided
    notifications have their kind; downgrading keeps a code-only rejection's reason as its note."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
    insert = (
        "INSERT INTO payments (id, user_id, purpose, amount_cents, status, evidence_file_id, review_note,"
        " review_reason_code, created_at)"
        " VALUES (:id, 1, 'topup', 5, :status, :evidence, :note, :code, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        for number, (status, note, code) in enumerate(
            [("rejected", None, "fake_receipt"), ("rejected", "typed", "wrong_amount"), ("approved", None, None)],
            start=1,
        ):
            values = {"id": number, "status": status, "evidence": f"ok-{number}", "note": note, "code": code}
            connection.execute(text(insert), values)
        connection.execute(
            text(
                "INSERT INTO notifications (audience, kind, dedupe_key, payload, created_at)"
                " VALUES ('admins', 'payment_decided', 'payment_decided:payment-1', '{}', CURRENT_TIMESTAMP)"
            )
        )
    for number, (status, code) in enumerate([("rejected", "ugly"), ("pending", "unreadable"), ("approved", "x")]):
        values = {"id": 10 + number, "status": status, "evidence": f"bad-{number}", "note": None, "code": code}
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(insert), values)
    migrate.downgrade(scratch_engine, "0009")  # 0014 follows 0009 in the chain
    assert "review_reason_code" not in {column["name"] for column in inspect(scratch_engine).get_columns("payments")}
    with scratch_engine.connect() as connection:
        notes = connection.execute(text("SELECT id, review_note FROM payments ORDER BY id")).all()
        assert notes == [(1, "fake_receipt"), (2, "typed"), (3, None)]
        assert connection.execute(text("SELECT count(*) FROM notifications")).scalar() == 0
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO notifications (audience, kind, dedupe_key, payload, created_at)"
                " VALUES ('admins', 'payment_decided', 'k', '{}', CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(scratch_engine)


def test_the_catalog_schema_keeps_location_tags_unique_and_plan_names_in_two_languages(scratch_engine):
    """0015: plans may have a Persian name; the location catalog has each tag once; downgrading drops both."""
    migrate.upgrade(scratch_engine)
    plan = (
        "INSERT INTO plans (name, name_fa, location_tag, duration_days, max_devices, data_limit_mb, is_constant_ip,"
        " price_cents, is_active, created_at) VALUES (:name, :name_fa, 'x', 1, 1, 1, false, 1, true, CURRENT_TIMESTAMP)"
    )
    location = (
        "INSERT INTO locations (tag, name, name_fa, created_at, updated_at)"
        " VALUES (:tag, 'Name', :name_fa, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(plan), {"name": "p1", "name_fa": "پلن"})
        connection.execute(text(plan), {"name": "p2", "name_fa": None})
        connection.execute(text(location), {"tag": "x", "name_fa": "ایکس"})
        connection.execute(text(location), {"tag": "y", "name_fa": None})
        assert connection.execute(text("SELECT sort_order FROM locations WHERE tag = 'y'")).scalar() == 0
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(location), {"tag": "x", "name_fa": None})
    migrate.downgrade(scratch_engine, "0014")
    assert "locations" not in user_tables(scratch_engine)
    assert "name_fa" not in {column["name"] for column in inspect(scratch_engine).get_columns("plans")}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM plans ORDER BY name")).scalars().all() == ["p1", "p2"]
    migrate.upgrade(scratch_engine)
    assert "locations" in user_tables(scratch_engine)


def test_the_devices_schema_keeps_one_block_per_config_and_address_and_the_device_limit_kind(scratch_engine):
    """0016: configs carry their device counts; device_blocks has each (config, address) once and goes with its
    config; notifications take the kind device_limit; downgrading drops all three."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO user_configs (id, user_id, uuid, alter_id, protocol, status, kind, used_bytes,"
                " auto_renew, created_at, devices_seen, devices_seen_at, devices_reset_at)"
                " VALUES (1, 1, 'u-1', 0, 'vless', 'active', 'trial', 0, false, CURRENT_TIMESTAMP, 3,"
                " CURRENT_TIMESTAMP, NULL)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO notifications (user_id, audience, kind, dedupe_key, payload, created_at)"
                " VALUES (1, 'user', 'device_limit', 'device_limit:cfg-1:1', '{}', CURRENT_TIMESTAMP)"
            )
        )
    block = (
        "INSERT INTO device_blocks (config_id, address, created_at, until)"
        " VALUES (1, :address, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(block), {"address": "2001:db8::1"})
        connection.execute(text(block), {"address": "198.51.100.7"})
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(block), {"address": "198.51.100.7"})
    with scratch_engine.begin() as connection:
        connection.execute(text("DELETE FROM user_configs WHERE id = 1"))
        assert connection.execute(text("SELECT count(*) FROM device_blocks")).scalar() == 0
    migrate.downgrade(scratch_engine, "0015")
    assert "device_blocks" not in user_tables(scratch_engine)
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("user_configs")}
    assert not columns & {"devices_seen", "devices_seen_at", "devices_reset_at"}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notifications")).scalar() == 0
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO notifications (user_id, audience, kind, dedupe_key, payload, created_at)"
                " VALUES (1, 'user', 'device_limit', 'k', '{}', CURRENT_TIMESTAMP)"
            )
        )
    with scratch_engine.begin() as connection:  # every earlier kind is still taken
        connection.execute(
            text(
                "INSERT INTO notifications (user_id, audience, kind, dedupe_key, payload, created_at)"
                " VALUES (1, 'user', 'auto_renew_failed', 'k2', '{}', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO notifications (audience, kind, dedupe_key, payload, created_at)"
                " VALUES ('admins', 'payment_decided', 'k3', '{}', CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(scratch_engine)
    assert "device_blocks" in user_tables(scratch_engine)


def test_the_proofs_schema_keeps_a_stored_proof_complete_and_its_kind_known(scratch_engine):
    """0019: payments name their proof file (name, hash, kind, size, upload time); a file without its facts or of
    another kind is refused, the hash is indexed; downgrading to 0016 drops the columns."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, telegram_id, language, is_admin, subscription_token, created_at)"
                " VALUES (1, 1, 'en', false, 't', CURRENT_TIMESTAMP)"
            )
        )
    payment = (
        "INSERT INTO payments (id, user_id, purpose, amount_cents, status, evidence_file_id, created_at, proof_path,"
        " proof_sha256, proof_mime, proof_size, proof_uploaded_at) VALUES (:id, 1, 'topup', 100, 'pending', :file,"
        " CURRENT_TIMESTAMP, :path, :sha, :mime, :size, :at)"
    )
    stored = {"path": "ab" * 16, "sha": "0" * 64, "mime": "image/png", "size": 10, "at": "2026-12-11 00:00:00+00"}
    with scratch_engine.begin() as connection:
        connection.execute(text(payment), {"id": 1, "file": "f1", **stored})
        # Deleted by the retention sweep: the hash and time stay, the file's facts go.
        connection.execute(text(payment), {"id": 2, "file": "f2", **stored, "path": None, "mime": None, "size": None})
        connection.execute(
            text(payment), {"id": 3, "file": "f3", "path": None, "sha": None, "mime": None, "size": None, "at": None}
        )
    for broken in (
        {**stored, "mime": "text/html"},
        {**stored, "sha": None, "at": None},
        {**stored, "size": 0},
        {**stored, "at": None},
    ):
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(payment), {"id": 9, "file": "f9", **broken})
    indexes = {index["name"] for index in inspect(scratch_engine).get_indexes("payments")}
    assert "ix_payments_proof_sha256" in indexes
    migrate.downgrade(scratch_engine, "0016")
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("payments")}
    assert not {name for name in columns if name.startswith("proof_")}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM payments")).scalar() == 3
    migrate.upgrade(scratch_engine)
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("payments")}
    assert {"proof_path", "proof_sha256", "proof_mime", "proof_size", "proof_uploaded_at"} <= columns


def test_the_webhooks_schema_keeps_deliveries_with_their_endpoint_and_known_events_and_statuses(scratch_engine):
    """0017: webhooks and their deliveries; a delivery names a known event and status and goes with its
    endpoint; downgrading to 0019 (the revision before it) drops both tables."""
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhooks (id, url, secret, events, is_active, created_at, updated_at)"
                " VALUES (1, 'https://hooks.example.com/x', 's', '[\"payment.created\"]', true,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    delivery = (
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, created_at)"
        " VALUES (1, :event, '{}', :status, 0, CURRENT_TIMESTAMP)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(delivery), {"event": "payment.created", "status": "pending"})
        connection.execute(text(delivery), {"event": "node.alert_cleared", "status": "failed"})
    for event, status in (("payment.refunded", "pending"), ("payment.created", "sent")):
        with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
            connection.execute(text(delivery), {"event": event, "status": status})
    with scratch_engine.begin() as connection:
        connection.execute(text("DELETE FROM webhooks WHERE id = 1"))
        assert connection.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar() == 0
    migrate.downgrade(scratch_engine, "0019")
    assert not {"webhooks", "webhook_deliveries"} & user_tables(scratch_engine)
    assert "device_blocks" in user_tables(scratch_engine)
    migrate.upgrade(scratch_engine)
    assert {"webhooks", "webhook_deliveries"} <= user_tables(scratch_engine)


def test_the_console_schema_keeps_totp_on_only_with_a_secret(scratch_engine):
    """0018: admins carry an optional TOTP secret and when two-factor was turned on (never on without a
    secret); downgrading drops both and keeps the admins."""
    migrate.upgrade(scratch_engine)
    insert = (
        "INSERT INTO admins (username, password_hash, created_at, totp_secret, totp_enabled_at)"
        " VALUES (:name, 'h', CURRENT_TIMESTAMP, :secret, :enabled)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(insert), {"name": "a", "secret": None, "enabled": None})
        connection.execute(text(insert), {"name": "b", "secret": "JBSWY3DPEHPK3PXP", "enabled": None})
        connection.execute(text(insert), {"name": "c", "secret": "JBSWY3DPEHPK3PXP", "enabled": "2026-12-12"})
    with pytest.raises(IntegrityError), scratch_engine.begin() as connection:
        connection.execute(text(insert), {"name": "d", "secret": None, "enabled": "2026-12-12"})
    migrate.downgrade(scratch_engine, "0017")
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("admins")}
    assert not columns & {"totp_secret", "totp_enabled_at"}
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM admins")).scalar() == 3
    migrate.upgrade(scratch_engine)
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("admins")}
    assert {"totp_secret", "totp_enabled_at"} <= columns


def metric_indexes(engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("node_metrics")}


def test_the_node_row_keeps_its_newest_heartbeat_filled_from_the_history(scratch_engine):
    """0023: the upgrade copies each node's newest node_metrics row onto it (a node without one stays NULL) and
    drops the index that found that row; downgrading drops the columns, makes the index again and keeps every
    metric row."""
    migrate.upgrade(scratch_engine, "0021")
    node = (
        "INSERT INTO nodes (id, name, region, location_tag, status, core, capacity_score, client_id, jwt_secret,"
        " desired_revision, applied_revision, created_at) VALUES (:id, :name, 'r', 't', 'active', 'xray', 1,"
        " :name, 'h', 0, 0, CURRENT_TIMESTAMP)"
    )
    metric = (
        "INSERT INTO node_metrics (id, node_id, cpu, mem, bandwidth_in, bandwidth_out, latency_ms, timestamp)"
        " VALUES (:id, :node, :cpu, 40, :id, 20, :latency, :at)"
    )
    with scratch_engine.begin() as connection:
        connection.execute(text(node), [{"id": 1, "name": "seen"}, {"id": 2, "name": "never"}])
        connection.execute(
            text(metric),
            [
                {"id": 7, "node": 1, "cpu": 10.5, "latency": 3.25, "at": "2026-12-06 08:00:00"},
                {"id": 9, "node": 1, "cpu": 77.25, "latency": None, "at": "2026-12-06 08:01:00"},
            ],
        )
    migrate.upgrade(scratch_engine)
    read = "SELECT id, last_cpu, last_mem, last_bandwidth_in, last_latency_ms, last_metrics_at FROM nodes ORDER BY id"
    with scratch_engine.connect() as connection:
        (seen, never) = connection.execute(text(read)).all()
    assert seen[:5] == (1, 77.25, 40.0, 9, None) and seen[5] is not None
    assert never == (2, None, None, None, None, None)
    assert "ix_node_metrics_node_id_id" not in metric_indexes(scratch_engine)  # nothing looks the newest row up
    migrate.downgrade(scratch_engine, "0021")
    columns = {column["name"] for column in inspect(scratch_engine).get_columns("nodes")}
    assert not {"last_cpu", "last_metrics_at"} & columns
    assert "ix_node_metrics_node_id_id" in metric_indexes(scratch_engine)
    with scratch_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM node_metrics")).scalar() == 2
