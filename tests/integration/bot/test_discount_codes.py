"""Issue 16, item 3 as a customer sees it, through the bot's real polling loop: "I have a discount code" at
checkout, a refusal in the customer's language, the discounted price, and the payment recorded with the code;
in Persian, a code that makes the order free (no receipt, an admin approves it)."""

# Persian text is the point here; ruff's confusable-character check reads it as Latin.

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.i18n import LRM
from control_api.models import Payment, utcnow
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, press_choices
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres


def _code(client, store_shop, **body) -> dict:
    created = client.post("/api/v1/discount-codes", json=body, headers=store_shop["admin"].headers)
    assert created.status_code == 201, created.json
    return created.json


def _to_summary(tg, user) -> object:
    """/buy through to the summary of "Abroad 30" (15 USD), by the buttons' data."""
    mark = tg.send_text(user, "/buy")
    step = tg.reply(user["id"], mark, method="sendMessage")
    summary = press_choices(tg, user, step)
    assert "15 USD" in summary.text and "buy:ok" in summary.button_data()
    return summary


def test_an_english_customer_applies_a_code_and_pays_the_discounted_price(harness, client, store_shop):
    tg = harness.telegram
    begin = len(tg.events)
    _code(client, store_shop, code="nowruz", percent_off=20, plan_id=1)
    _code(client, store_shop, code="OLDCODE", percent_off=50, expires_at=(utcnow() - timedelta(days=1)).isoformat())
    choose_language(tg, ALICE, "English")

    summary = _to_summary(tg, ALICE)
    assert "Abroad 30" in summary.text
    mark = tg.press(ALICE, summary, summary.button("I have a discount code"))
    ask = tg.reply(ALICE["id"], mark, "Send your discount code")
    assert [b["text"] for row in ask.buttons for b in row] == ["Continue without a code", "✖️ Cancel"]

    mark = tg.send_text(ALICE, "oldcode")
    refused = tg.reply(ALICE["id"], mark, "This code has expired.")
    assert "Send another code, or continue without one." in refused.text
    # Back to the summary without a code, then the code after all.
    mark = tg.press(ALICE, refused, refused.button("Continue without a code"))
    summary = tg.reply(ALICE["id"], mark, "Your order")
    assert "To pay" not in summary.text
    mark = tg.press(ALICE, summary, summary.button("I have a discount code"))
    tg.reply(ALICE["id"], mark, "Send your discount code")
    mark = tg.send_text(ALICE, " nowruz ")
    discounted = tg.reply(ALICE["id"], mark, "Your order")
    assert "Price: 15 USD" in discounted.text and "Code <b>NOWRUZ</b>: 3 USD off" in discounted.text
    assert "To pay: 12 USD" in discounted.text
    assert [b["text"] for row in discounted.buttons for b in row] == ["« Back", "✅ Confirm", "✖️ Cancel"]

    mark = tg.press(ALICE, discounted, discounted.button("Confirm"))
    ask = tg.reply(ALICE["id"], mark, "send the receipt")
    assert "Please pay <b>12 USD</b>" in ask.text
    mark, _proof = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")
    assert "Amount: 12 USD" in review.text and "Discount code NOWRUZ: 3 USD off (price 15 USD)" in review.text
    with harness.db() as session:
        payment = session.scalars(select(Payment)).one()
    assert (payment.amount_cents, payment.auto_accept_at is not None) == (1200, True)
    code = client.get("/api/v1/discount-codes/1", headers=store_shop["admin"].headers).json
    assert code["uses"] == 1
    print("\n" + tg.transcript(begin))


def test_a_persian_customer_is_refused_in_persian_then_gets_a_free_order_for_review(harness, client, store_shop):
    tg = harness.telegram
    begin = len(tg.events)
    _code(client, store_shop, code="HADIYE", percent_off=100)
    choose_language(tg, DARIUSH, "فارسی")

    summary = _to_summary(tg, DARIUSH)
    mark = tg.press(DARIUSH, summary, summary.button("کد تخفیف دارم"))
    ask = tg.reply(DARIUSH["id"], mark, "کد تخفیف خود را")
    assert ask.button("ادامه بدون کد") == "buy:nocode"
    mark = tg.send_text(DARIUSH, "NOSUCHCODE")
    refused = tg.reply(DARIUSH["id"], mark, "این کد معتبر نیست.")
    assert "کد دیگری بفرستید" in refused.text
    mark = tg.send_text(DARIUSH, "hadiye")
    free = tg.reply(DARIUSH["id"], mark, "مبلغ قابل پرداخت")
    assert f"{LRM}0 USD{LRM}" in free.text and f"{LRM}HADIYE{LRM}" in free.text

    mark = tg.press(DARIUSH, free, free.button("تأیید"))
    received = tg.reply(DARIUSH["id"], mark, "رایگان")
    assert "منتظر تأیید مدیر" in received.text and "موقت" in received.text
    tg.reply(DARIUSH["id"], mark, "vless://")  # the temporary config, as after a receipt
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")
    assert "Free with a discount code" in review.text and "never (an admin decides)" in review.text
    assert not [e for e in tg.bot_events(ADMIN_CHAT, mark) if e.method in ("sendPhoto", "sendDocument")]
    with harness.db() as session:
        payment = session.scalars(select(Payment)).one()
    assert (payment.amount_cents, payment.auto_accept_at) == (0, None)
    assert payment.evidence_file_id.startswith("free-")
    print("\n" + tg.transcript(begin))


def test_a_code_whose_last_use_went_meanwhile_sends_the_receipt_to_the_admins(harness, client, store_shop):
    tg = harness.telegram
    _code(client, store_shop, code="LASTONE", amount_off_cents=500, max_uses=1)
    choose_language(tg, ALICE, "English")
    summary = _to_summary(tg, ALICE)
    mark = tg.press(ALICE, summary, summary.button("I have a discount code"))
    tg.reply(ALICE["id"], mark, "Send your discount code")
    mark = tg.send_text(ALICE, "lastone")
    discounted = tg.reply(ALICE["id"], mark, "To pay: 10 USD")
    mark = tg.press(ALICE, discounted, discounted.button("Confirm"))
    tg.reply(ALICE["id"], mark, "Please pay <b>10 USD</b>")

    # Another customer takes the last use before Alice's receipt arrives.
    bot = store_shop["bot"].headers
    other = client.put("/api/v1/users/telegram/7999", json={}, headers=bot).json["id"]
    body = {"user_id": other, "plan_id": 1, "amount_cents": 1000, "discount_code": "LASTONE"}
    body |= {"evidence_file_id": "x", "evidence_unique_id": "x"}
    taken = client.post("/api/v1/payments", json=body, headers=bot)
    assert taken.status_code == 201, taken.json

    mark, proof_id = tg.send_photo(ALICE)
    told = tg.reply(ALICE["id"], mark, "could not be used")
    assert "This code has been used up." in told.text and "passed to the admins" in told.text
    passed = tg.reply(ADMIN_CHAT, mark, "LASTONE", method="sendPhoto")
    assert proof_id in passed.file and "@alice (7001)" in passed.text and "was refused" in passed.text
    assert harness.payments() == 1  # only the other customer's
