"""The API's outbox to users: poll GET /notifications, tell each user in their language, then acknowledge.

A notification is acknowledged only after Telegram accepted the message, or when Telegram says it can never
be delivered (the user blocked the bot, the chat is gone): those would otherwise block the outbox forever.
Each one is acknowledged right after its delivery, not at the end of the round: a timeout halfway through
a round repeats none of the earlier ones. An acknowledgement the API did not take is kept and retried
first next round, and its notification is not sent again meanwhile. Telegram unreachable (a timeout, a
refused connection) ends the round; the one in flight is sent again next round (it may have arrived:
at least once, never lost).

Notifications for the admins ("audience": "admins": node_alert, node_alert_cleared, daily_report) go to the
admin chat (TELEGRAM_ADMIN_CHAT_ID) in BOT_ADMIN_LANGUAGE, under the same rules. payment_decided (a payment was
approved or rejected, anywhere) sends nothing new: every review card the bot posted of that payment is edited
to show the decision, without its buttons (review.show_decided; a card Telegram will not edit is skipped).
The others, without an admin chat, are acknowledged unsent (a warning is logged once per process): nobody could
ever receive them. So is a
notification of an audience or kind this bot does not know (from a newer API), with a warning: it can never be
delivered by this bot and would otherwise stay first in the outbox. One the bot knows but fails to render is
kept in the outbox, and the others go on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from telebot.apihelper import ApiException, ApiTelegramException

from . import auto_renew, offers, review
from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .fleet import alert_notification
from .i18n import data_size, day, language_of, money, plan_name, reason_text, t
from .reports import daily_report_text

log = logging.getLogger(__name__)
UNDELIVERABLE = (400, 403)
USER_KINDS = frozenset(
    (
        "approved",
        "rejected",
        "migrated",
        "config_ready",
        "expiring",
        "quota_80",
        "quota_100",
        "expired",
        "wallet_credited",
        "referral_credited",
        "renewed",
        "data_added",
        "auto_renewed",
        "auto_renew_failed",
        "device_limit",
    )
)
# Told with the Renew / Add data buttons the API allows for the config (handlers/renewals.py).
EXTENDABLE_KINDS = frozenset(("expiring", "quota_80", "quota_100", "expired"))
ADMIN_KINDS = frozenset(("node_alert", "node_alert_cleared", "daily_report", "payment_decided"))
_no_admin_chat_logged = threading.Event()


class Undeliverable(Exception):
    """This bot can never deliver the notification: an audience or a kind it does not know."""


def deliver(shop: Shop, note: dict[str, Any]) -> None:
    """Send one notification; raises when it was not delivered (Undeliverable: it never can be)."""
    audience, kind = note.get("audience") or "user", note.get("kind")
    if audience == "admins":
        _deliver_to_admins(shop, note)
        return
    if audience != "user":
        raise Undeliverable(f"audience {audience!r}")
    if kind not in USER_KINDS:
        raise Undeliverable(f"kind {kind!r} for a user")
    language, chat_id, payload = language_of(note["language"]), note["telegram_id"], note["payload"]
    values = {key: payload.get(key, "") for key in ("payment_id", "config_id")}
    values["plan"] = plan_name({"name": payload.get("plan", ""), "name_fa": payload.get("plan_fa")}, language)
    if kind == "approved":
        shop.say(chat_id, t(language, "notify_approved", **values))
        config = next((c for c in shop.api.configs(note["user_id"]) if c["id"] == payload.get("config_id")), None)
        if config is not None:
            shop.send_config(chat_id, language, config, note["user_id"])
    elif kind == "wallet_credited":
        amount = money(int(payload.get("amount_cents") or 0), shop.settings.currency, language)
        shop.say(chat_id, t(language, "notify_wallet_credited", payment_id=values["payment_id"], amount=amount))
    elif kind == "referral_credited":  # a customer this user invited made their first paid purchase
        amount = money(int(payload.get("amount_cents") or 0), shop.settings.currency, language)
        balance = money(int(payload.get("balance_cents") or 0), shop.settings.currency, language)
        shop.say(chat_id, t(language, "notify_referral_credited", amount=amount, balance=balance))
    elif kind == "rejected":
        parts = [t(language, "notify_rejected", **values)]
        # A quick reason comes as a code, worded here in the customer's language; a typed one as written.
        reasons = [reason_text(language, payload.get("reason_code")), payload.get("reason") or ""]
        if any(reasons):
            parts.append(t(language, "notify_reason", reason=" — ".join(reason for reason in reasons if reason)))
        if payload.get("banned"):
            parts.append(t(language, "notify_banned"))
        parts.append(t(language, "rejected_support_hint"))
        shop.say(chat_id, "\n".join(parts))
    elif kind == "migrated":
        links = "\n\n".join(f"<code>{_escape(link)}</code>" for link in payload.get("links") or [])
        shop.say(chat_id, t(language, "notify_migrated", **values) + ("\n\n" + links if links else ""))
    elif kind == "config_ready":  # a config that waited for a server (paid while none had room) is placed
        links = payload.get("links") or []
        parts = [t(language, "notify_config_ready", **values)]
        parts.extend(f"<code>{_escape(link)}</code>" for link in links)
        parts.append(t(language, "sub_recommended", url=_escape(shop.api.subscription_url(note["user_id"]))))
        shop.say(chat_id, "\n\n".join(parts))
        if links:  # the QR code of the subscription URL, which the bot recommends
            shop.send_subscription_qr(chat_id, language, note["user_id"])
    elif kind == "renewed":
        parts = [
            t(
                language,
                "notify_renewed",
                **values,
                date=day(payload.get("expires_at")),
                data=data_size(payload.get("data_limit_mb"), language),
            )
        ]
        if payload.get("carried_mb"):
            parts.append(t(language, "notify_renewed_carried", carried=data_size(payload["carried_mb"], language)))
        shop.say(chat_id, "\n".join(parts))
    elif kind == "data_added":
        data, cap = data_size(payload.get("extra_data_mb"), language), data_size(payload.get("data_limit_mb"), language)
        shop.say(
            chat_id, t(language, "notify_data_added", **values, data=data, cap=cap, date=day(payload.get("expires_at")))
        )
    elif kind == "device_limit":  # the config was used from more devices than its plan allows
        counts = {key: payload.get(key) or 0 for key in ("max_devices", "devices")}
        window = {"cooldown": payload.get("cooldown_minutes") or 0, "window": payload.get("window_minutes") or 0}
        shop.say(chat_id, t(language, "notify_device_limit", **values, **counts, **window))
    elif kind in ("auto_renewed", "auto_renew_failed"):
        text, markup = auto_renew.notification(language, kind, payload, shop.settings.currency)
        shop.say(chat_id, text, reply_markup=markup)
    else:  # expiring, quota_80, quota_100, expired: with the buttons to go on
        _extendable(shop, note, language, values)


def _extendable(shop: Shop, note: dict[str, Any], language: str, values: dict[str, Any]) -> None:
    kind, payload = note["kind"], note["payload"]
    key = f"notify_{kind}"
    if kind == "expiring":
        values = {**values, "date": day(payload.get("expires_at")), "days": payload.get("days_left") or 1}
        key = "notify_expiring" if values["days"] <= 1 else "notify_expiring_days"
    markup = None
    if isinstance(payload.get("config_id"), int):
        markup = offers.actions_for(shop, note["user_id"], payload["config_id"], language)
    shop.say(note["telegram_id"], t(language, key, **values), **({"reply_markup": markup} if markup else {}))


def _deliver_to_admins(shop: Shop, note: dict[str, Any]) -> None:
    kind = note.get("kind")
    if kind not in ADMIN_KINDS:
        raise Undeliverable(f"kind {kind!r} for the admins")
    if kind == "payment_decided":  # edits the cards posted of the payment (none known: nothing to do)
        payload = note.get("payload") or {}
        review.show_decided(shop, int(payload["payment_id"]), payload)
        return
    chat_id = shop.settings.admin_chat_id
    if chat_id is None:
        if not _no_admin_chat_logged.is_set():
            _no_admin_chat_logged.set()
            log.warning("No admin chat (TELEGRAM_ADMIN_CHAT_ID): notifications for the admins are dropped")
        return  # acknowledged unsent: nobody could ever receive it
    language, payload = language_of(shop.settings.admin_language), note.get("payload") or {}
    if kind == "daily_report":
        shop.say(chat_id, daily_report_text(language, shop.settings.currency, payload))
    else:
        shop.say(chat_id, alert_notification(language, kind, payload))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ack(shop: Shop, done: set[int]) -> int:
    """Acknowledge DONE; on success it is emptied, else kept for the next try. Returns how many were taken."""
    if not done:
        return 0
    try:
        shop.api.ack(sorted(done))
    except (ApiUnavailable, ApiError) as exc:
        log.warning("Delivered notifications %s not acknowledged yet: %s", sorted(done), exc)
        return 0
    count = len(done)
    done.clear()
    return count


def run_once(shop: Shop, done: set[int] | None = None) -> int:
    """Deliver what is pending, acknowledging each as soon as Telegram took it; returns how many were.

    DONE holds ids delivered but not yet acknowledged (kept by the caller between rounds)."""
    done = set() if done is None else done
    acked = _ack(shop, done)
    for note in shop.api.notifications():
        if note["id"] in done:
            continue  # delivered already; only its acknowledgement is missing
        try:
            deliver(shop, note)
        except Undeliverable as exc:
            log.warning("Notification %s can never be delivered by this bot: %s", note["id"], exc)
        except ApiTelegramException as exc:
            if exc.error_code not in UNDELIVERABLE:
                log.warning("Notification %s not delivered yet: %s", note["id"], exc.description)
                continue
            log.warning("Notification %s can never be delivered: %s", note["id"], exc.description)
        except (ApiUnavailable, ApiError) as exc:
            log.warning("Notification %s not delivered yet: %s", note["id"], exc)
            continue
        except (ApiException, requests.RequestException) as exc:
            # The class only: a requests message carries the URL, which holds the bot token.
            name = type(exc).__name__
            log.warning("Telegram not reachable (%s); notification %s is sent again next round", name, note["id"])
            break
        except Exception:  # a bug rendering a known kind: kept (a fixed bot sends it), the others go on
            log.exception("Notification %s (%s) could not be rendered", note["id"], note.get("kind"))
            continue
        done.add(note["id"])
        acked += _ack(shop, done)
    return acked


class Notifier(threading.Thread):
    """A daemon thread: run_once every interval until stopped."""

    def __init__(self, shop: Shop, interval: float) -> None:
        super().__init__(name="rayfleet-notifier", daemon=True)
        self.shop, self.interval = shop, interval
        self.stopped = threading.Event()
        self.unacknowledged: set[int] = set()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                run_once(self.shop, self.unacknowledged)
            except Exception:  # noqa: BLE001 -- an outage of the API or Telegram: try again next round
                log.warning("Notification round failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
