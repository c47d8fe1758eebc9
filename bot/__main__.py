"""python -m bot: the Telegram storefront. Polling by default; TELEGRAM_BOT_MODE=webhook for a webhook."""

from __future__ import annotations

import hmac
import logging
import os
import sys
import time

import requests
from flask import Flask, abort, request
from telebot.apihelper import ApiException, ApiTelegramException
from telebot.types import Update, User
from werkzeug.serving import make_server

from .app import build, publish_commands
from .broadcast import Broadcaster
from .config import BotSettings, SettingsError
from .context import Shop
from .holds import HoldRunner
from .notifier import Notifier

log = logging.getLogger("bot")
UPDATES = ["message", "callback_query"]


def run_polling(shop: Shop) -> None:
    """The long-polling loop (returns after shop.bot.stop_polling())."""
    shop.bot.delete_webhook()
    shop.bot.infinity_polling(
        timeout=shop.settings.long_polling_timeout + 10,
        long_polling_timeout=shop.settings.long_polling_timeout,
        allowed_updates=UPDATES,
        logger_level=logging.WARNING,
    )


def webhook_app(shop: Shop) -> Flask:
    """Receives Telegram's POSTs at /telegram/webhook; the secret header proves they come from Telegram."""
    app = Flask("rayfleet-bot-webhook")

    @app.post("/telegram/webhook")
    def receive() -> tuple[str, int]:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(secret, shop.settings.webhook_secret):
            abort(403)
        update = Update.de_json(request.get_data(as_text=True))
        shop.bot.process_new_updates([update])
        return "", 200

    return app


def run_webhook(shop: Shop) -> None:
    settings = shop.settings
    shop.bot.set_webhook(
        url=f"{settings.webhook_url.rstrip('/')}/telegram/webhook",
        secret_token=settings.webhook_secret,
        allowed_updates=UPDATES,
    )
    server = make_server(settings.webhook_listen, settings.webhook_port, webhook_app(shop), threaded=True)
    log.info("Webhook listening on %s:%s", settings.webhook_listen, settings.webhook_port)
    server.serve_forever()


def _wait_for_telegram(shop: Shop) -> User:
    """getMe until Telegram answers (a network outage at boot is not a crash); a wrong token stops the bot."""
    delay = 1.0
    while True:
        try:
            return shop.bot.get_me()
        except ApiTelegramException:
            raise
        except (ApiException, requests.RequestException) as exc:
            log.warning("Telegram not reachable (%s); retrying in %.0f s", exc.__class__.__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 60)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = BotSettings.from_env()
    except SettingsError as exc:
        print(f"bot: {exc}", file=sys.stderr)
        return 2
    shop = build(settings)
    me = _wait_for_telegram(shop)
    log.info("Bot @%s, API %s, state in %s", me.username, settings.api_url, "Redis" if settings.redis_url else "memory")
    publish_commands(shop)
    notifier = Notifier(shop, settings.notify_interval_seconds)
    notifier.start()
    broadcaster = Broadcaster(shop)  # resumes a broadcast a previous run left unfinished
    broadcaster.start()
    holds = HoldRunner(shop)  # makes the admins' held decisions when their undo window is over
    holds.start()
    try:
        run_webhook(shop) if settings.mode == "webhook" else run_polling(shop)
    except KeyboardInterrupt:
        pass
    finally:
        notifier.stop()
        broadcaster.stop()
        holds.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
