"""Issue 16, item 4 through the real polling loop: a customer's invite link, a new customer who opens the
shop through it, their purchase approved by an admin's command, and the inviter's reward reaching them in
their language, with their balance."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.i18n import LRM
from control_api.models import User
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, DARIUSH, STAFF, tg_user
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

LINK = re.compile(r"https://t\.me/rayfleet_test_bot\?start=ref_(?P<code>[a-z0-9]{10})")
BAHAR = tg_user(7011, "bahar", "fa")
BEN = tg_user(7012, "ben")
CASES = {
    "en": {
        "referrer": ALICE,
        "language": "English",
        "friend": BAHAR,
        "friend_language": "فارسی",
        "ask": "👥 Invite friends",
        "intro": "Invite friends",
        "share": "Share the link",
        "counts_before": "Invited: 0",
        "counts_after": ("Invited: 1", "Rewarded purchases: 1 (1.50 USD)"),
        "credited": "A friend you invited made their first purchase",
        "balance": "Your balance: 1.50 USD",
    },
    "fa": {
        "referrer": DARIUSH,
        "language": "فارسی",
        "friend": BEN,
        "friend_language": "English",
        "ask": "/invite",
        "intro": "دعوت از دوستان",
        "share": "ارسال لینک",
        "counts_before": "دعوت‌شدگان: 0",
        "counts_after": ("دعوت‌شدگان: 1", "خریدهای پاداش‌دار: 1 (1.50 USD)"),
        "credited": "اولین خرید خود را انجام داد",
        "balance": "موجودی شما: 1.50 USD",
    },
}


def plain(text: str) -> str:
    return text.replace(LRM, "")


def user_id_of(harness, telegram_id: int) -> int | None:
    with harness.db() as session:
        return session.scalar(select(User.id).where(User.telegram_id == telegram_id))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_friend_through_the_invite_link_buys_and_the_inviter_is_rewarded(harness, client, store_shop, case):
    tg, referrer, friend = harness.telegram, case["referrer"], case["friend"]
    begin = len(tg.events)
    choose_language(tg, referrer, case["language"])

    mark = tg.send_text(referrer, case["ask"])
    card = tg.reply(referrer["id"], mark, case["intro"])
    link = LINK.search(card.text)
    assert link is not None, tg.transcript(mark)
    assert case["counts_before"] in plain(card.text) and "10%" in plain(card.text).replace("٪", "%")
    (share,) = [button for row in card.buttons for button in row]
    assert case["share"] in share["text"] and share["url"].startswith("https://t.me/share/url?url=https%3A")

    # The friend opens the bot through the link: the usual /start, and the API records who invited them.
    mark = tg.send_text(friend, f"/start ref_{link['code']}")
    menu = tg.reply(friend["id"], mark, "Choose your language")
    mark = tg.press(friend, menu, menu.button(case["friend_language"]))
    tg.reply(friend["id"], mark, method="sendMessage")
    friend_id, referrer_id = user_id_of(harness, friend["id"]), user_id_of(harness, referrer["id"])
    bot = store_shop["bot"].headers
    assert client.get(f"/api/v1/users/{friend_id}/referral", headers=bot).json["referred_by_user_id"] == referrer_id

    # Their purchase (recorded as the bot records a receipt), approved by an admin's command in the admin chat.
    plan = next(p for p in client.get("/api/v1/plans", headers=bot).json["items"] if p["name"] == "Abroad 30")
    order = {
        "user_id": friend_id,
        "plan_id": plan["id"],
        "amount_cents": plan["price_cents"],
        "evidence_file_id": f"receipt-{friend['id']}",
        "evidence_unique_id": f"unique-{friend['id']}",
    }
    payment = client.post("/api/v1/payments", json=order, headers=bot)
    assert payment.status_code == 201, payment.json
    mark = tg.send_text(STAFF, f"/approve {payment.json['id']}", chat=tg.group(ADMIN_CHAT, "Admins"))
    tg.reply(ADMIN_CHAT, mark, "approved by shopkeeper")

    told = tg.reply(referrer["id"], mark, case["credited"], timeout=20)
    assert case["balance"] in plain(told.text), tg.transcript(mark)
    wallet = client.get(f"/api/v1/users/{referrer_id}/wallet", headers=bot).json
    assert wallet["balance_cents"] == 150 and [e["reason"] for e in wallet["items"]] == ["referral"], wallet
    tg.reply(friend["id"], mark, "#", timeout=20)  # the friend hears of their approval as usual

    mark = tg.send_text(referrer, case["ask"])
    card = tg.reply(referrer["id"], mark, case["intro"])
    assert all(line in plain(card.text) for line in case["counts_after"]), tg.transcript(mark)
    assert link.group(0) in card.text  # the same link
    print("\n" + tg.transcript(begin))


def test_a_late_or_bad_invite_is_only_a_normal_start(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    mark = tg.send_text(ALICE, "/invite")
    code = LINK.search(tg.reply(ALICE["id"], mark, "Invite friends").text)["code"]
    choose_language(tg, BEN, "English")  # BEN knows the shop already

    for user, text in (
        (BEN, f"/start ref_{code}"),  # too late
        (ALICE, f"/start ref_{code}"),  # their own
        (BAHAR, "/start ref_nosuchcode"),  # unknown: BAHAR is new, and stays unreferred
        (DARIUSH, "/start ref_!!"),  # not a code at all
    ):
        mark = tg.send_text(user, text)
        # The language is asked on a customer's first /start only.
        tg.reply(user["id"], mark, "Welcome" if user in (BEN, ALICE) else "Choose your language")
        assert [e.text for e in tg.bot_events(user["id"], mark)] == [tg.reply(user["id"], mark).text]
    bot = store_shop["bot"].headers
    for user in (BEN, ALICE, BAHAR, DARIUSH):
        view = client.get(f"/api/v1/users/{user_id_of(harness, user['id'])}/referral", headers=bot).json
        assert view["referred_by_user_id"] is None, user
    assert (
        client.get(f"/api/v1/users/{user_id_of(harness, ALICE['id'])}/referral", headers=bot).json["invited_count"] == 0
    )
