"""What every handler needs: the bot, the API, the state store, settings, and shared replies."""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from telebot import TeleBot
from telebot.apihelper import ApiException
from telebot.types import CallbackQuery, InlineKeyboardMarkup, InputFile, Message, User

from . import auto_renew, config_cards
from .api_client import ApiClient, ApiError, ApiUnavailable
from .config import BotSettings
from .i18n import language_of, remaining_bytes, remaining_time, t
from .state import StateStore

log = logging.getLogger(__name__)
PROFILE_TTL = 120
STATUSES = ("pending", "active", "suspended", "expired", "revoked")
_STRIPES = 64


@dataclass
class Shop:
    bot: TeleBot
    api: ApiClient
    store: StateStore
    settings: BotSettings
    # Set when a broadcast was started, so the broadcaster (bot/broadcast.py) begins at once.
    wake_broadcaster: threading.Event = field(default_factory=threading.Event)
    _locks: list[threading.Lock] = field(default_factory=lambda: [threading.Lock() for _ in range(_STRIPES)])

    def lock(self, user_id: int) -> threading.Lock:
        """One user's updates are handled one at a time (a flood of presses cannot interleave)."""
        return self._locks[user_id % _STRIPES]

    # Users, as the API knows them (cached briefly; admin checks always ask the API).
    def profile(self, user: User, fresh: bool = False) -> dict[str, Any]:
        key = f"user:{user.id}"
        cached = None if fresh else self.store.cache_get(key)
        if cached:
            return cached
        found = self.api.get_user_by_telegram(user.id) or self.api.upsert_user(
            user.id, user.username, language_of((user.language_code or "")[:2])
        )
        self.store.cache_set(key, found, PROFILE_TTL)
        return found

    def forget_profile(self, telegram_id: int) -> None:
        self.store.cache_set(f"user:{telegram_id}", None, 1)

    def language(self, user: User) -> str:
        try:
            return language_of(self.profile(user).get("language"))
        except (ApiError, ApiUnavailable):
            return language_of((user.language_code or "")[:2])

    def is_admin(self, user: User) -> bool:
        try:
            return (self.api.get_user_by_telegram(user.id) or {}).get("is_admin") is True
        except (ApiError, ApiUnavailable):
            return False

    # Replies.
    def say(self, chat_id: int, text: str, **kwargs: Any) -> Message:
        return self.bot.send_message(chat_id, text, parse_mode="HTML", disable_web_page_preview=True, **kwargs)

    def send_config(
        self,
        chat_id: int,
        language: str,
        config: dict[str, Any],
        user_id: int,
        notes: Sequence[str] = (),
        markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """A config as it is delivered (bought, trial, approved): status, remaining data and time, NOTES (rendered
        lines), the subscription URL (recommended: it stays connected through renewals and moves), the config's
        links, then (once it has links) the QR code of the subscription URL; MARKUP (its buttons) under the card.
        A config no longer in use (expired, paused, revoked) shows no link."""
        kind = t(language, f"kind_{config['kind']}") if config["kind"] in ("temporary", "full", "trial") else ""
        parts = [
            t(
                language,
                "config_card",
                id=config["id"],
                kind=kind or config["kind"],
                status=t(language, f"status_{config['status']}") if config["status"] in STATUSES else config["status"],
                data=remaining_bytes(config.get("remaining_bytes"), language),
                time=remaining_time(config.get("remaining_seconds"), language),
            ),
            *notes,
        ]
        in_use = config_cards.shows_links(config)
        links = (config.get("links") or []) if in_use else []
        if in_use:
            parts.append(t(language, "sub_recommended", url=_escape(self.api.subscription_url(user_id))))
        if links:
            parts.append(t(language, "links_header"))
            parts.extend(f"<code>{_escape(link)}</code>" for link in links)
        elif in_use:
            parts.append(t(language, "no_links"))
        else:
            status = config_cards.status_text(config, language)
            parts.append(t(language, "cfg_no_links", id=config["id"], status=status))
        # Its Renew / Add data buttons (MARKUP), and the auto-renewal toggle when it has one.
        markup = auto_renew.with_toggle(markup, config, language)
        self.say(chat_id, "\n\n".join(parts), **({"reply_markup": markup} if markup.keyboard else {}))
        if links:  # live: the app that scans it gets them at once
            self.send_subscription_qr(chat_id, language, user_id)

    def send_subscription_qr(self, chat_id: int, language: str, user_id: int) -> None:
        """The QR code of the user's subscription URL, as a photo."""
        png = self.api.subscription_qr_png(user_id)
        photo = InputFile(io.BytesIO(png), file_name="subscription.png")
        self.bot.send_photo(chat_id, photo, caption=t(language, "sub_qr_caption"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def guarded(shop: Shop, kind: str = "message") -> Callable:
    """Wrap a handler: one user at a time; an unreachable API or Telegram error becomes a polite reply."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(update: Message | CallbackQuery) -> None:
            user = update.from_user
            chat_id = update.message.chat.id if isinstance(update, CallbackQuery) else update.chat.id
            with shop.lock(user.id):
                try:
                    handler(update)
                except ApiUnavailable as exc:
                    log.warning("API unavailable in %s: %s", handler.__name__, exc)
                    _apologise(shop, update, chat_id, "api_down")
                except ApiError as exc:
                    log.warning("API refused in %s: %s", handler.__name__, exc)
                    _apologise(shop, update, chat_id, "refused", message=exc.message)
                except ApiException:
                    log.exception("Telegram refused a call in %s", handler.__name__)
                except Exception:
                    log.exception("Handler %s failed", handler.__name__)
                    _apologise(shop, update, chat_id, "api_down")

        return run

    return decorate


def _apologise(shop: Shop, update: Message | CallbackQuery, chat_id: int, key: str, **values: Any) -> None:
    language = language_of((update.from_user.language_code or "")[:2])
    cached = shop.store.cache_get(f"user:{update.from_user.id}")
    if cached:
        language = language_of(cached.get("language"))
    try:
        if isinstance(update, CallbackQuery):
            shop.bot.answer_callback_query(update.id)
        shop.say(chat_id, t(language, key, **values))
    except Exception:  # the apology itself failed (Telegram down): nothing more to do
        log.exception("Could not tell the user about an error")
