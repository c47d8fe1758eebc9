"""A full purchase through the real polling loop, in English and in Persian, then the admin's review."""

# Persian text and digits are the point here; ruff's confusable-character check reads them as Latin.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.i18n import LRM
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF, STAFF2, press_choices

pytestmark = pytest.mark.postgres


def labels(event) -> list[str]:
    return [b["text"] for row in event.buttons for b in row]


def choose_language(tg, user, label):
    """/start, and the language LABEL: on the first /start the bot asks; a customer it knows chooses through
    the 🌐 Language button (the language is asked once)."""
    mark = tg.send_text(user, "/start")
    first = tg.reply(user["id"], mark)
    if "Choose your language" not in first.text:
        mark = tg.send_text(user, "🌐 Language")
    menu = tg.reply(user["id"], mark, "Choose your language")
    mark = tg.press(user, menu, menu.button(label))
    return tg.reply(user["id"], mark, method="sendMessage")


def test_english_purchase_then_approval_by_button(harness):
    tg = harness.telegram
    begin = len(tg.events)
    welcome = choose_language(tg, ALICE, "English")
    assert "Welcome" in welcome.text and "🛒 Buy" in welcome.button_data()

    mark = tg.send_text(ALICE, "🛒 Buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    # Prices from the first step; one location has a server, so the location is chosen for her.
    assert labels(step) == ["Constant IP · 30 USD", "Dynamic IP · from 15 USD", "✖️ Cancel"]
    mark = tg.press(ALICE, step, step.button("Dynamic IP"))
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    assert "Dynamic IP · Abroad" in step.text
    assert labels(step) == ["30 days · 15 USD", "90 days · 40 USD", "📋 All plans", "« Back", "✖️ Cancel"]
    # 30 days abroad has one cap and one device count: straight to the summary, which shows every choice.
    mark = tg.press(ALICE, step, step.button("30 days"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    assert "Abroad 30" in summary.text and "15 USD" in summary.text
    assert "Location: Abroad" in summary.text and "Data: 10 GB" in summary.text and "Devices: 2" in summary.text

    mark = tg.press(ALICE, summary, summary.button("Confirm"))
    ask = tg.reply(ALICE["id"], mark, "send the receipt")
    assert "<code>6037-9911-2233-4455</code>" in ask.text

    mark = tg.send_text(ALICE, "I paid, trust me")
    tg.reply(ALICE["id"], mark, "photo or a document")
    assert harness.payments() == 0

    mark, proof_id = tg.send_photo(ALICE)
    received = tg.reply(ALICE["id"], mark, "TEMPORARY")
    assert "1 GB for 3 days" in received.text  # 10 % of 10 GB, stated as an amount
    card = tg.reply(ALICE["id"], mark, "vless://")
    assert "Subscription URL" in card.text and "/sub/" in card.text
    qr = tg.reply(ALICE["id"], mark, method="sendPhoto")
    assert tg.uploads[qr.file.split()[2]].startswith(b"\x89PNG")
    assert any(path.endswith(f"{proof_id}.jpg") for path in tg.downloads)  # the bot fetched the proof
    assert harness.payments() == 1

    proof = tg.reply(ADMIN_CHAT, mark, proof_id, method="sendPhoto")
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")
    assert "@alice" in review.text and review.button_data() == ["adm:ok:1", "adm:no:1"]
    assert proof.message_id < review.message_id

    mark = tg.press(STAFF, review, "adm:ok:1")
    answer = tg.wait(lambda e: e.method == "answerCallbackQuery" and "approved" in e.text, mark)
    assert answer.text == "✅ Payment #1 approved by shopkeeper."
    edited = tg.reply(ADMIN_CHAT, mark, "approved by shopkeeper", method="editMessageText")
    assert edited.buttons == []
    told = tg.reply(ALICE["id"], mark, "is approved")
    full = tg.reply(ALICE["id"], told_mark(tg, told), "(full,")
    assert "vless://" in full.text

    # Pressed again, by another admin: answered once, as already decided.
    mark = tg.press(STAFF2, review, "adm:ok:1")
    again = tg.wait(lambda e: e.method == "answerCallbackQuery", mark)
    assert again.text == "Already approved by shopkeeper."
    print("\n" + tg.transcript(begin))


def told_mark(tg, event) -> int:
    return tg.events.index(event)


def test_persian_purchase_with_a_document_and_persian_digits_then_rejection(harness):
    tg = harness.telegram
    begin = len(tg.events)
    welcome = choose_language(tg, DARIUSH, "فارسی")
    assert "خوش آمدید" in welcome.text and "🛒 خرید" in welcome.button_data()

    mark = tg.send_text(DARIUSH, "🛒 خرید")
    step = tg.reply(DARIUSH["id"], mark, "چه نوع سرویسی؟")
    mark = tg.press(DARIUSH, step, step.button("آی‌پی متغیر"))
    step = tg.reply(DARIUSH["id"], mark, "برای چه مدت؟", method="editMessageText")
    mark = tg.send_text(DARIUSH, "٩٠")  # Arabic-Indic digits: 90 days (one cap and device count follow)
    summary = tg.reply(DARIUSH["id"], mark, "سفارش شما", method="editMessageText")
    assert f"{LRM}40 USD{LRM}" in summary.text  # the price keeps its order inside RTL text
    mark = tg.press(DARIUSH, summary, summary.button("تأیید"))
    tg.reply(DARIUSH["id"], mark, "رسید")

    mark = tg.send_sticker(DARIUSH)
    tg.reply(DARIUSH["id"], mark, "عکس یا فایل")
    mark, proof_id = tg.send_document(DARIUSH)
    received = tg.reply(DARIUSH["id"], mark, "موقت")
    assert f"#{LRM}1{LRM}" in received.text
    tg.reply(DARIUSH["id"], mark, "vless://")
    assert any(path.endswith(proof_id) for path in tg.downloads)
    tg.reply(ADMIN_CHAT, mark, proof_id, method="sendDocument")
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")

    # Reject asks why (quick reasons, Back), then to confirm (Reject, Reject and ban, Back).
    mark = tg.press(STAFF, review, "adm:no:1")
    why = tg.reply(ADMIN_CHAT, mark, "Why reject payment #1?", method="editMessageText")
    assert why.button_data() == [
        "adm:rs:fake_receipt:1",
        "adm:rs:wrong_amount:1",
        "adm:rs:unreadable:1",
        "adm:rs:already_used:1",
        "adm:rs:other:1",
        "adm:bk:1",
    ]
    mark = tg.press(STAFF, review, "adm:rs:fake_receipt:1")
    confirm = tg.reply(ADMIN_CHAT, mark, "Reject payment #1? Reason: Fake receipt", method="editMessageText")
    assert confirm.button_data() == ["adm:rj:fake_receipt:1", "adm:rb:fake_receipt:1", "adm:no:1"]
    mark = tg.press(STAFF, review, "adm:rj:fake_receipt:1")
    tg.wait(lambda e: e.method == "answerCallbackQuery" and "rejected by shopkeeper" in e.text, mark)
    told = tg.reply(DARIUSH["id"], mark, "رد شد")
    assert f"#{LRM}1{LRM}" in told.text
    # The quick reason, in his language.
    assert "دلیل: رسید معتبر به نظر نمی‌رسد" in told.text, tg.transcript(mark)
    decided = tg.reply(ADMIN_CHAT, mark, "rejected by shopkeeper", method="editMessageText")
    assert "Reason: Fake receipt" in decided.text and decided.buttons == []
    print("\n" + tg.transcript(begin))


def test_the_language_is_asked_once_with_telegrams_as_the_default(harness):
    tg = harness.telegram
    newcomer = {**DARIUSH, "id": 7311, "username": "newcomer"}
    mark = tg.send_text(newcomer, "/start")
    assert "Choose your language" in tg.reply(newcomer["id"], mark).text
    # Not chosen yet: Telegram's language (fa) is already theirs.
    mark = tg.send_text(newcomer, "/help")
    assert tg.reply(newcomer["id"], mark).text.startswith("دستورها")
    mark = tg.send_text(newcomer, "/start")
    welcome = tg.reply(newcomer["id"], mark)
    assert "Choose your language" not in welcome.text and "خوش آمدید" in welcome.text
    assert [e.text for e in tg.bot_events(newcomer["id"], mark)] == [welcome.text]


def test_a_toman_shop_shows_whole_amounts_in_each_language(harness):
    """BOT_CURRENCY=IRT: prices are whole Tomans (no minor units), in Persian digits for a Persian customer."""
    harness.stop_bot()
    harness.settings = replace(harness.settings, currency="IRT")
    harness.start_bot()
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    choose_language(tg, DARIUSH, "فارسی")
    for user, buy, summary_mark, price, from_price in (
        (ALICE, "🛒 Buy", "Your order", "1,500 Toman", "from 1,500 Toman"),
        (DARIUSH, "🛒 خرید", "سفارش شما", "۱٬۵۰۰ تومان", "از ۱٬۵۰۰ تومان"),
    ):
        mark = tg.send_text(user, buy)
        step = tg.reply(user["id"], mark, method="sendMessage")
        assert any(label.endswith(from_price) for label in labels(step)), labels(step)
        step = press_choices(tg, user, step)
        assert summary_mark in step.text and price in step.text, step.text
        assert f"{LRM}{price}" not in step.text  # Persian digits need no direction marks
