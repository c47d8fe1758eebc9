"""/start and the language choice (asked once), /help, /cancel, and the polite fallbacks."""

from __future__ import annotations

import re

from telebot import util
from telebot.types import CallbackQuery, Message

from .. import keyboards, menus
from ..context import Shop, guarded
from ..i18n import all_texts, language_of, t
from .purchase import cancelled_key

# Telegram's start parameters are at most 64 of A-Z a-z 0-9 _ -.
_REFERRAL = re.compile(r"ref_(?P<code>[A-Za-z0-9_-]{1,60})")


def register(shop: Shop) -> None:
    bot = shop.bot

    @bot.message_handler(commands=["start"], chat_types=["private"])
    @guarded(shop)
    def start(message: Message) -> None:
        # An invite link opens the chat with /start ref_<code>: the API refers the customer if this is their first
        # contact, and ignores the code otherwise (a bad one too): the customer sees the usual /start either way.
        payload = _REFERRAL.fullmatch(util.extract_arguments(message.text or "") or "")
        code = payload["code"] if payload else None
        # The language is asked once, on the first /start, with Telegram's language as the default meanwhile;
        # later a /start is the menu in the chosen language (🌐 Language changes it).
        telegram_language = language_of((message.from_user.language_code or "")[:2])
        user, created = shop.api.start_user(message.from_user.id, message.from_user.username, telegram_language, code)
        shop.store.cache_set(f"user:{message.from_user.id}", user, 120)
        if user.get("is_admin") and message.chat.type == "private":  # an admin's own chat: the admin commands too
            menus.admin_menu(shop, message.chat.id, language_of(user.get("language")))
        if created:
            shop.say(message.chat.id, t("en", "choose_language"), reply_markup=keyboards.language_choice())
            return
        language = language_of(user.get("language"))
        shop.say(message.chat.id, t(language, "welcome"), reply_markup=keyboards.main_menu(language))

    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_language"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def language_menu(message: Message) -> None:
        shop.say(message.chat.id, t("en", "choose_language"), reply_markup=keyboards.language_choice())

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("lang:"))
    @guarded(shop, "callback")
    def choose_language(call: CallbackQuery) -> None:
        fields = keyboards.parse_callback(call.data)
        if fields is None:
            bot.answer_callback_query(call.id, t(shop.language(call.from_user), "choice_stale"))
            return
        language = fields["lang"]
        user = shop.api.upsert_user(call.from_user.id, call.from_user.username, language)
        shop.store.cache_set(f"user:{call.from_user.id}", user, 120)
        if user.get("is_admin") and call.message.chat.type == "private":  # the admin menu, in the new language
            menus.admin_menu(shop, call.message.chat.id, language)
        bot.answer_callback_query(call.id)
        bot.edit_message_text(t(language, "language_saved"), call.message.chat.id, call.message.message_id)
        shop.say(call.message.chat.id, t(language, "welcome"), reply_markup=keyboards.main_menu(language))

    @bot.message_handler(commands=["help"], chat_types=["private"])
    @guarded(shop)
    def help_(message: Message) -> None:
        language = shop.language(message.from_user)
        shop.say(message.chat.id, t(language, "help"), reply_markup=keyboards.main_menu(language))

    @bot.message_handler(commands=["cancel"], chat_types=["private"])
    @guarded(shop)
    def cancel(message: Message) -> None:
        language = shop.language(message.from_user)
        state = shop.store.get(message.from_user.id)
        shop.store.clear(message.from_user.id)
        shop.say(
            message.chat.id,
            t(language, cancelled_key(state) if state else "nothing_to_cancel"),
            reply_markup=keyboards.main_menu(language),
        )


def register_fallbacks(shop: Shop) -> None:
    bot = shop.bot

    @bot.message_handler(func=lambda m: (m.text or "").startswith("/"), content_types=["text"], chat_types=["private"])
    @guarded(shop)
    def unknown_command(message: Message) -> None:
        shop.say(message.chat.id, t(shop.language(message.from_user), "unknown_command"))

    @bot.message_handler(
        func=lambda m: True,
        content_types=["text", "photo", "document", "sticker", "voice", "video", "audio", "location", "contact"],
        chat_types=["private"],
    )
    @guarded(shop)
    def stray(message: Message) -> None:
        language = shop.language(message.from_user)
        shop.say(message.chat.id, t(language, "unknown_input"), reply_markup=keyboards.main_menu(language))

    @bot.callback_query_handler(func=lambda c: True)
    @guarded(shop, "callback")
    def stray_callback(call: CallbackQuery) -> None:
        bot.answer_callback_query(call.id, t(shop.language(call.from_user), "choice_stale"))
