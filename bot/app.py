"""Build the bot: TeleBot + API client + state store + handlers. Nothing runs at import time."""

from __future__ import annotations

from telebot import TeleBot
from telebot.storage import StateMemoryStorage
from telebot.types import BotCommand

from .api_client import ApiClient
from .config import BotSettings
from .context import Shop
from .handlers import register
from .state import StateStore, make_store

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


def build(
    settings: BotSettings, store: StateStore | None = None, api: ApiClient | None = None, threaded: bool = True
) -> Shop:
    # A fresh state storage: telebot's default argument is one instance shared by every bot (unused here).
    bot = TeleBot(
        settings.token, threaded=threaded, num_threads=4, state_storage=StateMemoryStorage(), validate_token=False
    )
    shop = Shop(
        bot=bot,
        api=api
        or ApiClient(settings.api_url, settings.client_id, settings.client_secret, settings.api_timeout_seconds),
        store=store or make_store(settings.redis_url, settings.state_ttl_seconds),
        settings=settings,
    )
    register(shop)
    return shop


def publish_commands(shop: Shop) -> None:
    """The command menu Telegram shows, per language."""
    for language, commands in COMMANDS.items():
        shop.bot.set_my_commands(
            [BotCommand(name, text) for name, text in commands], language_code=None if language == "en" else language
        )
