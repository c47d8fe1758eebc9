"""Broadcasts through the bot's real polling loop: an admin picks a segment, writes the text, sees a preview and
confirms; the bot sends it to every customer of the segment at no more than BOT_BROADCAST_PER_SECOND (judged
from the fake Telegram's own clock), counts customers who blocked the bot or left as blocked, waits when
Telegram says 429, survives a restart halfway without sending anyone the message twice, refuses a second
broadcast while one runs, and reports to the admin in their language. Non-admins get no answer."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from sqlalchemy import update

from bot import broadcast
from bot.state import RedisStore
from control_api.models import User
from tests.fixtures.fake_telegram import Event, FakeTelegram
from tests.integration.bot.conftest import ADMIN_CHAT, STAFF, STAFF2, tg_user

STRANGER = tg_user(7099, "stranger")


def add_customers(harness, count: int, first: int, language: str = "en") -> list[int]:
    """COUNT customers straight into the API's database (as 500 /start's would make them); their Telegram ids."""
    ids = list(range(first, first + count))
    with harness.db() as session:
        session.add_all(
            User(telegram_id=telegram_id, language=language, subscription_token=secrets.token_urlsafe(24))
            for telegram_id in ids
        )
        session.commit()
    return ids


def restart_with(harness, **settings) -> None:
    # A stop before the polling loop has started is lost (pyTelegramBotAPI clears its stop flag as it starts):
    # wait for an answer first.
    mark = harness.telegram.send_text(STAFF, "/help")
    harness.telegram.reply(STAFF["id"], mark, "Commands")
    harness.stop_bot()
    harness.settings = replace(harness.settings, **settings)
    harness.start_bot()


def start_broadcast(
    tg: FakeTelegram, admin: dict, chat: int, segment: str, text: str, expect: dict
) -> tuple[Event, Event, float]:
    """ADMIN broadcasts TEXT to SEGMENT from CHAT (their private chat or the admin chat); EXPECT holds the
    words of each step's reply. Returns the segment menu, the preview (the text as customers will see it, with
    its buttons) and when Send was pressed (every later message of TEXT is the broadcast's)."""
    where = None if chat == admin["id"] else FakeTelegram.group(chat)
    mark = tg.send_text(admin, "/broadcast", chat=where)
    menu = tg.reply(chat, mark, expect["menu"])
    mark = tg.press(admin, menu, f"bc:seg:{segment}")
    tg.reply(chat, mark, expect["ask"], method="editMessageText")
    mark = tg.send_text(admin, text, chat=where)
    tg.reply(chat, mark, expect["preview"])
    preview = tg.wait(lambda e: e.chat == chat and "bc:ok" in e.button_data(), mark)
    confirmed = time.monotonic()
    mark = tg.press(admin, preview, "bc:ok")
    tg.reply(chat, mark, expect["started"])
    return menu, preview, confirmed


ENGLISH = {"menu": "Broadcast", "ask": "Send the message", "preview": "Preview", "started": "Broadcast started"}
PERSIAN = {"menu": "ارسال همگانی", "ask": "متن پیام", "preview": "پیش‌نمایش", "started": "شروع شد"}


def received(tg: FakeTelegram, chat: int, text: str) -> int:
    """How many times CHAT got TEXT as a broadcast (the admin's preview carries buttons)."""
    return sum(1 for e in tg.bot_events(chat) if e.method == "sendMessage" and e.text == text and not e.buttons)


def attempts(tg: FakeTelegram, text: str, since: float) -> list[tuple[float, int]]:
    """When Telegram received each try to send TEXT since SINCE (delivered or refused), and to whom, in order."""
    return sorted((at, chat) for at, chat, sent in list(tg.sends) if sent == text and at >= since)


def assert_rate(tries: list[tuple[float, int]], limit: int) -> None:
    """No second holds more than LIMIT sends: any LIMIT + 1 in a row span a second or more."""
    times = [at for at, _chat in tries]
    for first, last in zip(times, times[limit:], strict=False):
        assert last - first >= 1.0, f"{limit + 1} sends within {last - first:.3f} s"


def test_a_broadcast_to_500_customers_survives_a_restart_halfway(harness):
    tg = harness.telegram
    restart_with(harness, broadcast_per_second=200)
    customers = add_customers(harness, 500, 900_001)
    (banned,) = add_customers(harness, 1, 900_601)
    with harness.db() as session:
        session.execute(update(User).where(User.telegram_id == banned).values(ban_reason="spam"))
        session.commit()
    blocked = {
        customers[10]: (403, "Forbidden: bot was blocked by the user"),
        customers[20]: (403, "Forbidden: user is deactivated"),
    }
    blocked |= {customers[i]: (400, "Bad Request: chat not found") for i in (30, 400, 499)}
    failing = {customers[40]: (400, "Bad Request: something unexpected")}
    tg.refuse |= blocked | failing
    tg.flood_next[customers[300]] = 1  # Telegram asks the bot to slow down once, in the second half
    recipients = {*customers, STAFF["id"], STAFF2["id"]}  # the admins are customers too

    written = "Spring sale: 20% off <today> & tomorrow"
    menu, preview, confirmed = start_broadcast(tg, STAFF, STAFF["id"], "all", written, ENGLISH)
    text = "Spring sale: 20% off &lt;today&gt; &amp; tomorrow"  # as written, escaped: no formatting of its own
    assert preview.text == text
    assert menu.buttons[0][0]["text"] == "Everyone (502)"

    deadline = time.monotonic() + 60
    while len(attempts(tg, text, confirmed)) < 250:
        assert time.monotonic() < deadline, "the broadcast did not get halfway"
        time.sleep(0.05)
    harness.stop_bot()
    saved = RedisStore(harness.redis_url, 60).cache_get(broadcast.KEY)
    assert saved is not None and saved["finished_at"] is None and saved["cursor"] > 0
    reached = {chat for _at, chat in attempts(tg, text, confirmed)}
    assert 250 <= broadcast.handled(saved) <= len(reached) < len(recipients)

    mark = len(tg.events)
    harness.start_bot()
    report = tg.reply(STAFF["id"], mark, "Broadcast finished", timeout=120)
    assert "Delivered: 496" in report.text and "Blocked the bot or left Telegram: 5" in report.text
    assert "Failed: 1" in report.text and "Duration:" in report.text
    assert len(recipients) == 496 + 5 + 1

    # Every customer exactly once: restart or not, 429 or not; refused ones are not tried again.
    for chat in recipients - blocked.keys() - failing.keys():
        assert received(tg, chat, text) == 1, chat
    sent_to = [chat for _at, chat in attempts(tg, text, confirmed)]
    for chat in blocked.keys() | failing.keys():
        assert sent_to.count(chat) == 1, chat
    assert sent_to.count(customers[300]) == 2  # the 429, then the message
    assert banned not in sent_to
    assert {chat for _at, chat in attempts(tg, text, confirmed)} == recipients
    assert_rate(attempts(tg, text, confirmed), 200)
    assert RedisStore(harness.redis_url, 60).cache_get(broadcast.KEY) is None


def test_the_rate_limit_holds_and_a_second_broadcast_waits_in_the_admin_chat_in_persian(harness):
    tg = harness.telegram
    restart_with(harness, broadcast_per_second=10, admin_language="fa")
    customers = add_customers(harness, 30, 910_001, "fa") + add_customers(harness, 30, 910_101, "en")
    recipients = {*customers, STAFF["id"], STAFF2["id"]}
    text = "🎉 تخفیف ویژهٔ نوروز: ۲۰٪"
    _menu, _preview, confirmed = start_broadcast(tg, STAFF2, ADMIN_CHAT, "never_bought", text, PERSIAN)

    # While it runs: another admin's /broadcast (in English, their private chat) gets its progress instead.
    mark = tg.send_text(STAFF, "/broadcast")
    assert "A broadcast to <b>Never bought</b> is running" in tg.reply(STAFF["id"], mark, "is running").text
    # A customer who tries it hears nothing.
    mark = tg.send_text(STRANGER, "/broadcast")
    time.sleep(1)
    assert tg.bot_events(STRANGER["id"], mark) == []

    report = tg.reply(ADMIN_CHAT, mark, "ارسال همگانی تمام شد", timeout=60)
    assert "\u200e62\u200e" in report.text and "ناموفق: \u200e0\u200e" in report.text
    tries = attempts(tg, text, confirmed)
    assert sorted(chat for _at, chat in tries) == sorted(recipients)  # each once
    assert all(received(tg, chat, text) == 1 for chat in recipients)
    assert_rate(tries, 10)
    assert tries[-1][0] - tries[0][0] >= 5.5  # 62 sends at 10 a second


def test_the_steps_can_be_cancelled_and_only_text_is_taken(harness):
    tg = harness.telegram
    add_customers(harness, 3, 920_001)
    mark = tg.send_text(STAFF, "/broadcast")
    menu = tg.reply(STAFF["id"], mark, "Broadcast")
    assert menu.button_data() == [
        "bc:seg:all",
        "bc:seg:active",
        "bc:seg:expired",
        "bc:seg:never_bought",
        "bc:no",
    ]
    # A segment nobody is in cannot be chosen.
    mark = tg.press(STAFF, menu, "bc:seg:expired")
    assert "Nobody is in this group" in tg.wait(lambda e: e.method == "answerCallbackQuery", mark).text
    mark = tg.press(STAFF, menu, "bc:seg:never_bought")
    tg.reply(STAFF["id"], mark, "Send the message", method="editMessageText")
    payments = harness.payments()
    mark, _file = tg.send_photo(STAFF)
    ask_again = tg.reply(STAFF["id"], mark, "Only a text message")
    assert harness.payments() == payments
    mark = tg.press(STAFF, ask_again, "bc:no")
    tg.reply(STAFF["id"], mark, "Broadcast cancelled")
    # Someone else pressing an admin's buttons in the admin chat gets nothing done.
    mark = tg.send_text(STAFF2, "/broadcast", chat=FakeTelegram.group(ADMIN_CHAT))
    menu = tg.reply(ADMIN_CHAT, mark, "Broadcast")
    mark = tg.press(STRANGER, menu, "bc:seg:all")
    assert "not available" in tg.wait(lambda e: e.method == "answerCallbackQuery", mark).text
    time.sleep(0.5)
    assert not [e for e in tg.bot_events(since=mark) if e.method != "answerCallbackQuery"]
    assert not [chat for _at, chat, _text in tg.sends if chat >= 920_001]
