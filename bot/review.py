"""The admins' review cards: what a card says (the payment, the customer's history, times in the shop's time
zone), the cards posted of each payment (so a decision made anywhere updates all of them), and the compact
/payments list.

Each card the bot posts is remembered in its store for POST_TTL_SECONDS (longer than a payment can wait:
AUTO_ACCEPT_DAYS): the payment's posts (chat, message) and, per post, the card's text and language, so a
button pressed under it, or a payment_decided notification, edits it without asking the API again.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from telebot.apihelper import ApiTelegramException
from telebot.types import InlineKeyboardMarkup

from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .i18n import data_size, money, t

log = logging.getLogger(__name__)
POST_TTL_SECONDS = 10 * 24 * 3600
LIST_LIMIT = 30  # payments in one /payments message (one button each)
AUTOMATIC_REVIEWER = "the automatic acceptance"


# --- what a card says ---------------------------------------------------------------------------------------


def local_time(value: str | None, zone: str) -> str:
    """An API timestamp (ISO 8601, UTC) as "YYYY-MM-DD HH:MM" in the shop's time zone; "" for none."""
    if not value:
        return ""
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def age(value: str, language: str, now: datetime | None = None) -> str:
    """How long ago VALUE was: minutes, hours or days."""
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    minutes = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds() // 60))
    if minutes < 60:
        return t(language, "age_minutes", n=minutes)
    if minutes < 48 * 60:
        return t(language, "age_hours", n=minutes // 60)
    return t(language, "age_days", n=minutes // (24 * 60))


def customer_link(user: dict[str, Any]) -> str:
    """A tappable link to the customer (tg://user works without a @username), and their Telegram id."""
    telegram_id = int(user["telegram_id"])
    label = f"@{user['username']}" if user.get("username") else str(telegram_id)
    return f'<a href="tg://user?id={telegram_id}">{html.escape(label, quote=False)}</a> ({telegram_id})'


def customer_label(user: dict[str, Any]) -> str:
    return f"@{user['username']}" if user.get("username") else str(user["telegram_id"])


def what(payment: dict[str, Any], language: str) -> str:
    """What the payment pays for: a plan, a renewal or extra data of a config, or a wallet top-up (no plan,
    and only an admin approves it: no auto-accept time)."""
    plan = (payment.get("plan") or {}).get("name")
    purpose = payment.get("purpose", "purchase")
    if purpose == "topup":
        return t(language, "admin_topup")
    if purpose == "renewal":
        return t(language, "admin_renewal", id=payment.get("extends_config_id"), plan=plan or "")
    if purpose == "extra_data":
        data = data_size(payment.get("extra_data_mb"), language)
        return t(language, "admin_extra_data", id=payment.get("extends_config_id"), data=data)
    return plan or ""


def is_free_order(payment: dict[str, Any]) -> bool:
    """A discount code took the whole price: there is no receipt to show."""
    return bool(payment.get("discount")) and payment["amount_cents"] == 0


def history_line(shop: Shop, user_id: int, language: str) -> str:
    """The customer's record in two lines; "" when the API cannot say (the card goes out without it)."""
    try:
        history = shop.api.history(user_id)
    except (ApiError, ApiUnavailable) as exc:
        log.warning("No history for the review card: %s", exc)
        return ""
    zone = shop.settings.shop_timezone
    counts = history["payments"]
    line = t(
        language,
        "admin_history",
        since=local_time(history["created_at"], zone)[:10],
        trial=local_time(history.get("trial_used_at"), zone)[:10] or t(language, "admin_history_no_trial"),
        approved=counts["approved"],
        rejected=counts["rejected"],
        pending=counts["pending"],
        paid=money(history["approved_cents"], shop.settings.currency, language),
        configs=history["active_configs"],
    )
    if history.get("is_banned"):
        line += "\n" + t(language, "admin_history_banned", reason=history.get("ban_reason") or "")
    return line


def status_word(status: str, language: str) -> str:
    return t(language, f"payment_status_{status}") if status in ("pending", "approved", "rejected") else status


def with_status(text: str, status: str, language: str) -> str:
    """A card posted while the payment was pending, its first line saying STATUS instead."""
    pending = f"({status_word('pending', language)})"
    return text.replace(pending, f"({status_word(status, language)})", 1)


def card_text(shop: Shop, payment: dict[str, Any], language: str) -> str:
    zone = shop.settings.shop_timezone
    text = t(
        language,
        "admin_new_payment",
        id=payment["id"],
        status=status_word(payment["status"], language),
        raw=customer_link(payment["user"]),
        plan=what(payment, language),
        price=money(payment["amount_cents"], shop.settings.currency, language),
        received=local_time(payment.get("created_at"), zone),
        zone=zone,
        # A wallet top-up has no auto-accept time: only an admin approves it.
        auto=local_time(payment.get("auto_accept_at"), zone) or t(language, "admin_no_auto_accept"),
    )
    discount = payment.get("discount")
    if discount:
        currency = shop.settings.currency
        text += "\n" + t(
            language,
            "admin_discount",
            code=discount["code"],
            off=money(discount["amount_off_cents"], currency, language),
            price=money(discount["price_cents"], currency, language),
        )
    if is_free_order(payment):
        text += "\n" + t(language, "admin_free_order")
    history = history_line(shop, payment["user"]["id"], language)
    if history:
        text += "\n" + history
    config = payment.get("config")  # present right after the payment was recorded
    if config is not None and config.get("node_id") is None:
        text += "\n\n" + t(language, "admin_unplaced")
    return text


def decided_line(language: str, payment_id: int, outcome: dict[str, Any]) -> str:
    """How a decision reads on a card. OUTCOME: status, reviewer, automatic, reason, reason_code, banned (the
    payment_decided notification's payload, or the same built from a decision the bot made)."""
    if outcome.get("reviewer"):
        name = outcome["reviewer"]
    elif outcome.get("automatic"):
        name = t(language, "admin_auto_name")
    else:
        name = t(language, "admin_system_name")
    status = outcome.get("status")
    key = "admin_approved_by" if status == "approved" else "admin_rejected_by"
    lines = [t(language, key, id=payment_id, name=name)]
    if status == "rejected":
        reasons = [t(language, f"reason_{outcome['reason_code']}")] if outcome.get("reason_code") else []
        reasons += [outcome["reason"]] if outcome.get("reason") else []
        if reasons:
            lines.append(t(language, "notify_reason", reason=" — ".join(reasons)))
        if outcome.get("banned"):
            lines.append(t(language, "admin_decided_banned"))
    return "\n".join(lines)


def decided_text(card: str, language: str, payment_id: int, outcome: dict[str, Any]) -> str:
    """A card (as posted, pending) once decided: its status word changed, the decision's lines below it."""
    return (
        with_status(card, outcome.get("status") or "pending", language)
        + "\n\n"
        + decided_line(language, payment_id, outcome)
    )


def outcome_of(payment: dict[str, Any], banned: bool = False) -> dict[str, Any]:
    """A decided payment's view (the API's) as decided_line reads it."""
    # The API names the sweep's acceptance in its view (reviewer_name); the card words it in its own language.
    automatic = payment["status"] == "approved" and payment.get("reviewer") in (None, AUTOMATIC_REVIEWER)
    return {
        "status": payment["status"],
        "reviewer": None if automatic else payment.get("reviewer"),
        "automatic": automatic,
        "reason": payment.get("review_note"),
        "reason_code": payment.get("review_reason_code"),
        "banned": banned,
    }


# --- the cards posted of a payment --------------------------------------------------------------------------


def _card_key(chat_id: int, message_id: int) -> str:
    return f"review:card:{chat_id}:{message_id}"


def remember_post(shop: Shop, payment_id: int, chat_id: int, message_id: int, text: str, language: str) -> None:
    shop.store.cache_set(
        _card_key(chat_id, message_id), {"pid": payment_id, "text": text, "language": language}, POST_TTL_SECONDS
    )
    shop.store.list_add(f"review:posts:{payment_id}", [chat_id, message_id], POST_TTL_SECONDS)


def card_of(shop: Shop, chat_id: int, message_id: int) -> dict[str, Any] | None:
    """The card posted as (CHAT_ID, MESSAGE_ID): its payment id, text and language; None if not known."""
    return shop.store.cache_get(_card_key(chat_id, message_id))


def update_card(shop: Shop, chat_id: int, message_id: int, **changes: Any) -> None:
    card = card_of(shop, chat_id, message_id)
    if card is not None:
        shop.store.cache_set(_card_key(chat_id, message_id), {**card, **changes}, POST_TTL_SECONDS)


def edit(shop: Shop, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> bool:
    """Edit a message the bot sent (no MARKUP: its buttons go); False when Telegram refused (e.g. unchanged)."""
    try:
        shop.bot.edit_message_text(
            text, chat_id, message_id, parse_mode="HTML", reply_markup=markup, disable_web_page_preview=True
        )
    except ApiTelegramException as exc:  # "message is not modified": the same edit was made already
        log.info("Review message not edited: %s", exc.description)
        return False
    return True


def show_decided(shop: Shop, payment_id: int, outcome: dict[str, Any]) -> int:
    """Every card posted of PAYMENT_ID shows OUTCOME, without buttons; returns how many were edited."""
    edited = 0
    for chat_id, message_id in shop.store.list_get(f"review:posts:{payment_id}"):
        card = card_of(shop, chat_id, message_id)
        if card is None:
            continue
        language = card["language"]
        edited += edit(shop, chat_id, message_id, decided_text(card["text"], language, payment_id, outcome))
    return edited


# --- /payments ---------------------------------------------------------------------------------------------


def pending_list(shop: Shop, payments: list[dict[str, Any]], more: bool, language: str) -> str:
    lines = [t(language, "admin_pending_header", count=f"{len(payments)}+" if more else len(payments))]
    lines.extend(
        t(
            language,
            "admin_pending_line",
            id=payment["id"],
            customer=customer_label(payment["user"]),
            plan=what(payment, language),
            price=money(payment["amount_cents"], shop.settings.currency, language),
            age=age(payment["created_at"], language),
        )
        for payment in payments
    )
    if more:
        lines.append(t(language, "admin_pending_more", count=len(payments)))
    return "\n".join(lines)


def base_text(shop: Shop, chat_id: int, message_id: int, payment_id: int, language: str) -> str:
    """The card's text as posted (without what a decision or a step added), rendered again when the bot
    no longer knows it (posted before it kept cards, or forgotten), and then remembered."""
    card = card_of(shop, chat_id, message_id)
    if card is not None and card["pid"] == payment_id:
        return card["text"]
    text = card_text(shop, shop.api.get_payment(payment_id), language)
    remember_post(shop, payment_id, chat_id, message_id, text, language)
    return text
