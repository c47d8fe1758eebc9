"""The API's outbox to users: poll GET /notifications, tell each user in their language, then acknowledge.

A notification is acknowledged only after Telegram accepted the message, or when Telegram says it can never
be delivered (the user blocked the bot, the chat is gone): those would otherwise block the outbox forever.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from telebot.apihelper import ApiTelegramException

from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .i18n import language_of, t

log = logging.getLogger(__name__)
UNDELIVERABLE = (400, 403)


def deliver(shop: Shop, note: dict[str, Any]) -> None:
    """Send one notification; raises when it was not delivered."""
    language, chat_id, payload = language_of(note["language"]), note["telegram_id"], note["payload"]
    kind = note["kind"]
    values = {key: payload.get(key, "") for key in ("payment_id", "config_id", "plan")}
    if kind == "approved":
        shop.say(chat_id, t(language, "notify_approved", **values))
        config = next((c for c in shop.api.configs(note["user_id"]) if c["id"] == payload.get("config_id")), None)
        if config is not None:
            shop.send_config(chat_id, language, config, note["user_id"])
    elif kind == "rejected":
        parts = [t(language, "notify_rejected", **values)]
        if payload.get("reason"):
            parts.append(t(language, "notify_reason", reason=payload["reason"]))
        if payload.get("banned"):
            parts.append(t(language, "notify_banned"))
        shop.say(chat_id, "\n".join(parts))
    elif kind == "migrated":
        links = "\n\n".join(f"<code>{_escape(link)}</code>" for link in payload.get("links") or [])
        shop.say(chat_id, t(language, "notify_migrated", **values) + ("\n\n" + links if links else ""))
    else:  # expiring, quota_80, quota_100, expired
        shop.say(chat_id, t(language, f"notify_{kind}", **values))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_once(shop: Shop) -> int:
    """Deliver what is pending; returns how many were acknowledged."""
    delivered: list[int] = []
    for note in shop.api.notifications():
        try:
            deliver(shop, note)
        except ApiTelegramException as exc:
            if exc.error_code in UNDELIVERABLE:
                log.warning("Notification %s can never be delivered: %s", note["id"], exc.description)
                delivered.append(note["id"])
            else:
                log.warning("Notification %s not delivered yet: %s", note["id"], exc.description)
            continue
        except (ApiUnavailable, ApiError) as exc:
            log.warning("Notification %s not delivered yet: %s", note["id"], exc)
            continue
        delivered.append(note["id"])
    if delivered:
        shop.api.ack(delivered)
    return len(delivered)


class Notifier(threading.Thread):
    """A daemon thread: run_once every interval until stopped."""

    def __init__(self, shop: Shop, interval: float) -> None:
        super().__init__(name="rayfleet-notifier", daemon=True)
        self.shop, self.interval = shop, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                run_once(self.shop)
            except Exception:  # noqa: BLE001 -- an outage of the API or Telegram: try again next round
                log.warning("Notification round failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
