"""The command menus Telegram shows: the customers' (everyone, per language), and the admins' (their own
private chats and the admin chat only, by a chat scope: a customer never sees an admin command)."""

from __future__ import annotations

import logging

from telebot.apihelper import ApiException
from telebot.types import BotCommand, BotCommandScopeChat

from .context import Shop
from .i18n import t

log = logging.getLogger(__name__)
ADMIN_MENU_TTL = 24 * 3600  # an admin's menu is set again at most once a day
COMMANDS = {
    "en": [
        ("start", "Menu and language"),
        ("buy", "Buy a config"),
        ("trial", "Free trial"),
        ("configs", "My configs"),
        ("invite", "Invite friends"),
        ("support", "Talk to support"),
        ("howto", "How to connect"),
        ("cancel", "Cancel the purchase"),
    ],
    "fa": [
        ("start", "منو و زبان"),
        ("buy", "خرید کانفیگ"),
        ("trial", "تست رایگان"),
        ("configs", "کانفیگ‌های من"),
        ("invite", "دعوت از دوستان"),
        ("support", "پشتیبانی"),
        ("howto", "آموزش اتصال"),
        ("cancel", "لغو خرید"),
    ],
}
ADMIN_COMMANDS = ("payments", "approve", "reject", "nodes")


def admin_commands(language: str) -> list[tuple[str, str]]:
    return [(name, t(language, f"admin_cmd_{name}")) for name in ADMIN_COMMANDS]


def publish_commands(shop: Shop) -> None:
    """The customers' menu per language, and the admin chat's (TELEGRAM_ADMIN_CHAT_ID) admin commands."""
    for language, commands in COMMANDS.items():
        shop.bot.set_my_commands(
            [BotCommand(name, text) for name, text in commands], language_code=None if language == "en" else language
        )
    if shop.settings.admin_chat_id is not None:
        commands = admin_commands(shop.settings.admin_language)
        _set(shop, shop.settings.admin_chat_id, commands)


def admin_menu(shop: Shop, chat_id: int, language: str) -> None:
    """An admin's private chat: the customers' commands and the admin commands, in LANGUAGE (set when an admin
    uses the bot; once a day at most)."""
    key = f"admin-menu:{chat_id}:{language}"
    if shop.store.cache_get(key):
        return
    if _set(shop, chat_id, COMMANDS[language] + admin_commands(language)):
        shop.store.cache_set(key, True, ADMIN_MENU_TTL)


def _set(shop: Shop, chat_id: int, commands: list[tuple[str, str]]) -> bool:
    try:
        shop.bot.set_my_commands(
            [BotCommand(name, text) for name, text in commands], scope=BotCommandScopeChat(chat_id)
        )
    except ApiException as exc:  # the menu is a convenience: the commands work without it
        log.warning("The admin command menu of a chat was not set: %s", exc)
        return False
    return True
