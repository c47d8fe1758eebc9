"""Trials, bans, admin commands, bad input, floods, an API outage and a bot restart mid-purchase."""

# Persian text and digits are the point here; ruff's confusable-character check reads them as Latin.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, STAFF, press_choices
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres


def to_proof_step(tg, user):
    """Walk the purchase to the proof request (English, the cheapest abroad plan)."""
    mark = tg.send_text(user, "/buy")
    step = tg.reply(user["id"], mark, "What kind of service?")
    summary = press_choices(tg, user, step)
    assert "Your order" in summary.text
    mark = tg.press(user, summary, "buy:ok")
    return tg.reply(user["id"], mark, "send the receipt")


def test_a_trial_works_once(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "🎁 Free trial")
    tg.reply(ALICE["id"], mark, "free trial is ready")
    card = tg.reply(ALICE["id"], mark, "(trial,")
    assert "vless://" in card.text
    mark = tg.send_text(ALICE, "/trial")
    tg.reply(ALICE["id"], mark, "already used your free trial")
    mark = tg.send_text(ALICE, "📄 My configs")
    listed = tg.reply(ALICE["id"], mark, "Config #1")
    assert "Free trial" in listed.text and "vless://" not in listed.text  # compact: the links are a tap away
    mark = tg.press(ALICE, listed, "cfg:sub:1")
    assert "Subscription URL" in tg.reply(ALICE["id"], mark).text
    mark = tg.press(ALICE, listed, "cfg:qr:1")
    tg.reply(ALICE["id"], mark, method="sendPhoto")
    assert harness.configs() == 1


def test_a_banned_user_is_refused_and_admin_commands_are_silent_for_others(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    mark, _ = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    tg.reply(ADMIN_CHAT, mark, "Payment #1")

    # A customer typing admin commands gets no answer at all.
    mark = tg.send_text(ALICE, "/payments")
    tg.send_text(ALICE, "/reject 1 ban nope")
    tg.send_text(ALICE, "/nodes")
    tg.send_text(ALICE, "/help")
    first = tg.reply(ALICE["id"], mark)
    assert first.text.startswith("Commands:")

    # The admin, in a private chat: the pending list, the payment's proof and card from it, then a ban.
    mark = tg.send_text(STAFF, "/payments")
    listed = tg.reply(STAFF["id"], mark, "#1 · @alice")
    mark = tg.press(STAFF, listed, "adm:op:1")
    tg.reply(STAFF["id"], mark, method="sendPhoto")
    tg.reply(STAFF["id"], mark, "Payment #1")
    mark = tg.send_text(STAFF, "/reject ۱ ban Forged receipt")  # Persian digit in the id
    assert "rejected by shopkeeper" in tg.reply(STAFF["id"], mark).text
    told = tg.reply(ALICE["id"], mark, "was rejected")
    assert "Forged receipt" in told.text and "blocked" in told.text
    mark = tg.send_text(STAFF, "/approve 1")
    assert tg.reply(STAFF["id"], mark, method="sendMessage").text == "Already rejected by shopkeeper."
    mark = tg.send_text(STAFF, "/approve 999")
    assert "does not exist" in tg.reply(STAFF["id"], mark, method="sendMessage").text
    mark = tg.send_text(STAFF, "/nodes")
    nodes = tg.reply(STAFF["id"], mark, method="sendMessage").text
    assert "<b>fra-1</b> — active, never seen, " in nodes and "last heartbeat —" in nodes

    mark = tg.send_text(ALICE, "/buy")
    assert "blocked: Forged receipt" in tg.reply(ALICE["id"], mark).text
    mark = tg.send_text(ALICE, "/trial")
    assert "blocked: Forged receipt" in tg.reply(ALICE["id"], mark).text
    assert harness.payments() == 1


def test_bad_input_gets_polite_answers_and_no_crash(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/frobnicate")
    tg.reply(ALICE["id"], mark, "don't know that command")
    mark = tg.send_text(ALICE, "hello?")
    tg.reply(ALICE["id"], mark, "menu buttons")

    mark = tg.send_text(ALICE, "/buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    for data in (
        "buy:dur:99999",
        "buy:cat:x' OR 1=1",
        "adm:ok:1",
        "lang:de",
        "",
        "buy:loc:../../etc",
        "buy:back:cat",  # the first step shown has no Back
        "buy:plan:1",  # no list open
        "buy:all",  # no category yet
    ):
        mark = tg.press(ALICE, step, data)
        tg.wait(lambda e: e.method == "answerCallbackQuery", mark)
    mark = tg.press(ALICE, step, "buy:cat:d")
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")  # one location: chosen
    for absurd in ("999999999999999999999", "-30", "0", "۰", "3.5", "thirty", "45"):
        mark = tg.send_text(ALICE, absurd)
        assert "no plan with that number" in tg.reply(ALICE["id"], mark).text

    # A flood: the same button forty times; one step forward, every press answered, the bot still alive.
    before = len(tg.bot_events(ALICE["id"]))
    mark = len(tg.events)
    for _ in range(40):
        tg.press(ALICE, step, "buy:dur:30")
    tg.wait(lambda e: len([x for x in tg.events[mark:] if x.method == "answerCallbackQuery"]) >= 40, mark)
    edits = [e for e in tg.bot_events(ALICE["id"])[before:] if e.method == "editMessageText"]
    assert len(edits) == 1 and "Your order" in edits[0].text
    mark = tg.send_text(ALICE, "/cancel")
    tg.reply(ALICE["id"], mark, "Purchase cancelled")
    assert harness.payments() == 0


def test_api_outage_asks_to_retry_and_creates_nothing_half(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    harness.api.stop()
    mark, proof_id = tg.send_photo(ALICE)
    down = tg.reply(ALICE["id"], mark, "not reachable")
    assert "send the same receipt again" in down.text
    mark = tg.send_text(ALICE, "/configs")
    tg.reply(ALICE["id"], mark, "not reachable")
    assert harness.payments() == 0 and harness.configs() == 0

    harness.api.start()
    mark = tg.press(ALICE, down, down.button("🔁"))
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    tg.reply(ADMIN_CHAT, mark, proof_id)
    assert harness.payments() == 1 and harness.configs() == 1


def test_a_restart_mid_purchase_continues_and_a_lost_answer_is_not_paid_twice(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    harness.stop_bot()
    harness.start_bot()  # a new process would read the same Redis state
    mark, proof_id = tg.send_photo(ALICE)
    first = tg.reply(ALICE["id"], mark, "TEMPORARY")
    assert "#1" in first.text
    # The same proof again (as a retry after a lost answer would send): the same payment, once.
    harness.shop.store.set(
        ALICE["id"],
        {
            "flow": "buy",
            "step": "proof",
            "plan_id": 1,
            "price": 1500,
            "proof": {"file_id": proof_id, "unique_id": f"u{proof_id}", "kind": "photo"},
        },
    )
    mark = tg.send_photo(ALICE)[0]
    again = tg.reply(ALICE["id"], mark, "already received")
    assert "#1" in again.text
    assert harness.payments() == 1


def test_an_expired_or_revoked_token_is_replaced_by_a_new_login(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    api = harness.shop.api
    old = api._token
    revoked = api._session().post(f"{api.base_url}/api/v1/auth/revoke", headers={"Authorization": f"Bearer {old}"})
    assert revoked.status_code == 204
    mark = tg.send_text(ALICE, "/configs")
    tg.reply(ALICE["id"], mark, "no configs yet")
    assert api._token != old
