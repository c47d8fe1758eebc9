"""Issue 16, item 1 through the bot's real polling loop: Renew and Add data under each config in /configs
(only where the API allows them), every step with Back, the quote before paying, paid from the balance or
with a receipt an admin approves (the same config, id and link); refusals in the customer's language; the
renewed, data_added, expiring, quota and expired notifications, the last four with their buttons.

The two full renewals (English, Persian) are written as the fake Telegram recorded them to
renewal-<language>.txt in the test's tmp dir (the issue's closing note quotes them)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.i18n import LRM
from control_api.models import User, UserConfig, WalletEntry
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

MIB = 1024 * 1024


def plain(text: str) -> str:
    return text.replace(LRM, "")


def customer(harness, tg_user: dict) -> int:
    with harness.db() as session:
        return session.scalar(select(User.id).where(User.telegram_id == tg_user["id"]))


def plan_id(client, store_shop, name: str) -> int:
    plans = client.get("/api/v1/plans", headers=store_shop["admin"].headers).json["items"]
    return next(plan["id"] for plan in plans if plan["name"] == name)


def paid_config(harness, client, store_shop, user_id: int, plan: str = "Abroad 30", **values) -> UserConfig:
    """A full config of PLAN, live on its node (as an approved purchase leaves it), with VALUES set."""
    body = {"plan_id": plan_id(client, store_shop, plan)}
    created = client.post(f"/api/v1/users/{user_id}/configs", json=body, headers=store_shop["admin"].headers)
    assert created.status_code == 201, created.json
    return set_config(harness, created.json["id"], status="active", **values)


def set_config(harness, config_id: int, **values) -> UserConfig:
    with harness.db() as session:
        config = session.get(UserConfig, config_id)
        for name, value in values.items():
            setattr(config, name, value)
        session.commit()
        session.refresh(config)
        session.expunge(config)
        return config


def stored(harness, config_id: int) -> UserConfig:
    return set_config(harness, config_id)


def links(client, store_shop, config_id: int) -> list[str]:
    return client.get(f"/api/v1/configs/{config_id}", headers=store_shop["admin"].headers).json["links"]


def credit(client, store_shop, user_id: int, cents: int) -> None:
    body = {"amount_cents": cents, "reason": "test credit"}
    answer = client.post(f"/api/v1/users/{user_id}/wallet/adjust", json=body, headers=store_shop["admin"].headers)
    assert answer.status_code == 201, answer.json


def labels(event) -> list[str]:
    return [button["text"] for row in event.buttons for button in row]


def my_configs(tg, user: dict, config_id: int, menu: str = "📄 My configs"):
    mark = tg.send_text(user, menu)
    return tg.reply(user["id"], mark, f"#{config_id}</b>" if user is ALICE else f"#{LRM}{config_id}{LRM}</b>")


def record(tmp_path: Path, language: str, text: str) -> None:
    path = tmp_path / f"renewal-{language}.txt"
    path.write_text(text + "\n", encoding="utf-8")
    print(f"\n{path}:\n{text}")


def test_an_english_renewal_paid_by_receipt_keeps_the_config_and_its_link(harness, client, store_shop, tmp_path):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    user_id = customer(harness, ALICE)
    config = paid_config(harness, client, store_shop, user_id)
    cid, link = config.id, links(client, store_shop, config.id)
    begin = len(tg.events)

    card = my_configs(tg, ALICE, cid)
    # Renew / Add data, then the auto-renewal toggle (bot/auto_renew.py) on its own row, then QR and Subscription.
    view = [f"cfg:qr:{cid}", f"cfg:sub:{cid}"]
    assert card.button_data() == [f"ext:renew:{cid}", f"ext:data:{cid}", f"ar:1:{cid}", *view], tg.transcript(begin)
    mark = tg.press(ALICE, card, f"ext:renew:{cid}")
    step = tg.reply(ALICE["id"], mark, "Choose a plan", method="sendMessage")
    # The plans of the config's location and kind, with prices; the config's own first; Back and Cancel.
    assert labels(step) == [
        "Abroad 30 · 30 days · 10 GB · 15 USD",
        "Abroad 90 · 90 days · 30 GB · 40 USD",
        "« Back",
        "✖️ Cancel",
    ], tg.transcript(mark)

    mark = tg.press(ALICE, step, "ext:back")
    menu = tg.reply(ALICE["id"], mark, "what would you like to do?", method="editMessageText")
    assert menu.button_data() == [f"ext:renew:{cid}", f"ext:data:{cid}", "ext:no"]
    mark = tg.press(ALICE, menu, f"ext:renew:{cid}")
    step = tg.reply(ALICE["id"], mark, "Choose a plan", method="editMessageText")
    mark = tg.press(ALICE, step, step.button("Abroad 30"))
    quote = tg.reply(ALICE["id"], mark, "Renew config", method="editMessageText")
    new_expiry = (config.expires_at + timedelta(days=30)).date().isoformat()
    assert f"After renewal: until <b>{new_expiry}</b>" in quote.text, quote.text
    assert "Data: 10 GB for the new period, counted from zero" in quote.text
    assert "<b>Price: 15 USD</b>" in quote.text and "Your balance: 0 USD" in quote.text
    assert "Your link stays the same." in quote.text
    assert labels(quote) == ["🧾 Pay with a receipt", "« Back", "✖️ Cancel"]  # the balance does not cover it

    mark = tg.press(ALICE, quote, "ext:proof")
    ask = tg.reply(ALICE["id"], mark, "Please pay <b>15 USD</b>", method="sendMessage")
    assert "<code>6037-9911-2233-4455</code>" in ask.text and labels(ask) == ["« Back", "✖️ Cancel"]
    mark, proof_id = tg.send_photo(ALICE)
    received = tg.reply(ALICE["id"], mark, "received and waiting for review")
    assert f"config <b>#{cid}</b> is renewed with Abroad 30 (30 days), on the same link" in received.text
    assert "Meanwhile" not in received.text  # served for a month yet: nothing to bridge while in review
    review = tg.reply(ADMIN_CHAT, mark, "Payment #1")
    assert f"renewal of config #{cid}: Abroad 30" in review.text, review.text
    tg.reply(ADMIN_CHAT, mark, proof_id, method="sendPhoto")

    mark = tg.press(STAFF, review, "adm:ok:1")
    told = tg.reply(ALICE["id"], mark, "is renewed")
    assert f"config <b>#{cid}</b> is renewed (Abroad 30) until <b>{new_expiry}</b>" in told.text, told.text
    assert "Your link stays the same." in told.text
    after = stored(harness, cid)
    assert (after.id, after.uuid, after.kind) == (cid, config.uuid, "full")
    assert after.expires_at == config.expires_at + timedelta(days=30)
    assert links(client, store_shop, cid) == link
    record(tmp_path, "en", tg.transcript(begin, chats={ALICE["id"], ADMIN_CHAT}))


def test_a_persian_renewal_with_carried_data_approved_by_command(harness, client, store_shop, tmp_path):
    tg = harness.telegram
    admin = store_shop["admin"].headers
    carry = {
        "name": "Abroad 60 carry",
        "location_tag": "abroad",
        "duration_days": 60,
        "max_devices": 2,
        "data_limit_mb": 20_480,
        "price_cents": 2500,
        "renewal_data_rule": "carry",
    }
    assert client.post("/api/v1/plans", json=carry, headers=admin).status_code == 201
    choose_language(tg, DARIUSH, "فارسی")
    user_id = customer(harness, DARIUSH)
    config = paid_config(harness, client, store_shop, user_id, used_bytes=4096 * MIB)
    cid, link = config.id, links(client, store_shop, config.id)
    begin = len(tg.events)

    card = my_configs(tg, DARIUSH, cid, "📄 کانفیگ‌های من")
    expected = ["🔄 تمدید", "📦 حجم اضافه", "🔁 تمدید خودکار: خاموش", "📷 QR", "🔗 اشتراک"]
    assert labels(card) == expected, tg.transcript(begin)
    mark = tg.press(DARIUSH, card, f"ext:renew:{cid}")
    step = tg.reply(DARIUSH["id"], mark, "یک پلن انتخاب کنید", method="sendMessage")
    assert plain(labels(step)[1]) == "Abroad 60 carry · 60 روز · 20 GB · 25 USD", labels(step)
    mark = tg.press(DARIUSH, step, step.button("Abroad 60 carry"))
    quote = tg.reply(DARIUSH["id"], mark, "تمدید کانفیگ", method="editMessageText")
    # 10,000 MB of the old period, 4,000 used: 6,000 carried over onto the new plan's 20,000.
    assert "حجم: 20 GB + 6 GB حجم مصرف‌نشدهٔ منتقل‌شده = <b>26 GB</b>" in plain(quote.text), quote.text
    assert "<b>قیمت: 25 USD</b>" in plain(quote.text) and "لینک شما تغییر نمی‌کند" in quote.text

    mark = tg.press(DARIUSH, quote, "ext:back")  # Back: the plans again
    step = tg.reply(DARIUSH["id"], mark, "یک پلن انتخاب کنید", method="editMessageText")
    mark = tg.press(DARIUSH, step, step.button("Abroad 60 carry"))
    quote = tg.reply(DARIUSH["id"], mark, "تمدید کانفیگ", method="editMessageText")
    mark = tg.press(DARIUSH, quote, quote.button("پرداخت با رسید"))
    tg.reply(DARIUSH["id"], mark, "رسید", method="sendMessage")
    mark, _proof = tg.send_document(DARIUSH)
    received = tg.reply(DARIUSH["id"], mark, "در انتظار بررسی")
    assert "با پلن Abroad 60 carry (60 روز) و با همان لینک تمدید می‌شود" in plain(received.text), received.text
    tg.reply(ADMIN_CHAT, mark, f"renewal of config #{cid}: Abroad 60 carry")

    mark = tg.send_text(STAFF, "/approve 1")
    tg.reply(STAFF["id"], mark, "approved by shopkeeper")
    told = tg.reply(DARIUSH["id"], mark, "تمدید شد")
    new_expiry = (config.expires_at + timedelta(days=60)).date().isoformat()
    assert f"تا <b>{new_expiry}</b> با 26 GB حجم" in plain(told.text), told.text
    assert "6 GB حجم مصرف‌نشده به دورهٔ جدید منتقل شد" in plain(told.text)
    after = stored(harness, cid)
    assert (after.uuid, after.data_limit_mb, after.used_bytes) == (config.uuid, 26_624, 0)
    assert links(client, store_shop, cid) == link
    record(tmp_path, "fa", tg.transcript(begin, chats={DARIUSH["id"], ADMIN_CHAT, STAFF["id"]}))


def test_a_renewal_and_extra_data_from_the_balance(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    user_id = customer(harness, ALICE)
    config = paid_config(harness, client, store_shop, user_id, used_bytes=9000 * MIB)
    cid = config.id
    credit(client, store_shop, user_id, 10_000)

    card = my_configs(tg, ALICE, cid)
    mark = tg.press(ALICE, card, f"ext:renew:{cid}")
    step = tg.reply(ALICE["id"], mark, "Choose a plan")
    mark = tg.press(ALICE, step, step.button("Abroad 30"))
    quote = tg.reply(ALICE["id"], mark, "Renew config", method="editMessageText")
    assert "Your balance: 100 USD" in quote.text
    assert labels(quote) == ["💰 Pay from my balance", "🧾 Pay with a receipt", "« Back", "✖️ Cancel"]
    # The price goes up while the quote is on screen: the tap debits nothing and shows the new quote.
    admin = store_shop["admin"].headers
    plan_id = next(
        p["id"] for p in client.get("/api/v1/plans", headers=admin).json["items"] if p["name"] == "Abroad 30"
    )
    assert client.patch(f"/api/v1/plans/{plan_id}", json={"price_cents": 1600}, headers=admin).status_code == 200
    mark = tg.press(ALICE, quote, "ext:wallet")
    tg.reply(ALICE["id"], mark, "The price changed meanwhile")
    quote = tg.reply(ALICE["id"], mark, "Renew config", method="sendMessage")
    assert "<b>Price: 16 USD</b>" in quote.text and "Your balance: 100 USD" in quote.text, quote.text
    assert stored(harness, cid).expires_at == config.expires_at
    mark = tg.press(ALICE, quote, "ext:wallet")
    paid = tg.reply(ALICE["id"], mark, "Paid from your balance", method="editMessageText")
    new_expiry = (config.expires_at + timedelta(days=30)).date().isoformat()
    assert f"config <b>#{cid}</b> now runs until <b>{new_expiry}</b> with 10 GB" in paid.text, paid.text
    assert "Balance: 84 USD" in paid.text and paid.buttons == []
    renewed = stored(harness, cid)
    assert (renewed.expires_at, renewed.used_bytes) == (config.expires_at + timedelta(days=30), 0)

    card = my_configs(tg, ALICE, cid)
    mark = tg.press(ALICE, card, f"ext:data:{cid}")
    step = tg.reply(ALICE["id"], mark, "How much?")
    assert labels(step) == ["1 GB · 1 USD", "5 GB · 5 USD", "10 GB · 10 USD", "« Back", "✖️ Cancel"]
    mark = tg.press(ALICE, step, "ext:gb:5")
    quote = tg.reply(ALICE["id"], mark, "Add data to config", method="editMessageText")
    assert "Extra: 5 GB" in quote.text and "<b>Price: 5 USD</b>" in quote.text and "84 USD" in quote.text
    mark = tg.press(ALICE, quote, "ext:back")  # Back: the amounts again
    step = tg.reply(ALICE["id"], mark, "How much?", method="editMessageText")
    mark = tg.press(ALICE, step, "ext:gb:5")
    quote = tg.reply(ALICE["id"], mark, "Add data to config", method="editMessageText")
    mark = tg.press(ALICE, quote, "ext:wallet")
    paid = tg.reply(ALICE["id"], mark, "Paid from your balance", method="editMessageText")
    assert f"5 GB added to config <b>#{cid}</b>" in paid.text and "Balance: 79 USD" in paid.text
    assert stored(harness, cid).data_limit_mb == 10_240 + 5 * 1024
    with harness.db() as session:
        reasons = session.scalars(select(WalletEntry.reason).where(WalletEntry.user_id == user_id)).all()
    assert sorted(reasons) == ["admin_credit", "extra_data", "renewal"]
    assert harness.payments() == 0  # no review: nothing was posted to the admins


def test_refusals_are_told_in_persian_and_buttons_only_where_the_api_allows(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    user_id = customer(harness, DARIUSH)
    mark = tg.send_text(DARIUSH, "🎁 تست رایگان")
    trial = tg.reply(DARIUSH["id"], mark, "vless://")
    assert trial.buttons == []
    config = paid_config(harness, client, store_shop, user_id)
    cid = config.id

    mark = tg.send_text(DARIUSH, "📄 کانفیگ‌های من")
    card = tg.reply(DARIUSH["id"], mark, f"#{LRM}{cid}{LRM}</b>")
    trial_card = tg.reply(DARIUSH["id"], mark, "تست رایگان")
    # A trial is not renewed: the API says so, no Renew / Add data button is shown (only its QR and Subscription).
    assert [data.split(":")[1] for data in trial_card.button_data()] == ["qr", "sub"]
    view = [f"cfg:qr:{cid}", f"cfg:sub:{cid}"]
    assert card.button_data() == [f"ext:renew:{cid}", f"ext:data:{cid}", f"ar:1:{cid}", *view]

    # A renewal from another device meanwhile: the old card's button is answered with the API's refusal.
    body = {
        "user_id": user_id,
        "plan_id": plan_id(client, store_shop, "Abroad 30"),
        "amount_cents": 1500,
        "evidence_file_id": "file-elsewhere",
        "evidence_unique_id": "unique-elsewhere",
    }
    renewal = client.post(f"/api/v1/configs/{cid}/renew", json=body, headers=store_shop["bot"].headers)
    assert renewal.status_code == 201, renewal.json
    mark = tg.press(DARIUSH, card, f"ext:data:{cid}")
    refused = tg.reply(DARIUSH["id"], mark, "در حال بررسی است")
    assert f"کانفیگ #{cid} هم‌اکنون در حال بررسی است (پرداخت <b>#{renewal.json['id']}</b>)" in plain(refused.text)
    mark = tg.send_text(DARIUSH, "📄 کانفیگ‌های من")
    card = tg.reply(DARIUSH["id"], mark, "در حال بررسی است (پرداخت")
    assert card.button_data() == [f"ar:1:{cid}", *view]  # no Renew / Add data while one is in review

    # Rejected; then the period ends: extra data is refused with a Renew button (what the config needs).
    client.post(f"/api/v1/payments/{renewal.json['id']}/reject", json={}, headers=store_shop["admin"].headers)
    card = my_configs(tg, DARIUSH, cid, "📄 کانفیگ‌های من")
    set_config(harness, cid, expires_at=config.expires_at - timedelta(days=31))
    mark = tg.press(DARIUSH, card, f"ext:data:{cid}")
    refused = tg.reply(DARIUSH["id"], mark, "منقضی شده است")
    assert "حجم اضافه فقط برای دوره‌ای است که هنوز تمام نشده" in refused.text
    assert refused.button_data() == [f"ext:renew:{cid}"]


def test_notifications_of_renewals_extra_data_and_expiry_with_their_buttons(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    choose_language(tg, DARIUSH, "فارسی")
    alice = paid_config(harness, client, store_shop, customer(harness, ALICE))
    dariush = paid_config(harness, client, store_shop, customer(harness, DARIUSH), used_bytes=8500 * MIB)
    expires = alice.expires_at
    both = [f"ext:renew:{alice.id}", f"ext:data:{alice.id}"]

    # The quota warning (Dariush, in Persian) with Add data and Renew; the 3-day and 1-day expiry warnings.
    mark = len(tg.events)
    harness.sweep(now=expires - timedelta(days=2, hours=12))
    quota = tg.reply(DARIUSH["id"], mark, "۸۰٪")
    assert quota.button_data() == [f"ext:renew:{dariush.id}", f"ext:data:{dariush.id}"]
    warned = tg.reply(ALICE["id"], mark, "expires within 3 days")
    assert f"on {expires.date().isoformat()}. Renew it" in warned.text and warned.button_data() == both
    mark = len(tg.events)
    harness.sweep(now=expires - timedelta(hours=20))
    warned = tg.reply(ALICE["id"], mark, "expires within 24 hours")
    assert warned.button_data() == both
    tg.reply(DARIUSH["id"], mark, "کمتر از ۲۴ ساعت دیگر")

    # Renew straight from the warning.
    mark = tg.press(ALICE, warned, f"ext:renew:{alice.id}")
    step = tg.reply(ALICE["id"], mark, "Choose a plan")
    mark = tg.press(ALICE, step, "ext:no")
    tg.reply(ALICE["id"], mark, "cancelled", method="editMessageText")

    # Extra data with a receipt, approved: data_added in Persian.
    mark = tg.press(DARIUSH, quota, f"ext:data:{dariush.id}")
    step = tg.reply(DARIUSH["id"], mark, "چه مقدار؟")
    mark = tg.press(DARIUSH, step, "ext:gb:1")
    quote = tg.reply(DARIUSH["id"], mark, "حجم اضافه برای کانفیگ", method="editMessageText")
    mark = tg.press(DARIUSH, quote, "ext:proof")
    tg.reply(DARIUSH["id"], mark, "رسید")
    mark, _ = tg.send_photo(DARIUSH)
    received = tg.reply(DARIUSH["id"], mark, "در انتظار بررسی")
    assert f"1 GB به کانفیگ <b>#{dariush.id}</b> اضافه می‌شود" in plain(received.text), received.text
    review = tg.reply(ADMIN_CHAT, mark, f"extra data for config #{dariush.id}: 1 GB")
    mark = tg.press(STAFF, review, review.button_data()[0])
    added = tg.reply(DARIUSH["id"], mark, "تأیید شد")
    assert f"1 GB به کانفیگ <b>#{dariush.id}</b> اضافه شد" in plain(added.text), added.text
    assert "11 GB" in plain(added.text)

    # The period ends: expired, with Renew only (extra data is for a running period).
    mark = len(tg.events)
    harness.sweep(now=expires + timedelta(minutes=1))
    ended = tg.reply(ALICE["id"], mark, "has expired")
    assert ended.button_data() == [f"ext:renew:{alice.id}"]

    # Renewed from there with a receipt: the quote says what the config gets while it is reviewed.
    set_config(harness, alice.id, expires_at=expires - timedelta(days=31))  # the sweep's clock, moved back
    mark = tg.press(ALICE, ended, f"ext:renew:{alice.id}")
    step = tg.reply(ALICE["id"], mark, "Choose a plan")
    mark = tg.press(ALICE, step, step.button("Abroad 30"))
    quote = tg.reply(ALICE["id"], mark, "Renew config", method="editMessageText")
    assert "Expired on: " in quote.text, quote.text
    assert "While it is reviewed, the config works until" in quote.text and "with 1 GB left" in quote.text
    mark = tg.press(ALICE, quote, "ext:proof")
    tg.reply(ALICE["id"], mark, "Please pay")
    mark, _ = tg.send_photo(ALICE)
    received = tg.reply(ALICE["id"], mark, "received and waiting for review")
    assert "Meanwhile it works until" in received.text and "with 1 GB left" in received.text, received.text
    assert stored(harness, alice.id).status == "pending"  # back on its node at once, while in review
