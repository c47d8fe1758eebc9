"""The one-payment-in-review limit under a race: ten receipts from one customer at the same moment give
one pending payment and nine `too_many_pending_payments`, on PostgreSQL and on the embedded SQLite
(which ignores SELECT ... FOR UPDATE, so the limit needs the user lock of services/wallet.py)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_api import migrate
from control_api.actors import Principal
from control_api.database import make_engine
from control_api.errors import Conflict
from control_api.models import Node, Payment, Plan, User
from control_api.services import payments
from tests.conftest import make_settings

SENDERS = 10


def _shop(engine) -> int:
    with Session(engine) as session:
        user = User(telegram_id=4242, subscription_token="race")
        plan = Plan(
            name="p", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=100, price_cents=500
        )
        node = Node(name="n", region="eu", location_tag="abroad", status="active", client_id="c", secret_hash="h")
        session.add_all([user, plan, node])
        session.commit()
        return user.id, plan.id


def _race(engine, settings, user_id: int, plan_id: int) -> list[str]:
    bot = Principal("bot", 1, "shopbot")
    barrier = threading.Barrier(SENDERS)
    outcomes: list[str] = []

    def send(index: int) -> None:
        data = {
            "user_id": user_id,
            "plan_id": plan_id,
            "amount_cents": 500,
            "evidence_file_id": f"file-{index}",
            "evidence_unique_id": f"unique-{index}",
            "protocol": "vless",
        }
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                payments.create_payment(session, bot, settings, data, lambda _: None)
                outcomes.append("created")
            except Conflict as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _check(engine, settings) -> None:
    user_id, plan_id = _shop(engine)
    outcomes = _race(engine, settings, user_id, plan_id)
    assert sorted(outcomes) == ["created"] + ["too_many_pending_payments"] * (SENDERS - 1), outcomes
    with Session(engine) as session:
        pending = session.scalar(select(func.count()).select_from(Payment).where(Payment.status == "pending"))
    assert pending == 1


def test_ten_receipts_at_once_on_the_embedded_sqlite_give_one_payment(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        _check(engine, make_settings(url, max_pending_payments_per_user=1))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_ten_receipts_at_once_on_postgresql_give_one_payment(settings):
    engine = make_engine(settings.database_url)  # one connection per sender
    try:
        _check(engine, replace(settings, max_pending_payments_per_user=1))
    finally:
        engine.dispose()
