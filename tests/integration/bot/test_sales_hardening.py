"""Issue 13, the bot's side of items 2 and 5: it sells only what a server can take now, tells the truth when a
paid config has to wait for one and delivers it when placed, keeps every receipt (outside an order it goes to
the admins), never says "nothing was charged" once the payment details were shown, and explains each refusal
of a proof in the customer's language."""

from __future__ import annotations

import pytest

from bot.i18n import LRM
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, press_choices
from tests.integration.bot.test_customers_and_faults import to_proof_step
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres


def to_proof_step_fa(tg, user):
    """The same purchase as to_proof_step (Abroad 30), in Persian, by the buttons' data."""
    mark = tg.send_text(user, "/buy")
    step = tg.reply(user["id"], mark, "چه نوع سرویسی؟")
    step = press_choices(tg, user, step)
    mark = tg.press(user, step, "buy:ok")
    return tg.reply(user["id"], mark, "رسید")


def labels(event) -> list[str]:
    return [b["text"] for row in event.buttons for b in row]


# Item 5: never take money for what cannot be delivered.


def test_only_what_a_server_can_take_is_offered_and_a_full_shop_says_so_before_any_payment_details(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    mark = tg.press(ALICE, step, step.button("Dynamic IP"))
    # "Local 30" is for sale, but no local node exists: the location is not offered (the only other one is
    # chosen for her, so the step is not even shown), nor taken when forged.
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    assert "Abroad" in step.text and "Local" not in step.text
    assert not [d for d in step.button_data() if d.startswith("buy:loc:")]
    mark = tg.press(ALICE, step, "buy:loc:local")
    stale = tg.wait(lambda e: e.method == "answerCallbackQuery" and "not available" in e.text, mark)
    assert stale.text == "That choice is not available. Please pick one of the buttons."
    mark = tg.press(ALICE, step, step.button("30 days"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")

    # The last server fills up while she reads the summary: no payment details, nothing to pay.
    harness.set_nodes(capacity_score=0)
    mark = tg.press(ALICE, summary, summary.button("Confirm"))
    refused = tg.reply(ALICE["id"], mark, "cannot be delivered right now")
    assert "Nothing was charged" in refused.text
    assert not [e for e in tg.bot_events(ALICE["id"], mark) if "send the receipt" in e.text]

    # Nothing at all can be placed: /buy says so plainly, before any step.
    mark = tg.send_text(ALICE, "🛒 Buy")
    sold_out = tg.reply(ALICE["id"], mark)
    assert "nothing can be sold right now" in sold_out.text and sold_out.buttons == []
    assert harness.payments() == 0 and harness.configs() == 0


def test_a_payment_that_finds_no_server_is_recorded_told_truthfully_and_delivered_when_placed(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    harness.set_nodes(capacity_score=0)  # the race: available when offered, full when paid

    mark, proof_id = tg.send_photo(ALICE)
    waiting = tg.reply(ALICE["id"], mark, "Payment <b>#1</b> received")
    assert "No server has room for your config right now" in waiting.text
    assert "TEMPORARY" not in waiting.text and "no server right now" not in waiting.text.lower()
    tg.reply(ADMIN_CHAT, mark, proof_id, method="sendPhoto")
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")
    assert "No server had room" in review.text and review.button_data() == ["adm:ok:1", "adm:no:1"]
    assert harness.payments() == 1 and harness.configs() == 1
    assert not [e for e in tg.bot_events(ALICE["id"], mark) if "vless://" in e.text]

    # A server has room again: the sweep places the config and the notifier hands it over.
    harness.set_nodes(capacity_score=100)
    mark = len(tg.events)
    assert harness.sweep()["placed"] == 1
    ready = tg.reply(ALICE["id"], mark, "A server is ready")
    assert "config <b>#1</b>" in ready.text and "<code>vless://" in ready.text and "/sub/" in ready.text
    qr = tg.reply(ALICE["id"], mark, method="sendPhoto")
    assert tg.uploads[qr.file.split()[2]].startswith(b"\x89PNG")


def test_cancelling_after_the_payment_details_never_claims_nothing_was_charged(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/buy")
    tg.reply(ALICE["id"], mark, "What kind of service?")
    mark = tg.send_text(ALICE, "/cancel")
    assert "Nothing was charged" in tg.reply(ALICE["id"], mark).text  # true: nothing to pay was shown yet

    to_proof_step(tg, ALICE)
    mark = tg.send_text(ALICE, "/cancel")
    cancelled = tg.reply(ALICE["id"], mark)
    assert "Nothing was charged" not in cancelled.text
    assert "If you already paid, send the receipt here any time" in cancelled.text

    ask = to_proof_step(tg, ALICE)
    mark = tg.press(ALICE, ask, ask.button("Cancel"))
    edited = tg.reply(ALICE["id"], mark, method="editMessageText")
    assert "Nothing was charged" not in edited.text and "If you already paid" in edited.text

    # And so she does: the receipt reaches the admins (see the next test).
    mark, proof_id = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "passed this file to the admins")
    tg.reply(ADMIN_CHAT, mark, proof_id, method="sendPhoto")
    assert harness.payments() == 0


def test_a_receipt_outside_an_order_always_reaches_the_admins(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")

    # No order at all: to the admins as a receipt outside any order, naming the customer.
    mark, stray_id = tg.send_photo(ALICE)
    told = tg.reply(ALICE["id"], mark, "no order waiting for review")
    assert "one of them will look at it" in told.text and "🛒 Buy" in told.text
    posted = tg.reply(ADMIN_CHAT, mark, stray_id, method="sendPhoto")
    assert posted.text.startswith("🧾 A receipt outside any order from @alice (7001). The customer was told")

    # With a payment in review: another receipt for that payment.
    to_proof_step(tg, ALICE)
    mark, _ = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    tg.reply(ADMIN_CHAT, mark, "Payment #1")
    mark, extra_id = tg.send_document(ALICE)
    added = tg.reply(ALICE["id"], mark, "with your payment <b>#1</b>")
    assert "being reviewed" in added.text
    posted = tg.reply(ADMIN_CHAT, mark, extra_id, method="sendDocument")
    assert posted.text == "🧾 Another receipt for payment #1 from @alice (7001)"

    # Mid-purchase, before this order's payment details: not this order's proof, so it goes the same way
    # (Dariush, in Persian, with no order in review; Alice may not start another order while #1 is reviewed).
    choose_language(tg, DARIUSH, "فارسی")
    mark = tg.send_text(DARIUSH, "/buy")
    step = tg.reply(DARIUSH["id"], mark, "چه نوع سرویسی؟")
    mark, fa_id = tg.send_document(DARIUSH)
    told = tg.reply(DARIUSH["id"], mark, "سفارشی در انتظار بررسی ندارید")
    assert "برای مدیران فرستادم" in told.text
    assert "@dariush (7003)" in tg.reply(ADMIN_CHAT, mark, fa_id, method="sendDocument").text
    mark = tg.press(DARIUSH, step, "buy:cat:d")
    tg.reply(DARIUSH["id"], mark, "برای چه مدت؟", method="editMessageText")  # the purchase goes on

    # A flood of files does not bury the admin channel: five an hour, then she is told to wait.
    for _ in range(3):  # her third, fourth and fifth
        mark, _ = tg.send_photo(ALICE)
        tg.reply(ALICE["id"], mark, "with your payment")
    mark, flood_id = tg.send_photo(ALICE)
    assert "sent several files in the last hour" in tg.reply(ALICE["id"], mark).text
    assert not [e for e in tg.bot_events(ADMIN_CHAT) if flood_id in e.file]
    assert harness.payments() == 1


# Item 2: proofs must not mint unlimited temporary service; each refusal explained.


def test_a_second_order_while_one_is_in_review_is_refused_before_any_payment_details(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    mark, _ = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")

    # The API says she cannot order now (payment #1 in review, the shop's limit is one): /buy says so at
    # once, and no payment details are ever shown.
    mark = tg.send_text(ALICE, "/buy")
    refused = tg.reply(ALICE["id"], mark, "still being reviewed")
    assert "Your payment <b>#1</b> is still being reviewed. You can order again once it is decided." in refused.text
    assert not [
        event for event in tg.bot_events(ALICE["id"], since=mark) if "What kind of service?" in (event.text or "")
    ]
    assert harness.payments() == 1 and harness.shop.store.get(ALICE["id"]) == {}


def test_a_payment_from_another_device_meanwhile_is_caught_and_the_receipt_goes_to_the_admins(harness):
    """The race: Dariush reached the payment details with nothing in review, then paid from his other
    phone; the receipt he sends here is refused by the API, told in Persian, and passed to the admins."""
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    to_proof_step_fa(tg, DARIUSH)
    profile = harness.shop.api.get_user_by_telegram(DARIUSH["id"])
    plan = harness.shop.api.plans()[0]
    other, _created = harness.shop.api.create_payment(
        profile["id"], plan["id"], plan["price_cents"], "file-other-phone", "unique-other-phone", "vless"
    )
    mark, second_id = tg.send_photo(DARIUSH)
    refused = tg.reply(DARIUSH["id"], mark, "هنوز در حال بررسی است")
    assert f"#{LRM}{other['id']}{LRM}" in refused.text
    posted = tg.reply(ADMIN_CHAT, mark, second_id, method="sendPhoto")
    assert posted.text == f"🧾 Another receipt for payment #{other['id']} from @dariush ({DARIUSH['id']})"
    assert harness.payments() == 1 and harness.shop.store.get(DARIUSH["id"]) == {}


def test_someone_elses_receipt_is_refused_and_the_order_waits_for_their_own(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    to_proof_step(tg, ALICE)
    mark, alice_proof = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")

    # Dariush sends the very same picture (Telegram gives it the same file_unique_id).
    choose_language(tg, DARIUSH, "فارسی")
    to_proof_step_fa(tg, DARIUSH)
    mark, _ = tg.send_photo(DARIUSH, unique_id=f"u{alice_proof}")
    refused = tg.reply(DARIUSH["id"], mark, "قبلاً برای سفارش دیگری استفاده شده است")
    assert "رسید پرداخت خودتان" in refused.text and refused.button_data() == ["buy:no"]
    assert harness.payments() == 1
    assert harness.shop.store.get(DARIUSH["id"])["step"] == "proof"

    # His own receipt, next: the same order goes through.
    mark, own = tg.send_photo(DARIUSH)
    received = tg.reply(DARIUSH["id"], mark, "موقت")
    assert f"#{LRM}2{LRM}" in received.text
    tg.reply(ADMIN_CHAT, mark, own, method="sendPhoto")
    assert harness.payments() == 2
