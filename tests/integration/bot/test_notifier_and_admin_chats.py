"""Issue 13, item 12: the notifier acknowledges each notification as soon as Telegram took it, so a timeout
halfway through a round repeats none of the earlier ones; admin commands answer only in private chats and
the admin channel."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from telebot import apihelper

from control_api.models import User
from control_api.services import notifications
from tests.fixtures.fake_telegram import FakeTelegram
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres


@pytest.fixture
def short_telegram_timeout():
    """Telegram calls give up after 1.5 s (telebot's default is 30), so a slow answer is a timeout here."""
    saved = apihelper.READ_TIMEOUT
    apihelper.READ_TIMEOUT = 1.5
    yield
    apihelper.READ_TIMEOUT = saved


def test_a_timeout_halfway_through_a_round_repeats_none_of_the_earlier_notifications(harness, short_telegram_timeout):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    choose_language(tg, DARIUSH, "فارسی")
    # Telegram takes the message to Dariush but its answer never reaches the bot in time.
    tg.slow_next[DARIUSH["id"]] = 3
    mark = len(tg.events)
    with harness.db() as session:
        users = {u.telegram_id: u.id for u in session.scalars(select(User))}
        # One round: Alice's first, then Dariush's (whose answer times out).
        notifications.notify(session, users[ALICE["id"]], "expiring", "expiring:test-11", config_id=11)
        notifications.notify(session, users[DARIUSH["id"]], "expiring", "expiring:test-12", config_id=12)
        session.commit()

    first = tg.reply(DARIUSH["id"], mark, "12")
    # The timed-out one is sent again (it may have arrived: at least once, never lost) and then acknowledged.
    tg.reply(DARIUSH["id"], tg.events.index(first) + 1, "12", timeout=20)
    deadline = time.monotonic() + 10
    while harness.undelivered() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness.undelivered() == 0
    time.sleep(0.5)  # a few more rounds: nothing is repeated
    to_alice = [e for e in tg.bot_events(ALICE["id"], mark) if "Config <b>#11</b> expires" in e.text]
    assert len(to_alice) == 1, tg.transcript(mark)


def test_admin_commands_answer_only_in_private_chats_and_the_admin_channel(harness):
    tg = harness.telegram
    elsewhere = FakeTelegram.group(-100777, "Customers' chat")
    admin_channel = FakeTelegram.group(ADMIN_CHAT, "Shop admins")

    mark = tg.send_text(STAFF, "/payments", chat=elsewhere)
    tg.send_text(STAFF, "/nodes@rayfleet_test_bot", chat=elsewhere)
    tg.send_text(STAFF, "/approve 1", chat=elsewhere)
    tg.send_text(STAFF, "/payments", chat=admin_channel)
    assert tg.reply(ADMIN_CHAT, mark).text == "No payments are waiting for review."
    mark_private = tg.send_text(STAFF, "/payments")
    assert tg.reply(STAFF["id"], mark_private).text == "No payments are waiting for review."
    time.sleep(1)  # the group's commands were taken before these; give a straggler time to show
    assert tg.bot_events(-100777) == [], tg.transcript(mark)
