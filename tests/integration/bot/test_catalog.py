"""Names from the shop's catalog, in the customer's language, and payment details a tap copies, through the
real polling loop."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.i18n import LRM
from tests.conftest import create_node
from tests.integration.bot.conftest import ABROAD_30, ALICE, DARIUSH, press_choices
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

PERSIAN_INSTRUCTIONS = "کارت ۶۰۳۷ ۹۹۱۱ ۲۲۳۳ ۴۴۵۵ به نام <رضا>، شبا IR06 2960 0000 0010 0324 2000 01، تلفن ۰۹۱۲۱۲۳۴۵۶۷"


def name_the_shop(client, admin) -> None:
    """The admin gives "Abroad 30" a Persian name and the abroad tag a place in the catalog."""
    plans = client.get("/api/v1/plans", headers=admin.headers).json["items"]
    plan_id = next(plan["id"] for plan in plans if plan["name"] == "Abroad 30")
    named = client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": "خارج یک‌ماهه"}, headers=admin.headers)
    assert named.status_code == 200, named.json
    entry = {"tag": "abroad", "name": "Germany", "name_fa": "آلمان"}
    assert client.post("/api/v1/locations", json=entry, headers=admin.headers).status_code == 201


def buy_until_the_summary(tg, user, buy: str):
    """Through the steps to Abroad 30's summary (a step with one option is the bot's to choose)."""
    mark = tg.send_text(user, buy)
    step = tg.reply(user["id"], mark, method="sendMessage")
    return press_choices(tg, user, step, ABROAD_30)


def test_a_persian_customer_reads_the_persian_names_and_copies_the_card_and_sheba(harness, client, store_shop):
    name_the_shop(client, store_shop["admin"])
    harness.stop_bot()
    harness.settings = replace(harness.settings, payment_instructions=PERSIAN_INSTRUCTIONS)
    harness.start_bot()
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    summary = buy_until_the_summary(tg, DARIUSH, "🛒 خرید")
    assert "سفارش شما" in summary.text and "خارج یک‌ماهه" in summary.text and "آلمان" in summary.text, summary.text
    assert "Abroad 30" not in summary.text and "Germany" not in summary.text

    mark = tg.press(DARIUSH, summary, summary.button("تأیید"))
    ask = tg.reply(DARIUSH["id"], mark, "رسید")
    assert f"کارت {LRM}<code>6037 9911 2233 4455</code>{LRM} به نام &lt;رضا&gt;" in ask.text, ask.text
    assert f"شبا {LRM}<code>IR06 2960 0000 0010 0324 2000 01</code>{LRM}" in ask.text, ask.text
    assert "تلفن ۰۹۱۲۱۲۳۴۵۶۷" in ask.text and ask.text.count("<code>") == 2  # a phone number is no card

    # Approved: the notification names the plan as the customer reads it.
    mark, _proof = tg.send_photo(DARIUSH)
    tg.reply(DARIUSH["id"], mark, "vless://")
    payment_id = client.get("/api/v1/payments?status=pending", headers=store_shop["admin"].headers).json["items"][0]
    approved = client.post(f"/api/v1/payments/{payment_id['id']}/approve", json={}, headers=store_shop["admin"].headers)
    assert approved.status_code == 200, approved.json
    told = tg.reply(DARIUSH["id"], mark, "تأیید شد")
    assert "خارج یک‌ماهه" in told.text and "Abroad 30" not in told.text, told.text


def test_an_english_customer_reads_the_catalogs_english_name_and_the_plans_name(harness, client, store_shop):
    name_the_shop(client, store_shop["admin"])
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    summary = buy_until_the_summary(tg, ALICE, "🛒 Buy")
    assert "Your order" in summary.text and "Abroad 30" in summary.text and "Germany" in summary.text, summary.text
    assert "آلمان" not in summary.text
    # A tag the catalog does not name reads as the bot's own word for it.
    create_node(client, store_shop["admin"], "thr-1", location_tag="local", public_ip="198.51.100.31")
    harness.set_nodes(status="active")
    mark = tg.press(ALICE, summary, summary.button("Cancel"))
    tg.reply(ALICE["id"], mark, method="editMessageText")  # the cancel's own edit, before the next order's steps
    mark = tg.send_text(ALICE, "🛒 Buy")
    step = tg.reply(ALICE["id"], mark, method="sendMessage")
    mark = tg.press(ALICE, step, step.button("Dynamic IP"))
    step = tg.reply(ALICE["id"], mark, method="editMessageText")
    labels = [button["text"] for row in step.buttons for button in row][:2]
    assert [label.split(" · ")[0] for label in labels] == ["Germany", "Local"], step.buttons
