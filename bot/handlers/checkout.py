"""Checkout: the order's summary, and the discount code a customer may apply to it.

"I have a discount code" asks for a code and shows what the API's quote makes of the price, or the refusal in
the customer's language (ask again, or go on without one). The money rules are the API's: the bot shows the
quote and sends the code with the payment, where the API judges it again. A code refused at that point (its
last use taken meanwhile) sends the customer's receipt to the admins, who settle it.
"""

from __future__ import annotations

import logging
import math

from telebot.types import User

from .. import keyboards
from ..api_client import ApiError, ApiRateLimited, ApiUnavailable
from ..context import Shop
from ..i18n import copyable_numbers, data_size, language_of, money, normalize_digits, plan_name, t
from . import receipts

# The API's refusals of a discount code, each with its own text (code_reason_<code>).
CODE_REFUSALS = (
    "discount_unknown",
    "discount_expired",
    "discount_not_for_this_plan",
    "discount_already_used_by_you",
    "discount_used_up",
)
log = logging.getLogger(__name__)
FREE = "free"  # the proof kind of an order a code made free: no receipt, an admin approves it


LOCATIONS_TTL = 60  # seconds the bot keeps the API's location catalog


def _catalog(shop: Shop) -> dict[str, dict]:
    """The API's location catalog by tag, kept LOCATIONS_TTL seconds; {} while the API cannot say (a label is
    never worth failing a step for)."""
    cached = shop.store.cache_get("locations")
    if cached is not None:
        return cached
    try:
        catalog = {entry["tag"]: entry for entry in shop.api.locations()}
    except (ApiError, ApiUnavailable):
        log.warning("The location catalog could not be read; showing the plain labels")
        return {}
    shop.store.cache_set("locations", catalog, LOCATIONS_TTL)
    return catalog


def location_label(shop: Shop, tag: str, language: str) -> str:
    """A location tag as a customer in LANGUAGE reads it: the catalog's name (name_fa for Persian, else name),
    else the bot's own words for local and abroad, else the tag."""
    entry = _catalog(shop).get(tag) or {}
    name = (entry.get("name_fa") if language_of(language) == "fa" else None) or entry.get("name")
    if name:
        return name
    return t(language, f"loc_{tag}") if tag in ("local", "abroad") else tag


def payment_instructions(shop: Shop) -> str:
    """The shop's payment instructions (BOT_PAYMENT_INSTRUCTIONS) as a paragraph to append to a message (a
    blank line, then the text with its card numbers and Sheba tap-to-copy), or "" when there are none."""
    instructions = shop.settings.payment_instructions
    return "\n\n" + copyable_numbers(instructions) if instructions else ""


def summary(shop: Shop, language: str, plan: dict, state: dict) -> str:
    """The order as the customer confirms it: the plan, its price, and a discount code's price if one applies."""
    currency = shop.settings.currency
    code = ""
    if state.get("code"):
        off, amount = money(state["off"], currency, language), money(state["amount"], currency, language)
        code = t(language, "summary_code", code=state["code"], off=off, amount=amount)
    return t(
        language,
        "summary",
        name=plan_name(plan, language),
        category=t(language, "cat_constant" if plan["is_constant_ip"] else "cat_dynamic"),
        location=location_label(shop, plan["location_tag"], language),
        days=plan["duration_days"],
        data=data_size(plan["data_limit_mb"], language),
        devices=plan["max_devices"],
        price=money(plan["price_cents"], currency, language),
        raw=code,
    )


def show_summary(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> None:
    """The summary again, as a new message (after a code was applied, or given up)."""
    plan = shop.api.get_plan(state["plan_id"])
    if not plan["is_active"] or plan["price_cents"] != state["price"]:
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "plan_gone"))
        return
    markup = keyboards.confirm(
        language, offer_code=not state.get("code"), back="confirm" if state.get("seen") else None
    )
    state.update(
        step="confirm",
        message_id=shop.say(chat_id, summary(shop, language, plan, state), reply_markup=markup).message_id,
    )
    shop.store.set(user.id, state)


def ask_code(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> None:
    """The summary's buttons go; the bot waits for the code (or "continue without a code")."""
    state["step"] = "code"
    shop.bot.edit_message_reply_markup(chat_id, state["message_id"], reply_markup=None)
    shop.say(chat_id, t(language, "ask_code"), reply_markup=keyboards.code_entry(language))
    shop.store.set(user.id, state)


def minutes(seconds: int) -> int:
    """A Retry-After in whole minutes, for the customer."""
    return max(1, math.ceil(seconds / 60))


def apply_code(shop: Shop, chat_id: int, user: User, language: str, state: dict, text: str) -> None:
    """Ask the API what the typed code makes of the price; the summary with it, or why not (and ask again)."""
    try:
        quote = shop.api.quote_discount(shop.profile(user)["id"], state["plan_id"], normalize_digits(text).strip())
    except ApiRateLimited as exc:
        wait = minutes(exc.retry_after)
        shop.say(chat_id, t(language, "code_rate_limited", minutes=wait), reply_markup=keyboards.code_entry(language))
        return
    except ApiError as exc:
        if exc.code in ("plan_not_for_sale", "not_found"):
            shop.store.clear(user.id)
            shop.say(chat_id, t(language, "plan_gone"))
            return
        # Anything else the API refuses (text that cannot be a code, too) is a code that is not valid.
        reason = t(language, f"code_reason_{exc.code if exc.code in CODE_REFUSALS else CODE_REFUSALS[0]}")
        shop.say(chat_id, t(language, "code_refused", reason=reason), reply_markup=keyboards.code_entry(language))
        return
    state.update(code=quote["code"], amount=quote["amount_cents"], off=quote["amount_off_cents"])
    show_summary(shop, chat_id, user, language, state)


def refused_at_payment(shop: Shop, chat_id: int, user: User, language: str, refusal: str, state: dict) -> None:
    """The code was refused when the payment was recorded (e.g. its last use went meanwhile): the customer may
    have paid the discounted price, so the receipt goes to the admins, who settle it; a free order just ends."""
    proof, reason = state["proof"], f"code_reason_{refusal}"
    if proof.get("kind") == FREE:
        shop.say(
            chat_id,
            t(language, "code_refused_free", reason=t(language, reason)),
            reply_markup=keyboards.main_menu(language),
        )
        return
    admin_language = shop.settings.admin_language
    caption = t(
        admin_language,
        "admin_code_refused_receipt",
        customer=receipts.customer_label(user),
        code=state["code"],
        reason=t(admin_language, reason),
    )
    text = t(language, "code_refused_at_payment", reason=t(language, reason))
    if not receipts.forward(shop, proof, caption):
        text += "\n\n" + t(language, "receipt_unrouted")
    shop.say(chat_id, text, reply_markup=keyboards.main_menu(language))
