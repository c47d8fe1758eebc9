"""Renew and Add data: a paid config gets another period, or more data for this one, on the same link.

Reached from the buttons under a config in /configs and under the expiry and quota notifications
(ext:renew:<config id>, ext:data:<config id>). The steps, each with Back and Cancel, edit one message:

    Renew:     plan (skipped when one plan can renew the config) -> quote -> pay
    Add data:  amount (BOT_EXTRA_DATA_GB; skipped when there is one) -> quote -> pay

The quote comes from the API before anything is paid: the new expiry, the data rule (reset, or carry with
what is carried over), the price, and what the config gets while a receipt is reviewed. Payment is from the
balance, at once, when it covers the price (POST /users/{id}/wallet/purchases with extends_config_id), or
with a receipt under the purchase's proof rules (purchase.record_proof; the payment goes to the admins for
review like a purchase's). The API decides everything: which configs may be extended (offers() asks its
quotes, so no button is shown that it would refuse), which plans may renew one, every price; a refusal's
code picks the reply, in the customer's language.
"""

from __future__ import annotations

from typing import Any

from telebot.types import CallbackQuery, InlineKeyboardMarkup, Message, User

from .. import keyboards, proofs
from ..api_client import ApiError
from ..context import Shop, guarded
from ..i18n import data_size, day, id_list, language_of, money, plan_name, remaining_bytes, t
from ..offers import (
    MB_PER_GB,
    OFFER_GONE,
    Offers,
    actions,
    find_config,
    offers,
    quote_text,
    refusal_key,
    renewal_quotes,
)
from . import admin, checkout, purchase, receipts

# --- showing a step ------------------------------------------------------------------------------------


def _show(shop: Shop, chat_id: int, tg_id: int, state: dict, text: str, markup: InlineKeyboardMarkup) -> None:
    """The step in the flow's message (edited), or a new message when there is none yet."""
    if state.get("message_id"):
        shop.bot.edit_message_text(text, chat_id, state["message_id"], reply_markup=markup, parse_mode="HTML")
    else:
        state["message_id"] = shop.say(chat_id, text, reply_markup=markup).message_id
    shop.store.set(tg_id, state)


def _end(shop: Shop, chat_id: int, tg_id: int, state: dict, text: str, markup: Any = None) -> None:
    """The flow is over: its message says TEXT (MARKUP: buttons to go on with), or a new one does."""
    shop.store.clear(tg_id)
    extra = {"reply_markup": markup} if markup is not None else {}
    if state.get("message_id"):
        shop.bot.edit_message_text(text, chat_id, state["message_id"], parse_mode="HTML", **extra)
    else:
        shop.say(chat_id, text, **extra)


def _refuse(
    shop: Shop, chat_id: int, tg_id: int, language: str, state: dict, exc: ApiError, config: dict | None = None
) -> None:
    """The API refused a step: say why in the customer's words, and end the flow."""
    if exc.code == "user_banned":
        reason = (exc.details or {}).get("reason") if isinstance(exc.details, dict) else None
        _end(shop, chat_id, tg_id, state, t(language, "banned", reason=reason or exc.message))
        return
    key = refusal_key(exc.code, state["what"], config)
    if key is None:
        _end(shop, chat_id, tg_id, state, t(language, "refused", message=exc.message))
        return
    markup = None
    if key == "ext_data_expired" and config is not None:  # renewing is what it needs: offered, if allowed
        markup = actions(offers(shop, state["user_id"], config), state["config_id"], language)
    _end(shop, chat_id, tg_id, state, t(language, key, **purchase.refusal_values(state, exc)), markup)


# --- the steps -----------------------------------------------------------------------------------------


def begin(shop: Shop, chat_id: int, user: User, what: str, config_id: int, edit: int | None = None) -> None:
    """Start renewing (WHAT "renew") or adding data ("data") to CONFIG_ID: its first step, in a new message
    (or EDIT, the menu step's message)."""
    profile = shop.profile(user, fresh=True)
    language = language_of(profile.get("language"))
    if profile.get("is_banned"):
        shop.say(chat_id, t(language, "banned", reason=profile.get("ban_reason") or ""))
        return
    state: dict[str, Any] = {"flow": "extend", "what": what, "config_id": config_id, "user_id": profile["id"]}
    if edit:
        state["message_id"] = edit
    config = find_config(shop, profile["id"], config_id)
    if config is None:
        _end(shop, chat_id, user.id, state, t(language, "ext_gone"))
        return
    _first_step(shop, chat_id, user.id, language, state, config)


def _first_step(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict, config: dict) -> None:
    state.update(used_bytes=config.get("used_bytes") or 0)
    state.pop("proof", None)
    try:
        if state["what"] == "renew":
            _plans_step(shop, chat_id, tg_id, language, state, config)
        else:
            _amounts_step(shop, chat_id, tg_id, language, state)
    except ApiError as exc:
        _refuse(shop, chat_id, tg_id, language, state, exc, config)


def _plans_step(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict, config: dict) -> None:
    quotes = renewal_quotes(shop, state["user_id"], config)
    if not quotes:
        _end(shop, chat_id, tg_id, state, t(language, "ext_no_plans", id=state["config_id"]))
        return
    if len(quotes) == 1:  # one choice: no step to take
        state.update(single=True, plan_id=quotes[0]["plan"]["id"])
        _quote_step(shop, chat_id, tg_id, language, state, quotes[0])
        return
    state.update(step="plan", single=False)
    currency = shop.settings.currency
    options = [
        (
            f"ext:plan:{quote['plan']['id']}",
            t(
                language,
                "ext_plan_option",
                name=plan_name(quote["plan"], language),
                days=quote["plan"]["duration_days"],
                data=data_size(quote["plan"]["data_limit_mb"], language),
                price=money(quote["price_cents"], currency, language),
            ),
        )
        for quote in quotes
    ]
    text = t(language, "ext_choose_plan", id=state["config_id"])
    _show(shop, chat_id, tg_id, state, text, keyboards.extension_choices(options, language))


def _amounts_step(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict) -> None:
    amounts = shop.settings.extra_data_gb
    quotes = [shop.api.extra_data_quote(state["config_id"], state["user_id"], gb * MB_PER_GB) for gb in amounts]
    if len(quotes) == 1:
        state.update(single=True, data_mb=quotes[0]["data_mb"])
        _quote_step(shop, chat_id, tg_id, language, state, quotes[0])
        return
    state.update(step="gb", single=False)
    options = [
        (
            f"ext:gb:{gb}",
            t(
                language,
                "ext_gb_option",
                data=data_size(quote["data_mb"], language),
                price=money(quote["price_cents"], shop.settings.currency, language),
            ),
        )
        for gb, quote in zip(amounts, quotes, strict=True)
    ]
    text = t(language, "ext_choose_gb", id=state["config_id"], date=day(quotes[0]["expires_at"]))
    _show(shop, chat_id, tg_id, state, text, keyboards.extension_choices(options, language))


def _quote(shop: Shop, state: dict) -> dict:
    if state["what"] == "renew":
        return shop.api.renewal_quote(state["config_id"], state["user_id"], state["plan_id"])
    return shop.api.extra_data_quote(state["config_id"], state["user_id"], state["data_mb"])


def _quote_step(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict, quote: dict | None = None) -> None:
    """The quote of the chosen plan or amount, and how to pay it."""
    quote = quote or _quote(shop, state)
    balance = shop.api.balance(state["user_id"])
    state.update(step="quote", price=quote["price_cents"])
    if state["what"] == "renew":
        state.update(plan_name=plan_name(quote["plan"], language), plan_days=quote["plan"]["duration_days"])
        state.update(bridged=quote.get("while_in_review") is not None)  # a receipt extends it while in review
    state.pop("proof", None)
    # Only a display choice: the API refuses a purchase the balance does not cover (insufficient_balance).
    markup = keyboards.extension_payment(language, from_balance=balance >= quote["price_cents"])
    text = quote_text(language, shop.settings.currency, state["what"], quote, balance, state["used_bytes"])
    _show(shop, chat_id, tg_id, state, text, markup)


def _menu_step(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict) -> None:
    """Back from the first step: what to do with the config (its buttons), or Cancel."""
    config = find_config(shop, state["user_id"], state["config_id"])
    found = offers(shop, state["user_id"], config) if config else Offers()
    if not (found.renew or found.data):
        key = "ext_in_review" if found.in_review else "ext_offer_changed"
        values = {"id": state["config_id"], "ids": id_list(list(found.in_review))}
        _end(shop, chat_id, tg_id, state, t(language, key, **values))
        return
    state.update(step="menu")
    markup = keyboards.extension_actions(state["config_id"], found.renew, found.data, language, cancel=True)
    _show(shop, chat_id, tg_id, state, t(language, "ext_menu", id=state["config_id"]), markup)


def _back(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict) -> bool:
    step = state.get("step")
    if step == "proof":
        _quote_step(shop, chat_id, tg_id, language, state)
    elif step == "quote" and not state.get("single"):
        config = find_config(shop, state["user_id"], state["config_id"])
        if config is None:
            _end(shop, chat_id, tg_id, state, t(language, "ext_gone"))
        else:
            _first_step(shop, chat_id, tg_id, language, state, config)
    elif step in ("plan", "gb", "quote"):
        _menu_step(shop, chat_id, tg_id, language, state)
    else:
        return False
    return True


def _ask_proof(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict) -> None:
    """Pay with a receipt: the quote stays above (its buttons go), the payment details below."""
    shop.bot.edit_message_reply_markup(chat_id, state["message_id"], reply_markup=None)
    text = t(language, "ask_proof", price=money(state["price"], shop.settings.currency, language))
    text += checkout.payment_instructions(shop)
    state.update(step="proof")
    state.pop("message_id")
    _show(shop, chat_id, tg_id, state, text, keyboards.extension_back(language))


def _order(state: dict) -> dict[str, int]:
    return {"plan_id": state["plan_id"]} if state["what"] == "renew" else {"data_mb": state["data_mb"]}


def _pay_from_balance(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict) -> None:
    currency = shop.settings.currency
    # The price shown goes with the order: the API debits nothing when the price is no longer that one.
    order = {**_order(state), "expected_amount_cents": state["price"]}
    try:
        paid = shop.api.extend_from_balance(state["config_id"], state["user_id"], order)
    except ApiError as exc:
        if exc.code not in ("insufficient_balance", "amount_mismatch"):
            raise
        quote = _quote(shop, state)
        if exc.code == "amount_mismatch":
            _requote(shop, chat_id, tg_id, language, state, quote, t(language, "ext_price_changed"))
            return
        details = exc.details if isinstance(exc.details, dict) else {}
        balance = money(int(details.get("balance_cents") or 0), currency, language)
        note = t(language, "ext_balance_short", balance=balance, price=money(state["price"], currency, language))
        _requote(shop, chat_id, tg_id, language, state, quote, note)
        return
    config, balance = paid["config"], money(paid["balance_cents"], currency, language)
    if state["what"] == "renew":
        text = t(
            language,
            "ext_renewed_from_balance",
            id=config["id"],
            date=day(config["expires_at"]),
            data=data_size(config["data_limit_mb"], language),
            balance=balance,
        )
    else:
        text = t(
            language,
            "ext_data_from_balance",
            id=config["id"],
            data=data_size(state["data_mb"], language),
            cap=data_size(config["data_limit_mb"], language),
            balance=balance,
        )
    _end(shop, chat_id, tg_id, state, text)


def _requote(shop: Shop, chat_id: int, tg_id: int, language: str, state: dict, quote: dict, note: str) -> None:
    """NOTE (why the payment did not go through), then the quote again in a new message; the old one's
    buttons go."""
    shop.bot.edit_message_reply_markup(chat_id, state.pop("message_id"), reply_markup=None)
    shop.say(chat_id, note)
    _quote_step(shop, chat_id, tg_id, language, state, quote)


def _refusals(state: dict) -> dict[str, str]:
    """What a refusal of the proof's payment says (purchase.record_proof answers the codes every order shares)."""
    return {
        "config_not_renewable": "ext_data_expired" if state["what"] == "data" else "ext_not_renewable",
        "extension_in_review": "ext_in_review",
        "not_found": "ext_gone",
        **dict.fromkeys(OFFER_GONE, "ext_offer_changed"),
    }


def submit(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> None:
    """Record the renewal's or extra data's payment from the stored proof; tell the customer; post it for review."""

    def create(file_id: str, unique_id: str) -> tuple[dict, bool]:
        return shop.api.extend_with_proof(
            state["config_id"], state["user_id"], _order(state), state["price"], file_id, unique_id
        )

    retry, stay = keyboards.extension_retry(language), keyboards.extension_back(language)
    recorded = purchase.record_proof(shop, chat_id, user, language, state, create, retry, stay, _refusals(state))
    if recorded is None:
        return
    payment, created = recorded
    shop.store.clear(user.id)
    config = payment["config"] or {}
    if state["what"] == "renew":
        values = {"id": payment["id"], "config_id": state["config_id"]}
        values.update(name=state.get("plan_name", ""), days=state.get("plan_days", ""))
        parts = [t(language, "ext_renew_received", **values)]
        if state.get("bridged") and config.get("expires_at") and config.get("status") != "expired":
            left = remaining_bytes(config.get("remaining_bytes"), language)
            parts.append(t(language, "ext_meanwhile_now", date=day(config["expires_at"]), data=left))
    else:
        data = data_size(state["data_mb"], language)
        parts = [t(language, "ext_data_received", id=payment["id"], config_id=state["config_id"], data=data)]
    shop.say(chat_id, "\n\n".join(parts))
    if created:
        admin.post_for_review(shop, payment, state["proof"]["kind"])
        proofs.upload(shop, chat_id, language, payment, state["proof"], state["user_id"])


# --- the handlers --------------------------------------------------------------------------------------


def register(shop: Shop) -> None:
    """After the purchase flow (whose receipts it leaves alone), before receipts outside any order."""
    bot = shop.bot

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("ext:"))
    @guarded(shop, "callback")
    def pressed(call: CallbackQuery) -> None:
        user, chat_id, pressed_id = call.from_user, call.message.chat.id, call.message.message_id
        language = shop.language(user)
        fields = keyboards.parse_callback(call.data)
        state = shop.store.get(user.id)
        if fields is None:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        if "extend" in fields:  # Renew / Add data under a config, a notification or the menu step
            bot.answer_callback_query(call.id)
            in_menu = state.get("flow") == "extend" and state.get("message_id") == pressed_id
            begin(shop, chat_id, user, fields["extend"], int(fields["config"]), pressed_id if in_menu else None)
            return
        if state.get("flow") != "extend":
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        step, action = state.get("step"), fields.get("ext")
        if action in ("no", "back", "retry"):
            state["message_id"] = pressed_id if action != "retry" else state.get("message_id")
        elif state.get("message_id") != pressed_id:  # a choice under an older message of the flow
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        bot.answer_callback_query(call.id)
        try:
            if action == "no":
                _end(shop, chat_id, user.id, state, t(language, purchase.cancelled_key(state)))
            elif action == "back":
                if not _back(shop, chat_id, user.id, language, state):
                    shop.say(chat_id, t(language, "choice_stale"))
            elif "plan" in fields and step == "plan":
                state["plan_id"] = int(fields["plan"])
                _quote_step(shop, chat_id, user.id, language, state)
            elif "gb" in fields and step == "gb" and int(fields["gb"]) in shop.settings.extra_data_gb:
                state["data_mb"] = int(fields["gb"]) * MB_PER_GB
                _quote_step(shop, chat_id, user.id, language, state)
            elif action == "wallet" and step == "quote":
                _pay_from_balance(shop, chat_id, user.id, language, state)
            elif action == "proof" and step == "quote":
                _ask_proof(shop, chat_id, user.id, language, state)
            elif action == "retry" and step == "proof" and state.get("proof"):
                submit(shop, chat_id, user, language, state)
            else:
                shop.say(chat_id, t(language, "choice_stale"))
        except ApiError as exc:
            _refuse(shop, chat_id, user.id, language, state, exc)

    def in_extension(message: Message) -> bool:
        return shop.store.get(message.from_user.id).get("flow") == "extend" and not (message.text or "").startswith("/")

    @bot.message_handler(
        func=in_extension,
        content_types=["text", *receipts.RECEIPT_TYPES, "sticker", "voice", "video", "audio"],
        chat_types=["private"],
    )
    @guarded(shop)
    def extension_input(message: Message) -> None:
        user, chat_id = message.from_user, message.chat.id
        language = shop.language(user)
        state = shop.store.get(user.id)
        if state.get("step") != "proof":
            if message.content_type in receipts.RECEIPT_TYPES:  # a receipt before the payment details: not for it
                receipts.stray_receipt(shop, message)
            else:
                shop.say(chat_id, t(language, "choice_stale"))
            return
        if message.content_type not in receipts.RECEIPT_TYPES:
            shop.say(chat_id, t(language, "proof_wrong"), reply_markup=keyboards.extension_back(language))
            return
        if not state.get("proof"):  # an earlier proof whose outcome is unknown wins: same id, same payment
            proof = receipts.file_of(message)
            if not purchase.readable(shop, proof["file_id"]):
                shop.say(chat_id, t(language, "proof_wrong"), reply_markup=keyboards.extension_back(language))
                return
            state["proof"] = proof
            shop.store.set(user.id, state)
        submit(shop, chat_id, user, language, state)
