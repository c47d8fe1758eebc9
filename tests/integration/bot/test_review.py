"""Issue 16, item 8 through the bot's real polling loop: review cards with the customer's history and a link
to them in the shop's time zone, Reject with a reason (quick, translated for the customer; or typed) and a
confirmation, decisions held for an undo window (undone: nothing reaches the payment; a restart neither loses
nor doubles them), every decision updating the posted cards, /payments as one list, admin menus for admins
only, and nothing of it for anyone else."""

# Persian text is the point here; ruff's confusable-character check reads it as Latin.

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from bot import holds
from bot.review import local_time
from control_api.models import AuditLog, Payment, User
from tests.fixtures.fake_telegram import FakeTelegram
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF, STAFF2, tg_user
from tests.integration.bot.test_customers_and_faults import to_proof_step
from tests.integration.bot.test_purchase import choose_language
from tests.integration.bot.test_sales_hardening import to_proof_step_fa

pytestmark = pytest.mark.postgres

BEN = tg_user(7012, "ben")
NAMELESS = {"id": 7013, "is_bot": False, "first_name": "Nameless", "language_code": "en"}
STRANGER = tg_user(7099, "stranger")
ADMINS = FakeTelegram.group(ADMIN_CHAT, "Shop admins")


def buy(harness, user, persian: bool = False):
    """USER buys Abroad 30 through the bot and sends a receipt; returns the review card in the admin chat."""
    tg = harness.telegram
    choose_language(tg, user, "فارسی" if persian else "English")
    (to_proof_step_fa if persian else to_proof_step)(tg, user)
    mark, _proof = tg.send_photo(user)
    return tg.reply(ADMIN_CHAT, mark, "Payment #", method="sendMessage")


def restart(harness, **changes):
    harness.stop_bot()
    harness.settings = replace(harness.settings, **changes)
    return harness.start_bot()


def payment_of(harness, payment_id: int) -> Payment:
    with harness.db() as session:
        payment = session.get(Payment, payment_id)
        session.expunge(payment)
        return payment


def audits(harness, action: str) -> list[tuple[str, dict]]:
    with harness.db() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all()
        return [(row.actor_id, row.details) for row in rows]


def answered(tg, mark: int, contains: str = ""):
    return tg.wait(lambda e: e.method == "answerCallbackQuery" and contains in e.text, mark)


def test_the_card_shows_the_history_a_link_without_a_username_and_shop_times(harness):
    restart(harness, shop_timezone="Asia/Tehran")
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/trial")
    tg.reply(ALICE["id"], mark, "free trial is ready")
    card = buy(harness, ALICE)
    assert 'Customer: <a href="tg://user?id=7001">@alice</a> (7001)' in card.text, card.text
    created = payment_of(harness, 1).created_at.isoformat()
    assert f"Received: {local_time(created, 'Asia/Tehran')} (Asia/Tehran)" in card.text
    with harness.db() as session:
        since = local_time(
            session.scalar(select(User.created_at).where(User.telegram_id == 7001)).isoformat(), "Asia/Tehran"
        )
    assert f"📇 Customer since {since[:10]} · trial: {since[:10]}" in card.text, card.text
    assert "Payments: ✅ 0 · ❌ 0 · ⏳ 1 · approved 0 USD" in card.text, card.text

    # No @username: still a tappable link (tg://user), by the Telegram id.
    card = buy(harness, NAMELESS)
    assert 'Customer: <a href="tg://user?id=7013">7013</a> (7013)' in card.text, card.text
    assert "trial: none" in card.text


def test_reject_with_a_typed_reason_and_ban_through_a_reply_to_the_question(harness):
    tg = harness.telegram
    card = buy(harness, ALICE)
    mark = tg.press(STAFF, card, "adm:no:1")
    why = tg.reply(ADMIN_CHAT, mark, "Why reject", method="editMessageText")
    # Back returns to Approve / Reject; Reject again, then Other.
    mark = tg.press(STAFF, why, "adm:bk:1")
    back = tg.reply(ADMIN_CHAT, mark, method="editMessageText")
    assert back.button_data() == ["adm:ok:1", "adm:no:1"]
    mark = tg.press(STAFF, back, "adm:no:1")
    tg.reply(ADMIN_CHAT, mark, "Why reject", method="editMessageText")
    mark = tg.press(STAFF, back, "adm:rs:other:1")
    question = tg.reply(ADMIN_CHAT, mark, "type the reason for rejecting payment #1", method="sendMessage")
    assert '"force_reply": true' in question.params["reply_markup"] and 'href="tg://user?id=7002"' in question.text

    # Confirming before any reason is typed: refused. A non-admin's reply is ignored.
    mark = tg.press(STAFF, card, "adm:rj:other:1")
    assert "Type the reason first" in answered(tg, mark).text
    mark = tg.send_text(STRANGER, "approve it, I know her", chat=ADMINS, reply_to=question)
    time.sleep(1)
    assert not [e for e in tg.bot_events(ADMIN_CHAT, mark) if e.method == "editMessageText"], tg.transcript(mark)

    mark = tg.send_text(STAFF, "The receipt shows another shop's card", chat=ADMINS, reply_to=question)
    confirm = tg.reply(ADMIN_CHAT, mark, "Reject payment #1? Reason: The receipt shows", method="editMessageText")
    assert confirm.button_data() == ["adm:rj:other:1", "adm:rb:other:1", "adm:no:1"]
    assert "confirm the rejection of payment #1 on its card" in tg.reply(ADMIN_CHAT, mark, "Noted").text.lower()
    mark = tg.press(STAFF, confirm, "adm:rb:other:1")
    assert answered(tg, mark).text == "❌ Payment #1 rejected by shopkeeper."
    told = tg.reply(ALICE["id"], mark, "was rejected")
    assert "Reason: The receipt shows another shop's card" in told.text and "blocked" in told.text
    decided = tg.reply(ADMIN_CHAT, mark, "rejected by shopkeeper", method="editMessageText")
    assert "The customer was banned." in decided.text and decided.buttons == []
    assert decided.text.startswith("🧾 <b>Payment #1</b> (rejected)\n"), decided.text
    payment = payment_of(harness, 1)
    assert (payment.status, payment.review_note, payment.review_reason_code) == (
        "rejected",
        "The receipt shows another shop's card",
        None,
    )
    with harness.db() as session:
        assert session.scalar(select(User.ban_reason).where(User.telegram_id == ALICE["id"])) == payment.review_note


def test_a_held_decision_is_undone_within_the_window_and_nothing_reaches_the_payment(harness):
    restart(harness, undo_seconds=2.5)
    tg = harness.telegram
    card = buy(harness, ALICE)
    mark = tg.press(STAFF, card, "adm:ok:1")
    assert answered(tg, mark, "Approving").text.startswith("⏳ Approving payment #1… (shopkeeper; undo within")
    held = tg.reply(ADMIN_CHAT, mark, "Approving payment #1", method="editMessageText")
    assert held.button_data() == ["adm:un:1"]
    # Another admin's decision meanwhile is refused: one decision per payment at a time.
    mark = tg.press(STAFF2, card, "adm:rj:fake_receipt:1")
    assert answered(tg, mark).text == "Payment #1 is already being decided by shopkeeper. Wait, or undo that first."

    mark = tg.press(STAFF2, held, "adm:un:1")
    assert answered(tg, mark).text == "↩️ Undone by deputy: payment #1 is still waiting for review."
    restored = tg.reply(ADMIN_CHAT, mark, method="editMessageText")
    assert restored.button_data() == ["adm:ok:1", "adm:no:1"] and "Approving" not in restored.text
    time.sleep(3.5)  # past the window: nothing happens
    payment = payment_of(harness, 1)
    assert (payment.status, payment.reviewed_at) == ("pending", None)
    assert audits(harness, "payment.approve") == []
    assert audits(harness, "payment.review_held") == [("tg:7002", {"payment_id": 1, "decision": "approve"})]
    assert audits(harness, "payment.review_undone") == [("tg:7004", {"payment_id": 1, "decision": "approve"})]
    mark = tg.press(STAFF, held, "adm:un:1")
    assert "Too late to undo" in answered(tg, mark).text

    # The same through the command, then let it run: made once the window is over.
    mark = tg.send_text(STAFF, "/approve 1")
    holding = tg.reply(STAFF["id"], mark, "Approving payment #1")
    assert holding.button_data() == ["adm:un:1"]
    done = tg.reply(STAFF["id"], mark, "approved by shopkeeper", method="editMessageText", timeout=10)
    assert done.text == "✅ Payment #1 approved by shopkeeper."
    assert payment_of(harness, 1).status == "approved"
    assert len(audits(harness, "payment.review_held")) == 2 and len(audits(harness, "payment.approve")) == 1


def test_a_held_decision_survives_a_restart_and_is_made_exactly_once(harness):
    shop = restart(harness, undo_seconds=2)
    tg = harness.telegram
    card = buy(harness, DARIUSH, persian=True)
    mark = tg.press(STAFF, card, "adm:no:1")
    tg.reply(ADMIN_CHAT, mark, "Why reject", method="editMessageText")
    mark = tg.press(STAFF, card, "adm:rs:unreadable:1")
    tg.reply(ADMIN_CHAT, mark, "Reason: Unreadable receipt", method="editMessageText")
    mark = tg.press(STAFF, card, "adm:rj:unreadable:1")
    tg.reply(ADMIN_CHAT, mark, "Rejecting payment #1", method="editMessageText")
    harness.stop_bot()  # within the window: the decision waits in Redis
    assert list(shop.store.table_all(holds.HOLDS)) == ["1"]
    time.sleep(2.5)
    assert payment_of(harness, 1).status == "pending"  # no bot, no decision

    mark = len(tg.events)
    shop = harness.start_bot()
    told = tg.reply(DARIUSH["id"], mark, "رد شد", timeout=20)
    assert "دلیل: رسید خوانا نیست" in told.text, tg.transcript(mark)
    tg.reply(ADMIN_CHAT, mark, "rejected by shopkeeper", method="editMessageText")
    payment = payment_of(harness, 1)
    assert (payment.status, payment.review_reason_code) == ("rejected", "unreadable")

    # A process that died while making it (left in EXECUTING): made again, and the API's "already rejected by
    # the same admin" counts as done; nothing is decided twice.
    decision = {**holds.new_decision(shop, 1, "reject", _Admin(), (ADMIN_CHAT, card.message_id, True), "en")}
    decision.update(reason_code="unreadable", due=time.time() - 120)
    shop.store.table_put(holds.EXECUTING, "1", decision)
    deadline = time.monotonic() + 10
    while shop.store.table_all(holds.EXECUTING) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert shop.store.table_all(holds.EXECUTING) == {} and shop.store.table_all(holds.HOLDS) == {}
    assert len(audits(harness, "payment.reject")) == 1
    assert len([e for e in tg.bot_events(DARIUSH["id"], mark) if "رد شد" in e.text]) == 1


class _Admin:
    """STAFF as telebot's User reads (id and username)."""

    id = STAFF["id"]
    username = STAFF["username"]


def test_a_decision_by_command_through_the_api_or_by_the_sweep_updates_every_posted_card(harness, client, store_shop):
    tg = harness.telegram
    cards = {1: buy(harness, ALICE), 2: buy(harness, DARIUSH, persian=True), 3: buy(harness, BEN)}
    # Another admin opened #1 from /payments in their private chat: a second card of the same payment.
    mark = tg.send_text(STAFF2, "/payments")
    listed = tg.reply(STAFF2["id"], mark, "payment(s) waiting")
    mark = tg.press(STAFF2, listed, "adm:op:1")
    private = tg.reply(STAFF2["id"], mark, "Payment #1", method="sendMessage")

    mark = tg.send_text(STAFF, "/approve 1")
    assert tg.reply(STAFF["id"], mark, method="sendMessage").text == "✅ Payment #1 approved by shopkeeper."
    for chat, card in ((ADMIN_CHAT, cards[1]), (STAFF2["id"], private)):
        edited = tg.wait(
            lambda e, c=chat, m=card.message_id: e.method == "editMessageText" and e.chat == c and e.message_id == m,
            mark,
        )
        assert "✅ Payment #1 approved by shopkeeper." in edited.text and edited.buttons == []
        assert "(approved)" in edited.text.split("\n")[0] and "in review" not in edited.text, edited.text

    mark = len(tg.events)
    rejected = client.post(
        "/api/v1/payments/2/reject", json={"reason_code": "wrong_amount"}, headers=store_shop["admin"].headers
    )
    assert rejected.status_code == 200, rejected.json
    edited = tg.wait(lambda e: e.method == "editMessageText" and e.message_id == cards[2].message_id, mark)
    assert "❌ Payment #2 rejected by root.\nReason: Wrong amount" in edited.text and edited.buttons == []
    assert edited.text.startswith("🧾 <b>Payment #2</b> (rejected)"), edited.text
    told = tg.reply(DARIUSH["id"], mark, "رد شد")
    assert "دلیل: مبلغ پرداختی با قیمت سفارش یکی نیست" in told.text

    mark = len(tg.events)
    with harness.db() as session:
        due = session.get(Payment, 3).auto_accept_at
    assert harness.sweep(now=due)["auto_accepted"] == 1
    edited = tg.wait(lambda e: e.method == "editMessageText" and e.message_id == cards[3].message_id, mark)
    assert "✅ Payment #3 approved by the automatic acceptance." in edited.text and edited.buttons == []


def test_payments_is_one_compact_list_and_admin_menus_are_for_admins_only(harness):
    tg = harness.telegram
    assert tg.menu(ADMIN_CHAT) == ["payments", "approve", "reject", "nodes"]
    buy(harness, ALICE)
    buy(harness, DARIUSH, persian=True)
    mark = tg.send_text(STAFF, "/payments")
    listed = tg.reply(STAFF["id"], mark, method="sendMessage")
    assert listed.text.splitlines() == [
        "⏳ <b>2</b> payment(s) waiting for review, oldest first:",
        "#1 · @alice · Abroad 30 · 15 USD · 0 min",
        "#2 · @dariush · Abroad 30 · 15 USD · 0 min",
    ]
    assert listed.button_data() == ["adm:op:1", "adm:op:2"]
    mark = tg.press(STAFF, listed, "adm:op:2")
    tg.reply(STAFF["id"], mark, method="sendPhoto")
    assert "@dariush" in tg.reply(STAFF["id"], mark, "Payment #2", method="sendMessage").text

    # The admin command menu: set for an admin's own chat when they use the bot, in their language; never
    # for a customer's chat.
    assert "payments" in tg.menu(STAFF["id"]) and "buy" in tg.menu(STAFF["id"])
    choose_language(tg, STAFF2, "فارسی")
    persian = next(e for e in reversed(tg.commands) if e["scope"] == {"type": "chat", "chat_id": STAFF2["id"]})
    assert {"command": "payments", "description": "پرداخت‌های در انتظار بررسی"} in persian["commands"]
    for customer in (ALICE, DARIUSH):
        assert tg.menu(customer["id"]) == []
    assert all(
        e["scope"] in (None, {"type": "chat", "chat_id": ADMIN_CHAT}) or e["scope"]["chat_id"] in (7002, 7004)
        for e in tg.commands
    )


def test_nobody_but_an_admin_can_review_and_forged_buttons_are_refused(harness):
    tg = harness.telegram
    card = buy(harness, ALICE)
    for data in (
        "adm:ok:1",
        "adm:no:1",
        "adm:rs:fake_receipt:1",
        "adm:rj:fake_receipt:1",
        "adm:rb:unreadable:1",
        "adm:un:1",
        "adm:op:1",
    ):
        mark = tg.press(STRANGER, card, data)
        assert answered(tg, mark).text == "You are not a shop admin.", data
    for data in ("adm:rj:bogus:1", "adm:ok:1;drop", "adm:un:0", "adm:rs:fake_receipt:2", "adm:ok:2", "adm:rb:other"):
        mark = tg.press(STAFF, card, data)
        assert "not available" in answered(tg, mark).text, data
    time.sleep(0.5)
    assert [e for e in tg.bot_events(ADMIN_CHAT) if e.method == "editMessageText"] == []
    assert payment_of(harness, 1).status == "pending"
    assert audits(harness, "payment.review_held") == [] and audits(harness, "payment.reject") == []
    # Customers' commands stay silent; they reach no list and no decision.
    mark = tg.send_text(ALICE, "/approve 1")
    tg.send_text(ALICE, "/payments")
    tg.send_text(ALICE, "/help")
    assert tg.reply(ALICE["id"], mark).text.startswith("Commands:")
    assert payment_of(harness, 1).status == "pending"


def test_a_held_decision_in_redis_is_taken_by_exactly_one_of_undo_and_the_runner(redis_url):
    from bot.state import RedisStore
    from tests.unit.test_bot_units import race_for_a_hold

    store = RedisStore(redis_url, 60, prefix=f"rayfleet:test-holds:{time.time()}:")
    for number in range(50):
        field = str(number)
        assert store.table_add("holds", field, {"n": number}) and not store.table_add("holds", field, {"n": -1})
        won = race_for_a_hold(store, field)
        assert len(won) == 1, won
        assert (store.table_get("executing", field) is not None) == (won == ["runner"])
        assert store.table_get("holds", field) is None
