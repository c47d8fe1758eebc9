"""Build the bot: TeleBot + API client + state store + handlers. Nothing runs at import time."""

from __future__ import annotations

from telebot import TeleBot
from telebot.storage import StateMemoryStorage

from .api_client import ApiClient
from .config import BotSettings
from .context import Shop
from .handlers import register
from .menus import COMMANDS, publish_commands
from .state import StateStore, make_store


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


__all__ = ["COMMANDS", "build", "publish_commands"]
