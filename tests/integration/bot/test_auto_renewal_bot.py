"""Issue 16, item 5 as the customer sees it through the real bot loop: the "Auto-renew" button under a config in
/configs, an auto-renewal the balance did not cover told with a "Top up" button that starts the top-up (the
receipt becomes a top-up payment in the admins' channel), and, once the top-up is credited, the renewal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from control_api.models import Payment, User, UserConfig
from control_api.services.lifecycle import run_lifecycle
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

LRM = "\u200e"


def _customer_with_a_config(harness, client, store_shop, customer, language, balance):
    """CUSTOMER (in LANGUAGE) with a paid config of the 30-day plan (1500) and BALANCE in their wallet."""
    choose_language(harness.telegram, customer, language)
    admin = store_shop["admin"].headers
    with harness.db() as session:
        user_id = session.scalar(select(User.id).where(User.telegram_id == customer["id"]))
    plan_id = next(
        p["id"] for p in client.get("/api/v1/plans", headers=admin).json["items"] if p["name"] == "Abroad 30"
    )
    config = client.post(f"/api/v1/users/{user_id}/configs", json={"plan_id": plan_id}, headers=admin)
    assert config.status_code == 201, config.json
    if balance:
        credit = {"amount_cents": balance, "reason": "test money"}
        assert client.post(f"/api/v1/users/{user_id}/wallet/adjust", json=credit, headers=admin).status_code == 201
    return user_id, config.json


def _sweep(harness, when):
    """The sales sweep at WHEN with the API's settings (auto-renewal needs them), as the cron runs it."""
    with harness.db() as session:
        settings = harness.app.extensions["rayfleet.settings"]
        return run_lifecycle(session, lambda _node_id: None, now=when, settings=settings)


def _expiry(harness, config_id):
    with harness.db() as session:
        return session.get(UserConfig, config_id).expires_at


@pytest.mark.parametrize(
    ("customer", "language", "failed", "ask", "received", "renewed"),
    [
        (
            ALICE,
            "English",
            "could not be renewed",
            "Top up your balance",
            "waiting for review",
            "renewed automatically",
        ),
        (DARIUSH, "فارسی", "تمدید نشد", "شارژ کیف پول", "در انتظار بررسی", "به طور خودکار"),
    ],
)
def test_a_short_balance_is_told_with_a_top_up_button_that_starts_the_top_up(
    harness, client, store_shop, customer, language, failed, ask, received, renewed
):
    tg = harness.telegram
    user_id, config = _customer_with_a_config(harness, client, store_shop, customer, language, balance=1000)
    opted = client.put(
        f"/api/v1/configs/{config['id']}/auto-renewal",
        json={"user_id": user_id, "enabled": True},
        headers=store_shop["bot"].headers,
    )
    assert opted.status_code == 200, opted.json
    due = _expiry(harness, config["id"]) - timedelta(hours=12)

    mark = len(tg.events)
    assert _sweep(harness, due)["auto_renew_failed"] == 1
    note = tg.reply(customer["id"], mark, failed, timeout=20)
    plain = note.text.replace(LRM, "")
    assert f"#{config['id']}" in plain and "5 USD" in plain and "10 USD" in plain, tg.transcript(mark)
    assert note.button_data() == ["top:500"], note.buttons
    assert "5 USD" in note.buttons[0][0]["text"]
    assert _sweep(harness, due + timedelta(minutes=5))["auto_renew_failed"] == 1  # tried again, told once

    mark = tg.press(customer, note, "top:500")
    asked = tg.reply(customer["id"], mark, ask)
    assert "5 USD" in asked.text.replace(LRM, "") and "6037-9911-2233-4455" in asked.text, tg.transcript(mark)
    mark, _file_id = tg.send_photo(customer)
    told = tg.reply(customer["id"], mark, received)
    with harness.db() as session:
        payment = session.scalars(select(Payment).where(Payment.user_id == user_id)).one()
        assert (payment.purpose, payment.amount_cents, payment.status) == ("topup", 500, "pending")
    assert f"#{payment.id}" in told.text.replace(LRM, "")
    card = tg.reply(ADMIN_CHAT, mark, f"Payment #{payment.id}")
    assert "wallet top-up" in card.text and "5 USD" in card.text, tg.transcript(mark)

    # The admin credits it; the next sweep renews the config from the balance, and says so.
    approved = client.post(f"/api/v1/payments/{payment.id}/approve", json={}, headers=store_shop["admin"].headers)
    assert approved.status_code == 200, approved.json
    before = _expiry(harness, config["id"])
    mark = len(tg.events)
    assert _sweep(harness, due + timedelta(hours=1))["auto_renewed"] == 1
    done = tg.reply(customer["id"], mark, renewed, timeout=20)
    assert "15 USD" in done.text.replace(LRM, "") and done.buttons == []
    assert _expiry(harness, config["id"]) == before + timedelta(days=30)


def test_the_configs_view_turns_auto_renewal_on_and_off(harness, client, store_shop):
    tg = harness.telegram
    _user_id, config = _customer_with_a_config(harness, client, store_shop, ALICE, "English", balance=0)
    mark = tg.send_text(ALICE, "/configs")
    card = tg.reply(ALICE["id"], mark, f"Config #{config['id']}")
    # The toggle on its own row, under the Renew / Add data buttons (handlers/renewals.py), which it keeps, and
    # above the QR and Subscription buttons (bot/config_cards.py), which it keeps too.
    extend = [f"ext:renew:{config['id']}", f"ext:data:{config['id']}"]
    view = [f"cfg:qr:{config['id']}", f"cfg:sub:{config['id']}"]
    assert card.button_data() == [*extend, f"ar:1:{config['id']}", *view]
    assert "Auto-renew: off" in card.buttons[-2][0]["text"]

    mark = tg.press(ALICE, card, f"ar:1:{config['id']}")
    toast = tg.wait(lambda e: e.method == "answerCallbackQuery", mark)
    assert "Auto-renewal is on" in toast.text
    edited = tg.reply(ALICE["id"], mark, method="editMessageReplyMarkup")
    assert edited.button_data() == [*extend, f"ar:0:{config['id']}", *view]
    assert "Auto-renew: on" in edited.buttons[-2][0]["text"]
    view = client.get(f"/api/v1/configs/{config['id']}", headers=store_shop["admin"].headers).json
    assert (view["auto_renew"], view["auto_renew_plan_id"]) == (True, None)

    mark = tg.press(ALICE, edited, f"ar:0:{config['id']}")
    assert "off" in tg.wait(lambda e: e.method == "answerCallbackQuery", mark).text
    tg.reply(ALICE["id"], mark, method="editMessageReplyMarkup")
    assert (
        client.get(f"/api/v1/configs/{config['id']}", headers=store_shop["admin"].headers).json["auto_renew"] is False
    )

    # A tampered or stale press changes nothing; a trial has no button.
    mark = tg.press(ALICE, edited, f"ar:1:{config['id']}9")
    assert "not available" in tg.wait(lambda e: e.method == "answerCallbackQuery", mark).text
    mark = tg.send_text(ALICE, "🎁 Free trial")
    trial = tg.reply(ALICE["id"], mark, "(trial")
    assert trial.buttons == [], tg.transcript(mark)
