"""Support and help through the bot's real polling loop: a customer's message reaches the admin chat with
their context, an admin's Telegram reply comes back (a non-admin's does not), the customer continues by
replying, a screenshot is relayed and never taken for a receipt, floods are capped, and "how to connect"
gives each platform's apps with the subscription link."""

from __future__ import annotations

import time

from tests.fixtures.fake_telegram import FakeTelegram
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF, tg_user
from tests.integration.bot.test_purchase import choose_language

STRANGER = tg_user(7099, "stranger")


def test_a_question_reaches_the_admins_and_the_answer_comes_back(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "🆘 Support")
    assert "Write your question" in tg.reply(ALICE["id"], mark).text
    mark = tg.send_text(ALICE, "My link stopped <b>working</b>")
    relayed = tg.reply(ADMIN_CHAT, mark, "Support")
    assert 'href="tg://user?id=7001"' in relayed.text and "@alice" in relayed.text
    assert "Telegram 7001" in relayed.text and "language en" in relayed.text
    assert "My link stopped &lt;b&gt;working&lt;/b&gt;" in relayed.text  # the customer's text, escaped
    assert "Sent to support" in tg.reply(ALICE["id"], mark).text

    # Someone in the admin chat who is not an admin replies: nothing reaches the customer.
    mark = tg.send_text(STRANGER, "pay me instead", chat=FakeTelegram.group(ADMIN_CHAT), reply_to=relayed)
    time.sleep(1)
    assert tg.bot_events(ALICE["id"], mark) == [], tg.transcript(mark)

    mark = tg.send_text(
        STAFF, "Update the subscription in your app", chat=FakeTelegram.group(ADMIN_CHAT), reply_to=relayed
    )
    answer = tg.reply(ALICE["id"], mark, "Support:")
    assert answer.text == "💬 <b>Support:</b> Update the subscription in your app"
    assert "Sent to the customer" in tg.reply(ADMIN_CHAT, mark).text

    # The customer replies to the answer: the conversation goes on without the menu.
    mark = tg.send_text(ALICE, "Done, it works now", reply_to=answer)
    assert "Done, it works now" in tg.reply(ADMIN_CHAT, mark, "Support").text


def test_a_screenshot_goes_to_support_and_is_not_a_receipt(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    payments = harness.payments()
    mark = tg.send_text(ALICE, "/support")
    tg.reply(ALICE["id"], mark, "Write your question")
    mark, _file = tg.send_photo(ALICE)
    tg.reply(ADMIN_CHAT, mark, "Support")
    tg.reply(ADMIN_CHAT, mark, method="sendPhoto")
    assert "Sent to support" in tg.reply(ALICE["id"], mark).text
    assert harness.payments() == payments


def test_a_flood_of_support_messages_is_capped(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    for number in range(5):
        mark = tg.send_text(ALICE, "/support")
        tg.reply(ALICE["id"], mark, "Write your question")
        mark = tg.send_text(ALICE, f"question {number}")
        tg.reply(ALICE["id"], mark, "Sent to support")
    mark = tg.send_text(ALICE, "/support")
    tg.reply(ALICE["id"], mark, "Write your question")
    mark = tg.send_text(ALICE, "question 6")
    assert "several messages in the last hour" in tg.reply(ALICE["id"], mark).text
    assert not [e for e in tg.bot_events(ADMIN_CHAT, mark) if "question 6" in e.text]


def test_support_and_help_in_persian(harness):
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    mark = tg.send_text(DARIUSH, "🆘 پشتیبانی")
    assert "سؤال خود را" in tg.reply(DARIUSH["id"], mark).text
    mark = tg.send_text(DARIUSH, "/cancel")
    tg.reply(DARIUSH["id"], mark)
    mark = tg.send_text(DARIUSH, "📱 آموزش اتصال")
    menu = tg.reply(DARIUSH["id"], mark, "کدام دستگاه")
    assert set(menu.button_data()) >= {"howto:android", "howto:ios", "howto:windows", "howto:macos"}
    mark = tg.press(DARIUSH, menu, "howto:android")
    help_text = tg.reply(DARIUSH["id"], mark, "اندروید").text
    assert "v2rayNG" in help_text and "/sub/" in help_text


def test_how_to_connect_names_the_apps_of_each_platform(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/howto")
    menu = tg.reply(ALICE["id"], mark, "Which device")
    for platform, app in (("ios", "Streisand"), ("windows", "v2rayN"), ("macos", "Hiddify")):
        mark = tg.press(ALICE, menu, f"howto:{platform}")
        text = tg.reply(ALICE["id"], mark, app).text
        assert "subscription link" in text and "/sub/" in text
