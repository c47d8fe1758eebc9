"""Support and help: a customer's message relayed to the admin chat with their context, an admin's
Telegram reply to it relayed back, and per-platform "how to connect" help.

The relay keeps no transcript: the admin chat is the record. Which customer a relayed message belongs to is
kept in the bot's store (a week), keyed by the admin chat's message id, so an admin answers with Telegram's
own Reply and never types an id. Only users the API marks is_admin are relayed back; a customer may send
SUPPORT_PER_HOUR messages an hour (a flood costs the admins their channel).
"""

from __future__ import annotations

import logging
from typing import Any

from telebot.types import CallbackQuery, Message

from .. import keyboards
from ..context import Shop, guarded
from ..i18n import all_texts, t
from .admin import send_file

log = logging.getLogger(__name__)
SUPPORT_PER_HOUR = 5
RELAY_TTL_SECONDS = 7 * 24 * 3600
MAX_RELAYED_CHARS = 3000  # under Telegram's 4096 with the context header
PLATFORMS = ("android", "ios", "windows", "macos")


def _relay_key(chat_id: int, message_id: int) -> str:
    return f"support:relay:{chat_id}:{message_id}"


def _answer_key(telegram_id: int, message_id: int) -> str:
    return f"support:answer:{telegram_id}:{message_id}"


def _customer_line(profile: dict[str, Any], telegram_user: Any) -> str:
    """Who wrote: a tappable link to the customer even without a @username."""
    name = telegram_user.first_name or telegram_user.username or str(telegram_user.id)
    handle = f" @{telegram_user.username}" if telegram_user.username else ""
    return f'<a href="tg://user?id={int(telegram_user.id)}">{_escape(name)}</a>{_escape(handle)}'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _over_limit(shop: Shop, telegram_id: int) -> bool:
    key = f"support:count:{telegram_id}"
    sent = int(shop.store.cache_get(key) or 0)
    if sent >= SUPPORT_PER_HOUR:
        return True
    # The window starts at the first message; the per-user lock (guarded) serialises one user's updates.
    shop.store.cache_set(key, sent + 1, 3600)
    return False


def relay_to_admins(shop: Shop, message: Message) -> bool:
    """Post the customer's MESSAGE to the admin chat with their context; True if it was posted."""
    chat_id = shop.settings.admin_chat_id
    if chat_id is None:
        return False
    profile = shop.profile(message.from_user, fresh=True)
    configs = [c for c in shop.api.configs(profile["id"]) if c["status"] not in ("revoked",)]
    language = shop.settings.admin_language
    text = (message.text or message.caption or "").strip()
    if len(text) > MAX_RELAYED_CHARS:
        text = text[:MAX_RELAYED_CHARS] + "…"
    header = t(
        language,
        "support_to_admins",
        raw=_customer_line(profile, message.from_user),
        user_id=profile["id"],
        telegram_id=message.from_user.id,
        customer_language=profile.get("language", "en"),
        configs=sum(1 for c in configs if c["status"] == "active"),
        pending=len(profile.get("pending_payment_ids") or []),
        since=str(profile.get("created_at", ""))[:10],
    )
    if profile.get("is_banned"):
        header += "\n" + t(language, "support_banned_customer")
    body = header + "\n\n" + (_escape(text) if text else t(language, "support_no_text"))
    posted = shop.say(chat_id, body + "\n\n" + t(language, "support_reply_hint"))
    shop.store.cache_set(_relay_key(chat_id, posted.message_id), message.from_user.id, RELAY_TTL_SECONDS)
    file_id, kind = (message.photo[-1].file_id, "photo") if message.photo else (None, None)
    if message.document:
        file_id, kind = message.document.file_id, "document"
    if file_id:  # a screenshot: re-sent by its file id, answerable the same way
        caption = t(language, "support_attachment", telegram_id=message.from_user.id)
        sent_id = send_file(shop, chat_id, file_id, kind, caption)
        if sent_id is not None:
            shop.store.cache_set(_relay_key(chat_id, sent_id), message.from_user.id, RELAY_TTL_SECONDS)
    return True


def register(shop: Shop) -> None:
    bot = shop.bot

    @bot.message_handler(commands=["support"], chat_types=["private"])
    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_support"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def support(message: Message) -> None:
        language = shop.language(message.from_user)
        if shop.settings.admin_chat_id is None:
            shop.say(message.chat.id, t(language, "support_unavailable"), reply_markup=keyboards.main_menu(language))
            return
        shop.store.set(message.from_user.id, {"flow": "support"})
        shop.say(message.chat.id, t(language, "support_ask"), reply_markup=keyboards.support_cancel(language))

    def writing_to_support(message: Message) -> bool:
        if (message.text or "").startswith("/"):
            return False
        if shop.store.get(message.from_user.id).get("flow") == "support":
            return True
        # A customer's Telegram reply to an admin's answer continues the conversation.
        replied = message.reply_to_message
        return (
            replied is not None
            and shop.store.cache_get(_answer_key(message.from_user.id, replied.message_id)) is not None
        )

    @bot.message_handler(func=writing_to_support, content_types=["text", "photo", "document"], chat_types=["private"])
    @guarded(shop)
    def support_message(message: Message) -> None:
        language = shop.language(message.from_user)
        shop.store.clear(message.from_user.id)
        if _over_limit(shop, message.from_user.id):
            shop.say(message.chat.id, t(language, "support_limit"), reply_markup=keyboards.main_menu(language))
            return
        key = "support_sent" if relay_to_admins(shop, message) else "support_unavailable"
        shop.say(message.chat.id, t(language, key), reply_markup=keyboards.main_menu(language))

    def admin_answer(message: Message) -> bool:
        replied = message.reply_to_message
        return (
            shop.settings.admin_chat_id is not None
            and message.chat.id == shop.settings.admin_chat_id
            and replied is not None
            and shop.store.cache_get(_relay_key(message.chat.id, replied.message_id)) is not None
        )

    @bot.message_handler(func=admin_answer, content_types=["text"])
    @guarded(shop)
    def answer(message: Message) -> None:
        admin_language = shop.settings.admin_language
        if not shop.is_admin(message.from_user):
            log.info("A reply to a support message from a non-admin was ignored")
            return
        customer = int(shop.store.cache_get(_relay_key(message.chat.id, message.reply_to_message.message_id)))
        profile = shop.api.get_user_by_telegram(customer) or {}
        language = profile.get("language", "en")
        text = (message.text or "").strip()[:MAX_RELAYED_CHARS]
        sent = shop.say(customer, t(language, "support_answer", text=text))
        shop.store.cache_set(_answer_key(customer, sent.message_id), message.chat.id, RELAY_TTL_SECONDS)
        shop.bot.reply_to(message, t(admin_language, "support_answer_sent"))

    @bot.message_handler(commands=["howto"], chat_types=["private"])
    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_howto"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def howto(message: Message) -> None:
        language = shop.language(message.from_user)
        shop.say(message.chat.id, t(language, "howto_choose"), reply_markup=keyboards.platforms(language))

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith(("howto:", "sup:")))
    @guarded(shop, "callback")
    def pressed(call: CallbackQuery) -> None:
        language = shop.language(call.from_user)
        fields = keyboards.parse_callback(call.data)
        bot.answer_callback_query(call.id, None if fields else t(language, "choice_stale"))
        if fields is None:
            return
        if "platform" in fields:
            url = shop.api.subscription_url(shop.profile(call.from_user)["id"])
            shop.say(
                call.message.chat.id,
                t(language, f"howto_{fields['platform']}")
                + "\n\n"
                + t(language, "howto_subscription", url=_escape(url)),
            )
        elif fields.get("support") == "no":
            shop.store.clear(call.from_user.id)
            shop.say(call.message.chat.id, t(language, "cancelled"), reply_markup=keyboards.main_menu(language))
