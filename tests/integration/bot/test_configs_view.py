"""Issue 16, item 6 through the bot's real polling loop: /configs shows each config as one compact card (plan,
location, used of total, expiry as a date in the shop's time zone, status; never a link) with Renew / Add data,
📷 QR (the subscription URL's QR code) and 🔗 Subscription (the URL, recommended, and the config's own links);
an expired config shows no link anywhere but keeps Renew; a config id that is not the customer's is refused;
a delivered config recommends the subscription URL and its QR code encodes it."""

# Persian text and digits are the point here; ruff's confusable-character check reads them as Latin.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.i18n import LRM
from control_api.subscription_documents import qr_png
from tests.integration.bot.conftest import ALICE, DARIUSH
from tests.integration.bot.test_purchase import choose_language
from tests.integration.bot.test_renewals import customer, links, paid_config, set_config

pytestmark = pytest.mark.postgres

MIB = 1024 * 1024
EXPIRES = datetime(2027, 1, 4, 22, 0, tzinfo=UTC)  # 2027-01-05 01:30 in Tehran: 15 Dey 1405


def uploaded(tg, photo) -> bytes:
    return tg.uploads[photo.file.split()[2]]


def subscription_url(harness, user_id: int) -> str:
    """The URL as the bot's API client gets it (over HTTP, so with the API's host as the bot reaches it)."""
    return harness.shop.api.subscription_url(user_id)


def quiet_after(tg, chat: int, mark: int) -> list:
    """What the bot sent CHAT after MARK, once the press was answered (a refusal: nothing but the answer)."""
    tg.wait(lambda e: e.method == "answerCallbackQuery", mark)
    return [e for e in tg.bot_events(chat, mark) if e.method != "answerCallbackQuery"]


def test_an_english_card_is_compact_and_its_buttons_give_the_qr_and_the_subscription(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    user_id = customer(harness, ALICE)
    config = paid_config(harness, client, store_shop, user_id, used_bytes=1536 * MIB, expires_at=EXPIRES)
    cid, own_links = config.id, links(client, store_shop, config.id)
    assert own_links

    mark = tg.send_text(ALICE, "📄 My configs")
    card = tg.reply(ALICE["id"], mark, f"Config #{cid}</b>")
    assert card.text.startswith(f"<b>Config #{cid}</b> · Abroad 30\n"), card.text
    for part in ("Location: Abroad", "Used: 1.5 GB of 10 GB", "Expires on 2027-01-04", "Status: active"):
        assert part in card.text, (part, card.text)
    assert "vless://" not in card.text and "/sub/" not in card.text
    assert card.button_data() == [
        f"ext:renew:{cid}",
        f"ext:data:{cid}",
        f"ar:1:{cid}",
        f"cfg:qr:{cid}",
        f"cfg:sub:{cid}",
    ]
    assert [b["text"] for b in card.buttons[-1]] == ["📷 QR", "🔗 Subscription"]

    # 📷 QR: a photo of the subscription URL's QR code (the API's, which the service renders).
    url = subscription_url(harness, user_id)
    mark = tg.press(ALICE, card, f"cfg:qr:{cid}")
    photo = tg.reply(ALICE["id"], mark, method="sendPhoto")
    assert uploaded(tg, photo) == qr_png(url) and "subscription URL" in photo.text
    assert uploaded(tg, photo) != qr_png(own_links[0])

    # 🔗 Subscription: the URL, recommended, then the config's own links to copy.
    mark = tg.press(ALICE, card, f"cfg:sub:{cid}")
    answer = tg.reply(ALICE["id"], mark, "Subscription URL")
    assert f"<code>{url}</code>" in answer.text and "(recommended)" in answer.text
    assert all(f"<code>{link.replace('&', '&amp;')}</code>" in answer.text for link in own_links), answer.text
    assert answer.text.index(url) < answer.text.index("vless://")


def test_a_persian_card_reads_the_jalali_date_in_the_shops_time_zone_in_persian_digits(harness, client, store_shop):
    tg = harness.telegram
    harness.shop.settings = replace(harness.shop.settings, shop_timezone="Asia/Tehran")
    choose_language(tg, DARIUSH, "فارسی")
    user_id = customer(harness, DARIUSH)
    cid = paid_config(harness, client, store_shop, user_id, expires_at=EXPIRES).id

    mark = tg.send_text(DARIUSH, "📄 کانفیگ‌های من")
    card = tg.reply(DARIUSH["id"], mark, f"#{LRM}{cid}{LRM}</b>")
    assert card.text.startswith(f"<b>کانفیگ #{LRM}{cid}{LRM}</b> · {LRM}Abroad 30{LRM}\n"), card.text
    for part in (
        "📍 موقعیت: خارجی",
        f"📶 مصرف: {LRM}0 MB{LRM} از {LRM}10 GB{LRM}",
        "📅 انقضا: ۱۵ دی ۱۴۰۵",
        "وضعیت: فعال",
    ):
        assert part in card.text, (part, card.text)
    assert "vless://" not in card.text and "/sub/" not in card.text
    assert [b["text"] for b in card.buttons[-1]] == ["📷 QR", "🔗 اشتراک"]

    mark = tg.press(DARIUSH, card, f"cfg:sub:{cid}")
    answer = tg.reply(DARIUSH["id"], mark, "لینک اشتراک")
    assert "(پیشنهادی)" in answer.text and f"<code>{subscription_url(harness, user_id)}</code>" in answer.text
    assert "vless://" in answer.text
    mark = tg.press(DARIUSH, card, f"cfg:qr:{cid}")
    photo = tg.reply(DARIUSH["id"], mark, method="sendPhoto")
    assert uploaded(tg, photo) == qr_png(subscription_url(harness, user_id)) and "کد QR" in photo.text


def test_an_expired_config_shows_no_link_anywhere_and_keeps_renew(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    user_id = customer(harness, ALICE)
    live = paid_config(harness, client, store_shop, user_id, expires_at=EXPIRES).id
    past = datetime.now(UTC) - timedelta(days=2)
    ended = paid_config(harness, client, store_shop, user_id).id
    set_config(harness, ended, status="expired", expires_at=past)
    assert ended > live  # the newer one, listed after the one in use

    mark = tg.send_text(ALICE, "/configs")
    first = tg.reply(ALICE["id"], mark, "</b> · Abroad 30")
    card = tg.reply(ALICE["id"], mark, f"Config #{ended}</b>")
    assert f"Config #{live}</b>" in first.text and first.message_id < card.message_id
    assert f"Expired on {past.date().isoformat()}" in card.text and "Status: expired" in card.text
    assert "renew it and the same link works again" in card.text
    assert "vless://" not in card.text and "/sub/" not in card.text
    assert card.button_data() == [f"ext:renew:{ended}"]  # Renew; no QR, no Subscription, no Add data

    # Its card from before it expired: the Subscription button answers without a link, with Renew.
    mark = tg.press(ALICE, card, f"cfg:sub:{ended}")
    answer = tg.reply(ALICE["id"], mark, f"Config #{ended} is expired")
    assert "vless://" not in answer.text and "/sub/" not in answer.text
    assert answer.button_data() == [f"ext:renew:{ended}"]
    mark = tg.press(ALICE, card, f"cfg:qr:{ended}")
    tg.reply(ALICE["id"], mark, f"Config #{ended} is expired")
    assert not [e for e in tg.bot_events(ALICE["id"], mark) if e.method == "sendPhoto"]

    # A config delivered again while expired (send_config) shows no link either.
    view = next(c for c in harness.shop.api.configs(user_id) if c["id"] == ended)
    view = {**view, "links": ["vless://should-not-show"]}
    mark = len(tg.events)
    harness.shop.send_config(ALICE["id"], "en", view, user_id)
    delivered = tg.reply(ALICE["id"], mark, f"Config #{ended}")
    assert "vless://" not in delivered.text and "/sub/" not in delivered.text
    assert not [e for e in tg.bot_events(ALICE["id"], mark) if e.method == "sendPhoto"]


def test_another_customers_config_id_in_a_forged_press_is_refused(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    choose_language(tg, DARIUSH, "فارسی")
    theirs = paid_config(harness, client, store_shop, customer(harness, DARIUSH)).id
    mine = paid_config(harness, client, store_shop, customer(harness, ALICE)).id
    mark = tg.send_text(ALICE, "/configs")
    card = tg.reply(ALICE["id"], mark, f"Config #{mine}</b>")

    for forged in (f"cfg:qr:{theirs}", f"cfg:sub:{theirs}", "cfg:sub:999999", "cfg:sub:0", f"cfg:png:{mine}"):
        mark = tg.press(ALICE, card, forged)
        refusal = tg.wait(lambda e: e.method == "answerCallbackQuery", mark)
        assert "not available" in refusal.text, forged
        assert quiet_after(tg, ALICE["id"], mark) == [], forged
    assert not [e for e in tg.bot_events(DARIUSH["id"]) if e.method == "sendPhoto"]


def test_a_delivered_config_recommends_the_subscription_and_its_qr_encodes_it(harness):
    tg = harness.telegram
    for user, language, trial, recommended in (
        (ALICE, "English", "🎁 Free trial", "(recommended)"),
        (DARIUSH, "فارسی", "🎁 تست رایگان", "(پیشنهادی)"),
    ):
        choose_language(tg, user, language)
        mark = tg.send_text(user, trial)
        card = tg.reply(user["id"], mark, "vless://")
        url = subscription_url(harness, customer(harness, user))
        assert recommended in card.text and f"<code>{url}</code>" in card.text
        assert card.text.index(url) < card.text.index("vless://")  # the recommended way first
        photo = tg.reply(user["id"], mark, method="sendPhoto")
        assert uploaded(tg, photo) == qr_png(url)


def test_at_most_ten_cards_and_a_line_saying_how_many_there_are(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    user_id = customer(harness, ALICE)
    ids = [paid_config(harness, client, store_shop, user_id).id for _ in range(11)]
    mark = tg.send_text(ALICE, "/configs")
    tg.reply(ALICE["id"], mark, "Showing 10 of your 11 configs")
    cards = [e for e in tg.bot_events(ALICE["id"], mark) if e.text.startswith("<b>Config #")]
    assert [int(e.text.split("#")[1].split("<")[0]) for e in cards] == sorted(ids, reverse=True)[:10]
