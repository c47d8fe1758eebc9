"""Issue 16, item 6 through the bot's real polling loop: prices from the first step, steps with a single
option chosen for the customer, Back on every step (and from the summary) to the step shown before, in
English and Persian, "All plans" side by side, a stale Back refused, Back after a restart, and the taps an
order takes (before this change: Buy, category, location, duration, data, devices, Confirm = 7 taps and the
receipt)."""

# Persian text and digits are the point here; ruff's confusable-character check reads them as Latin.
# ruff: noqa: RUF001

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from control_api.models import Node, Payment
from tests.conftest import create_node
from tests.integration.bot.conftest import ALICE, DARIUSH, press_choices
from tests.integration.bot.test_purchase import choose_language, labels

pytestmark = pytest.mark.postgres

QUESTIONS = {
    "en": {
        "cat": "What kind of service?",
        "loc": "Where should it connect?",
        "dur": "For how long?",
        "cap": "How much data?",
        "dev": "On how many devices?",
        "confirm": "Your order",
        "list": "All Dynamic IP plans",
    },
    "fa": {
        "cat": "چه نوع سرویسی؟",
        "loc": "به کجا وصل شود؟",
        "dur": "برای چه مدت؟",
        "cap": "چه مقدار حجم؟",
        "dev": "برای چند دستگاه؟",
        "confirm": "سفارش شما",
        "list": "همهٔ پلن‌های آی‌پی متغیر",
    },
}
BACK = {"en": "« Back", "fa": "» بازگشت"}
# The choices still made when Back returns to each step (those made at and after it are gone).
KEPT = {
    "dev": ["category", "location", "days", "cap"],
    "cap": ["category", "location", "days"],
    "dur": ["category", "location"],
    "loc": ["category"],
    "cat": [],
}


def taps(tg, user, since: int) -> list[str]:
    """What USER pressed or typed since SINCE (the receipt is not a tap)."""
    return [e.text for e in tg.events[since:] if e.who == f"user:{user['id']}" and e.method in ("press", "text")]


def answered(tg, since: int, contains: str = ""):
    """The bot's answer to a press since SINCE (given after the state is stored)."""
    return tg.wait(lambda e: e.method == "answerCallbackQuery" and contains in e.text, since)


def settled(harness, user) -> dict:
    """USER's purchase state once every press was answered (the bot answers after storing the state)."""
    events, deadline = harness.telegram.events, time.monotonic() + 15
    while sum(e.method == "press" for e in events) > sum(e.method == "answerCallbackQuery" for e in events):
        assert time.monotonic() < deadline, "a press was never answered"
        time.sleep(0.05)
    return harness.shop.store.get(user["id"])


def questions(tg, user, since: int) -> list[str]:
    """Which of the purchase's questions the bot showed USER since SINCE, in order."""
    shown = []
    for event in tg.bot_events(user["id"], since):
        if event.method not in ("sendMessage", "editMessageText"):
            continue
        for step, question in QUESTIONS["en"].items():
            if question in event.text or QUESTIONS["fa"][step] in event.text:
                shown.append(step)
    return shown


def every_step_asked(harness, client, store_shop) -> None:
    """A shop where no step of a dynamic-IP order has a single option: a local server, and two more plans
    abroad for 30 days (a bigger cap; more devices)."""
    admin = store_shop["admin"]
    node_id = create_node(client, admin, "thr-1", location_tag="local", public_ip="198.51.100.31").principal_id
    with harness.db() as session:
        node = session.get(Node, node_id)
        node.status = "active"
        node.tls_server_name = "thr.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    for name, cap, devices, price in (("Abroad 30 big", 20_480, 2, 2000), ("Abroad 30 trio", 10_240, 3, 1800)):
        plan = {
            "name": name,
            "location_tag": "abroad",
            "duration_days": 30,
            "max_devices": devices,
            "data_limit_mb": cap,
            "price_cents": price,
        }
        assert client.post("/api/v1/plans", json=plan, headers=admin.headers).status_code == 201


def test_prices_from_the_first_step_single_options_skipped_and_the_taps_an_order_takes(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")

    # Dynamic IP, abroad, 30 days (the order every test shop customer makes): before, 7 taps and the receipt.
    begin = len(tg.events)
    mark = tg.send_text(ALICE, "🛒 Buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    # Constant IP has one plan (30 USD); Dynamic IP leads to 15 USD and 40 USD.
    assert labels(step) == ["Constant IP · 30 USD", "Dynamic IP · from 15 USD", "✖️ Cancel"]
    mark = tg.press(ALICE, step, step.button("Dynamic IP"))
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    assert step.text.startswith("🛒 <i>Dynamic IP · Abroad</i>")  # the location chosen for her, said
    mark = tg.press(ALICE, step, step.button("30 days · 15 USD"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    assert "Plan: Abroad 30" in summary.text and "Data: 10 GB" in summary.text and "Devices: 2" in summary.text
    mark = tg.press(ALICE, summary, summary.button("Confirm"))
    tg.reply(ALICE["id"], mark, "send the receipt")
    assert taps(tg, ALICE, begin) == ["🛒 Buy", "buy:cat:d", "buy:dur:30", "buy:ok"]  # 4 taps, then the receipt
    assert questions(tg, ALICE, begin) == ["cat", "dur", "confirm"]
    mark = tg.send_text(ALICE, "/cancel")
    tg.reply(ALICE["id"], mark, "Order cancelled")

    # Constant IP has a single plan: every step after the category is chosen for her; the summary says all.
    mark = tg.send_text(ALICE, "/buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    mark = tg.press(ALICE, step, step.button("Constant IP"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    assert questions(tg, ALICE, mark) == ["confirm"]  # no location, duration, data or devices question
    for line in ("Plan: Fixed IP abroad", "Type: Constant IP", "Location: Abroad", "Duration: 30 days"):
        assert line in summary.text
    assert "Data: 20 GB" in summary.text and "Devices: 1" in summary.text and "30 USD" in summary.text
    # Back from the summary: to the category, the only step she saw; her choice is gone.
    assert labels(summary) == ["🏷 I have a discount code", "« Back", "✅ Confirm", "✖️ Cancel"]
    mark = tg.press(ALICE, summary, "buy:back:confirm")
    step = tg.reply(ALICE["id"], mark, "What kind of service?", method="editMessageText")
    assert "« Back" not in labels(step) and "✖️ Cancel" in labels(step)
    state = settled(harness, ALICE)
    assert state["step"] == "cat" and not {"category", "location", "days", "cap", "devices", "plan_id"} & set(state)


def test_one_plan_for_sale_lands_on_its_summary_with_no_back(harness, client, store_shop):
    for plan_id in (1, 2, 3):  # only "Fixed IP abroad" is left
        changed = client.patch(
            f"/api/v1/plans/{plan_id}", json={"is_active": False}, headers=store_shop["admin"].headers
        )
        assert changed.status_code == 200, changed.json
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/buy")
    summary = tg.reply(ALICE["id"], mark, "Your order")
    assert "Fixed IP abroad" in summary.text and "30 USD" in summary.text
    assert summary.button_data() == ["buy:code", "buy:ok", "buy:no"]  # nothing shown before it: no Back
    mark = tg.press(ALICE, summary, "buy:back:confirm")  # forged
    answered(tg, mark, "not available")
    mark = tg.press(ALICE, summary, "buy:ok")
    tg.reply(ALICE["id"], mark, "send the receipt")


@pytest.mark.parametrize("language", ["en", "fa"])
def test_back_on_every_step_returns_to_the_step_shown_before(harness, client, store_shop, language):
    every_step_asked(harness, client, store_shop)
    tg, user = harness.telegram, ALICE if language == "en" else DARIUSH
    ask, back = QUESTIONS[language], BACK[language]
    choose_language(tg, user, "English" if language == "en" else "فارسی")
    mark = tg.send_text(user, "/buy")
    step = tg.reply(user["id"], mark, ask["cat"])
    assert back not in labels(step)
    for data, shown in (
        ("buy:cat:d", "loc"),
        ("buy:loc:abroad", "dur"),
        ("buy:dur:30", "cap"),
        ("buy:cap:10240", "dev"),
        ("buy:dev:2", "confirm"),
    ):
        mark = tg.press(user, step, data)
        step = tg.reply(user["id"], mark, ask[shown], method="editMessageText")
        assert back in labels(step), labels(step)
    assert "Abroad 30" in step.text
    # Back, all the way: each step again, without the choices made at and after it.
    for shown in ("dev", "cap", "dur", "loc", "cat"):
        was = step.text
        mark = tg.press(user, step, step.button(back))
        step = tg.reply(user["id"], mark, ask[shown], method="editMessageText")
        assert step.text != was
        state = settled(harness, user)
        assert state["step"] == shown and "plan_id" not in state
        assert [k for k in ("category", "location", "days", "cap", "devices") if k in state] == KEPT[shown]
    assert back not in labels(step)
    # Typed numbers still work (Persian digits, too), and Back after them.
    mark = tg.press(user, step, "buy:cat:d")
    step = tg.reply(user["id"], mark, ask["loc"], method="editMessageText")
    mark = tg.press(user, step, "buy:loc:abroad")
    step = tg.reply(user["id"], mark, ask["dur"], method="editMessageText")
    mark = tg.send_text(user, "۳۰" if language == "fa" else "30")
    step = tg.reply(user["id"], mark, ask["cap"], method="editMessageText")
    mark = tg.press(user, step, step.button(back))
    tg.reply(user["id"], mark, ask["dur"], method="editMessageText")


def test_all_plans_side_by_side_then_a_summary_and_back_to_where_it_was_opened(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    begin = len(tg.events)
    mark = tg.send_text(ALICE, "🛒 Buy")
    step = tg.reply(ALICE["id"], mark, "What kind of service?")
    assert "buy:all" not in step.button_data()  # the category first
    mark = tg.press(ALICE, step, "buy:cat:d")
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    mark = tg.press(ALICE, step, step.button("All plans"))
    listed = tg.reply(ALICE["id"], mark, "All Dynamic IP plans", method="editMessageText")
    # Every dynamic plan a server can take now (Local 30 has no server): one message, one button each.
    assert "1. <b>Abroad 30</b>\nAbroad · 30 days · 10 GB · 2 devices — <b>15 USD</b>" in listed.text
    assert "2. <b>Abroad 90</b>\nAbroad · 90 days · 30 GB · 3 devices — <b>40 USD</b>" in listed.text
    assert "Local" not in listed.text and "Fixed IP" not in listed.text
    assert listed.button_data() == ["buy:plan:1", "buy:plan:2", "buy:back:list", "buy:no"]
    mark = tg.press(ALICE, listed, listed.button("Abroad 90"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    # Through the list: Buy, Dynamic IP, All plans, the plan, then Confirm (5 taps, and the receipt).
    assert taps(tg, ALICE, begin) == ["🛒 Buy", "buy:cat:d", "buy:all", "buy:plan:2"]
    assert "Plan: Abroad 90" in summary.text and "Duration: 90 days" in summary.text and "40 USD" in summary.text
    # Back: to the list; Back again: to the step it was opened from, without the plan's choices.
    mark = tg.press(ALICE, summary, summary.button("Back"))
    listed = tg.reply(ALICE["id"], mark, "All Dynamic IP plans", method="editMessageText")
    assert settled(harness, ALICE)["step"] == "list"
    mark = tg.press(ALICE, listed, listed.button("Back"))
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    state = settled(harness, ALICE)
    assert state["step"] == "dur" and "days" not in state and state["location"] == "abroad"

    mark = tg.press(ALICE, step, "buy:all")
    listed = tg.reply(ALICE["id"], mark, "All Dynamic IP plans", method="editMessageText")
    mark = tg.press(ALICE, listed, "buy:plan:4")  # not of this list (a constant-IP plan): refused
    answered(tg, mark, "not available")
    mark = tg.press(ALICE, listed, listed.button("Abroad 90"))
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    mark = tg.press(ALICE, summary, "buy:ok")
    ask = tg.reply(ALICE["id"], mark, "send the receipt")
    assert "40 USD" in ask.text
    mark, _ = tg.send_photo(ALICE)
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    with harness.db() as session:
        assert [(p.plan_id, p.amount_cents) for p in session.scalars(select(Payment))] == [(2, 4000)]


def test_a_stale_back_is_refused_and_back_works_after_a_restart(harness):
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    mark = tg.send_text(DARIUSH, "/buy")
    step = tg.reply(DARIUSH["id"], mark, QUESTIONS["fa"]["cat"])
    mark = tg.press(DARIUSH, step, "buy:cat:d")
    step = tg.reply(DARIUSH["id"], mark, QUESTIONS["fa"]["dur"], method="editMessageText")
    assert "خارجی" in step.text  # the location chosen for him, said
    mark = tg.press(DARIUSH, step, "buy:back:loc")  # Back of a step that is not the current one
    stale = answered(tg, mark, "در دسترس نیست")
    assert stale.text == "این گزینه در دسترس نیست. لطفاً یکی از دکمه‌ها را انتخاب کنید."
    mark = tg.press(DARIUSH, step, "buy:dur:30")
    summary = tg.reply(DARIUSH["id"], mark, QUESTIONS["fa"]["confirm"], method="editMessageText")

    # A restart while he reads the summary: Back still knows where to go.
    harness.stop_bot()
    harness.start_bot()
    mark = tg.press(DARIUSH, summary, summary.button(BACK["fa"]))
    step = tg.reply(DARIUSH["id"], mark, QUESTIONS["fa"]["dur"], method="editMessageText")
    state = settled(harness, DARIUSH)
    assert state["step"] == "dur" and "days" not in state and "plan_id" not in state

    # Cancelled: a Back pressed afterwards is stale.
    mark = tg.press(DARIUSH, step, "buy:no")
    tg.reply(DARIUSH["id"], mark, "لغو شد", method="editMessageText")
    mark = tg.press(DARIUSH, step, step.button(BACK["fa"]))
    stale = answered(tg, mark, "در دسترس نیست")
    assert stale.text == "این گزینه در دسترس نیست. لطفاً یکی از دکمه‌ها را انتخاب کنید."
    assert harness.shop.store.get(DARIUSH["id"]) == {}
    assert harness.payments() == 0


def test_back_from_a_discounted_summary_takes_the_code_off(harness, client, store_shop):
    code = {"code": "NOWRUZ", "percent_off": 20}
    assert client.post("/api/v1/discount-codes", json=code, headers=store_shop["admin"].headers).status_code == 201
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/buy")
    summary = press_choices(tg, ALICE, tg.reply(ALICE["id"], mark, "What kind of service?"))
    mark = tg.press(ALICE, summary, "buy:code")
    ask = tg.reply(ALICE["id"], mark, "Send your discount code")
    assert ask.button_data() == ["buy:nocode", "buy:no"]  # "Continue without a code" is the way back
    mark = tg.send_text(ALICE, "nowruz")
    discounted = tg.reply(ALICE["id"], mark, "To pay: 12 USD")
    mark = tg.press(ALICE, discounted, discounted.button("Back"))
    step = tg.reply(ALICE["id"], mark, "For how long?", method="editMessageText")
    state = settled(harness, ALICE)
    assert not {"code", "amount", "off", "days", "plan_id"} & set(state)
    mark = tg.press(ALICE, step, "buy:dur:30")
    summary = tg.reply(ALICE["id"], mark, "Your order", method="editMessageText")
    assert "To pay" not in summary.text and "buy:code" in summary.button_data()
