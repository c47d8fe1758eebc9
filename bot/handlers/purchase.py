"""The purchase: category → location → duration → data cap → devices → summary → confirm → proof → payment.

Each choice narrows GET /plans to the plans the API can place now (`available`): a choice that leads only
to plans no server has room for is never offered, and the plan is checked again before the payment details
are shown. The state (Redis, with a TTL) survives restarts, so a half-done purchase continues. The proof's
file id is stored before the payment call: a retry re-sends the same id, and the API answers a repeated id
with the same payment, so nothing is paid twice. Every refusal after a receipt keeps the receipt: the same
receipt used by someone else keeps the order at its proof step; a customer over the limit of payments in
review has it passed to the admins with the payment in review. A payment recorded while no server had room
(a race) is told as it is: received, its config follows when a server has room (the notifier's config_ready).

At the summary, "I have a discount code" asks for a code and shows what the API's quote makes of the price
(or the refusal, in the customer's language); the order then goes on with the code and the discounted amount,
which the API checks again when the payment is recorded. A code the API refuses at that point (its last use
taken meanwhile) sends the receipt to the admins. An order a code makes free needs no receipt: it is recorded
at once, with a reference of the bot's own standing in for the proof, and waits for an admin.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from telebot.apihelper import ApiException
from telebot.types import CallbackQuery, InlineKeyboardMarkup, Message, User

from .. import keyboards
from ..api_client import ApiError, ApiRateLimited, ApiUnavailable
from ..context import Shop, guarded
from ..i18n import all_texts, data_size, id_list, money, parse_int, reason_text, t
from . import admin, checkout, receipts

STEPS = ("cat", "loc", "dur", "cap", "dev")
FIELD = {"cat": "category", "loc": "location", "dur": "days", "cap": "cap", "dev": "devices"}
QUESTION = {"cat": "buy_category", "loc": "buy_location", "dur": "buy_duration", "cap": "buy_cap", "dev": "buy_devices"}
NUMERIC = ("dur", "cap", "dev")
PROOF_TYPES = receipts.RECEIPT_TYPES
MAX_PROOF_BYTES = 20 * 1024 * 1024  # what the Bot API lets a bot download
log = logging.getLogger(__name__)


def _plans(shop: Shop, state: dict[str, Any], step: str) -> list[dict]:
    constant = None if "category" not in state else state["category"] == "c"
    if step == "cat":
        plans = shop.api.plans()
    elif step == "loc":
        plans = shop.api.plans(is_constant_ip=constant)
    else:
        plans = shop.api.plans(location_tag=state["location"], is_constant_ip=constant)
    plans = [plan for plan in plans if plan.get("available") is True]  # never sell what cannot be placed now
    for name, key in (("days", "duration_days"), ("cap", "data_limit_mb"), ("devices", "max_devices")):
        if name in state:
            plans = [plan for plan in plans if str(plan[key]) == state[name]]
    return plans


def _options(shop: Shop, step: str, plans: list[dict], language: str) -> list[tuple[str, str]]:
    if step == "cat":
        kinds = sorted({plan["is_constant_ip"] for plan in plans}, reverse=True)
        return [("c" if k else "d", t(language, "cat_constant" if k else "cat_dynamic")) for k in kinds]
    if step == "loc":
        return [
            (tag, checkout.location_label(shop, tag, language))
            for tag in sorted({plan["location_tag"] for plan in plans})
        ]
    key = {"dur": "duration_days", "cap": "data_limit_mb", "dev": "max_devices"}[step]
    values = sorted({plan[key] for plan in plans})
    if step == "dur":
        return [(str(v), t(language, "dur_option", days=v)) for v in values]
    if step == "cap":
        return [(str(v), data_size(v, language)) for v in values]
    return [(str(v), t(language, "dev_option", count=v)) for v in values]


def start_purchase(shop: Shop, message: Message) -> None:
    profile = shop.profile(message.from_user, fresh=True)
    language = profile.get("language", "en")
    if profile.get("is_banned"):
        shop.say(message.chat.id, t(language, "banned", reason=reason_text(language, profile.get("ban_reason"))))
        return
    if _in_review(shop, message.chat.id, language, profile):
        return
    state = {"flow": "buy", "step": "cat"}
    _show_step(shop, message.chat.id, language, state, message.from_user)


def _show_step(shop: Shop, chat_id: int, language: str, state: dict, user: User, edit: int | None = None) -> None:
    step = state["step"]
    options = _options(shop, step, _plans(shop, state, step), language)
    if not options:
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "sold_out" if step == "cat" else "no_plans"))
        return
    text = t(language, QUESTION[step])
    if step in NUMERIC:
        text += "\n" + t(language, "type_hint")
    markup = keyboards.choices(step, options, language)
    if edit:
        shop.bot.edit_message_text(text, chat_id, edit, reply_markup=markup, parse_mode="HTML")
        state["message_id"] = edit
    else:
        state["message_id"] = shop.say(chat_id, text, reply_markup=markup).message_id
    shop.store.set(user.id, state)


def _choose(shop: Shop, chat_id: int, user: User, language: str, state: dict, step: str, value: str) -> bool:
    """Apply a choice; False when it is not one of the current options (stale or tampered)."""
    if state.get("step") != step:
        return False
    plans = _plans(shop, state, step)
    if value not in {v for v, _ in _options(shop, step, plans, language)}:
        return False
    state[FIELD[step]] = value
    edit = state.get("message_id")
    if step != STEPS[-1]:
        state["step"] = STEPS[STEPS.index(step) + 1]
        _show_step(shop, chat_id, language, state, user, edit=edit)
        return True
    plans = _plans(shop, state, "dev")
    if not plans:  # the last servers filled up meanwhile
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "no_plans"))
        return True
    plan = min(plans, key=lambda p: (p["price_cents"], p["id"]))
    state.update(step="confirm", plan_id=plan["id"], price=plan["price_cents"])
    text = checkout.summary(shop, language, plan, state)
    markup = keyboards.confirm(language, offer_code=True)
    shop.bot.edit_message_text(text, chat_id, edit, reply_markup=markup, parse_mode="HTML")
    shop.store.set(user.id, state)
    return True


def _typed_choice(step: str, text: str, options: list[tuple[str, str]]) -> str | None:
    number = parse_int(text)
    if number is None:
        return None
    for value, label in options:
        leading = re.match(r"\d+", label)
        if value == str(number) or (leading and leading.group() == str(number)):
            return value
    return None


def _in_review(shop: Shop, chat_id: int, language: str, profile: dict) -> bool:
    """The customer may not order now (payments in review up to the shop's limit): say so, before any
    payment details are shown. True when refused."""
    if profile.get("can_order", True):
        return False
    ids = profile.get("pending_payment_ids") or []
    shop.say(chat_id, t(language, "payment_in_review", ids=id_list(ids)), reply_markup=keyboards.main_menu(language))
    return True


def _confirm(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> None:
    # Checked again here: a payment may have been sent from another device since /buy.
    if _in_review(shop, chat_id, language, shop.profile(user, fresh=True)):
        shop.store.clear(user.id)
        return
    plan = shop.api.get_plan(state["plan_id"])
    if not plan["is_active"] or plan["price_cents"] != state["price"]:
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "plan_gone"))
        return
    if plan.get("available") is not True:  # no server has room now: no payment details, nothing to pay
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "plan_unavailable"))
        return
    state["step"] = "proof"
    amount = state.get("amount", plan["price_cents"])
    if state.get("code") and amount == 0:
        # Free with the code: nothing to pay and no receipt. The bot's own reference stands in for the proof
        # (stored first, so a retry is the same payment); an admin approves the order.
        reference = f"free-{uuid.uuid4().hex}"
        state["proof"] = {"file_id": reference, "unique_id": reference, "kind": checkout.FREE}
        shop.store.set(user.id, state)
        shop.bot.edit_message_reply_markup(chat_id, state["message_id"], reply_markup=None)
        submit(shop, chat_id, user, language, state)
        return
    shop.store.set(user.id, state)
    shop.bot.edit_message_reply_markup(chat_id, state["message_id"], reply_markup=None)
    text = t(language, "ask_proof", price=money(amount, shop.settings.currency, language))
    text += checkout.payment_instructions(shop)
    shop.say(
        chat_id,
        text,
        reply_markup=keyboards.cancel_only(language),
    )


def readable(shop: Shop, file_id: str) -> bool:
    """Fetch the proof from Telegram (getFile + download): an empty or oversized file is no proof."""
    try:
        info = shop.bot.get_file(file_id)
        content = shop.bot.download_file(info.file_path)
    except ApiException as exc:  # Telegram trouble: the file id is what the payment needs; admins check it
        log.warning("A payment proof could not be downloaded: %s", type(exc).__name__)  # never the file id
        return True
    return 0 < len(content) <= MAX_PROOF_BYTES


# What a refusal of a purchase's payment tells the customer (the codes every order shares are in record_proof).
PURCHASE_REFUSALS = {"plan_not_for_sale": "plan_gone", "amount_mismatch": "plan_gone", "not_found": "plan_gone"}
CreatePayment = Callable[[str, str], "tuple[dict, bool]"]


def record_proof(
    shop: Shop,
    chat_id: int,
    user: User,
    language: str,
    state: dict,
    create: CreatePayment,
    retry: InlineKeyboardMarkup,
    stay: InlineKeyboardMarkup,
    refusals: dict[str, str],
) -> tuple[dict, bool] | None:
    """Record an order's payment from the proof stored in STATE with CREATE(file id, unique id): the payment
    and whether it is new, or None when it was not recorded (the customer was told why).

    Shared by every order paid with a proof (a purchase, a renewal, extra data), so each answers alike: the
    API unreachable keeps the proof (RETRY re-sends the same one: never paid twice); someone else's receipt
    keeps the order at its proof step (STAY: its buttons); a customer over the limit of payments in review
    has the receipt passed to the admins; REFUSALS names the message for the order's own refusal codes."""
    proof = state["proof"]
    try:
        # A proof saved by an older bot has no unique id; its file id stands in (same sender, same file).
        return create(proof["file_id"], proof.get("unique_id") or proof["file_id"])
    except ApiRateLimited as exc:  # codes are not checked for a while: the same proof later is the same payment
        shop.say(chat_id, t(language, "code_busy_proof", minutes=checkout.minutes(exc.retry_after)), reply_markup=retry)
        return None
    except ApiUnavailable:
        shop.say(chat_id, t(language, "api_down_proof"), reply_markup=retry)
        return None
    except ApiError as exc:
        if exc.code in ("evidence_used_elsewhere", "evidence_reused"):
            # Someone else's receipt (or one of an earlier order): the order stays at its proof step for their own.
            state.pop("proof", None)
            shop.store.set(user.id, state)
            shop.say(chat_id, t(language, "receipt_used_elsewhere"), reply_markup=stay)
            return None
        shop.store.clear(user.id)
        if exc.code in checkout.CODE_REFUSALS:
            checkout.refused_at_payment(shop, chat_id, user, language, exc.code, state)
        elif exc.code == "too_many_pending_payments":
            _still_in_review(shop, chat_id, user, language, exc, proof)
        elif exc.code == "user_banned":
            reason = (exc.details or {}).get("reason") if isinstance(exc.details, dict) else None
            shop.say(chat_id, t(language, "banned", reason=reason_text(language, reason) or exc.message))
        elif exc.code in refusals:
            shop.say(chat_id, t(language, refusals[exc.code], **refusal_values(state, exc)))
        else:
            shop.say(chat_id, t(language, "refused", message=exc.message))
        return None


def refusal_values(state: dict, exc: ApiError) -> dict[str, str]:
    """The placeholders an order's refusal message may name: its config, the payments in review."""
    details = exc.details if isinstance(exc.details, dict) else {}
    return {"id": str(state.get("config_id", "")), "ids": id_list(details.get("pending_payment_ids") or [])}


def submit(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> None:
    """Create the payment from the stored proof; tell the user; post it for review."""
    profile = shop.profile(user)

    def create(file_id: str, unique_id: str) -> tuple[dict, bool]:
        # The discounted amount and its code when the customer gave one (checkout.py).
        amount = state.get("amount", state["price"])
        return shop.api.create_payment(
            profile["id"], state["plan_id"], amount, file_id, unique_id, shop.settings.protocol, state.get("code")
        )

    retry = keyboards.InlineKeyboardMarkup()
    retry.row(keyboards.InlineKeyboardButton("🔁", callback_data="buy:retry"))
    stay = keyboards.cancel_only(language)
    recorded = record_proof(shop, chat_id, user, language, state, create, retry, stay, PURCHASE_REFUSALS)
    if recorded is None:
        return
    payment, created = recorded
    proof = state["proof"]
    shop.store.clear(user.id)
    if payment["config"].get("node_id") is None:
        # Recorded, but no server had room (the plan filled up after it was offered): the truth, and the
        # config follows when the sweep places it (a config_ready notification).
        shop.say(chat_id, t(language, "payment_waiting", id=payment["id"]))
    else:
        key = "payment_received" if created else "payment_again"
        if created and proof.get("kind") == checkout.FREE:
            key = "free_order_received"
        # The temporary allowance as an amount, from the config the API issued (TEMPORARY_DATA_PERCENT of the
        # plan for TEMPORARY_DAYS), never a percent the bot assumes.
        config = payment["config"]
        days = max(1, round((config.get("remaining_seconds") or 0) / 86400))
        data = data_size(config.get("data_limit_mb"), language)
        shop.say(chat_id, t(language, key, id=payment["id"], data=data, days=days))
        shop.send_config(chat_id, language, payment["config"], profile["id"])
    if created:
        admin.post_for_review(shop, payment, proof["kind"])


def _still_in_review(shop: Shop, chat_id: int, user: User, language: str, exc: ApiError, proof: dict) -> None:
    """Refused: the customer already has payments in review. The receipt goes to the admins with them."""
    details = exc.details if isinstance(exc.details, dict) else {}
    ids = [int(i) for i in details.get("pending_payment_ids") or []]
    if proof.get("kind") == checkout.FREE:  # no receipt to pass on
        shop.say(
            chat_id, t(language, "payment_in_review", ids=id_list(ids)), reply_markup=keyboards.main_menu(language)
        )
        return
    if not ids:
        shop.say(chat_id, t(language, "refused", message=exc.message))
        return
    passed = receipts.forward_for_payments(shop, user, proof, ids)
    text = t(language, "payment_in_review", ids=id_list(ids))
    text += "\n\n" + t(language, "receipt_passed_on" if passed else "receipt_unrouted")
    shop.say(chat_id, text, reply_markup=keyboards.main_menu(language))


def cancelled_key(state: dict) -> str:
    """What a cancel says: once the payment details were shown, never that nothing was charged."""
    return "cancelled_after_details" if state.get("step") == "proof" else "cancelled"


def register(shop: Shop) -> None:
    bot = shop.bot

    @bot.message_handler(commands=["buy"], chat_types=["private"])
    @bot.message_handler(func=lambda m: m.text in all_texts("menu_buy"), content_types=["text"], chat_types=["private"])
    @guarded(shop)
    def buy(message: Message) -> None:
        start_purchase(shop, message)

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("buy:"))
    @guarded(shop, "callback")
    def pressed(call: CallbackQuery) -> None:
        user, chat_id = call.from_user, call.message.chat.id
        language = shop.language(user)
        fields = keyboards.parse_callback(call.data)
        state = shop.store.get(user.id)
        if fields is None or state.get("flow") != "buy":
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        action = fields.get("action")
        if action == "no":
            shop.store.clear(user.id)
            bot.answer_callback_query(call.id)
            bot.edit_message_text(t(language, cancelled_key(state)), chat_id, call.message.message_id)
        elif action == "ok" and state.get("step") == "confirm":
            bot.answer_callback_query(call.id)
            _confirm(shop, chat_id, user, language, state)
        elif action == "code" and state.get("step") == "confirm" and not state.get("code"):
            bot.answer_callback_query(call.id)
            checkout.ask_code(shop, chat_id, user, language, state)
        elif action == "nocode" and state.get("step") == "code":
            bot.answer_callback_query(call.id)
            checkout.show_summary(shop, chat_id, user, language, state)
        elif action == "retry" and state.get("step") == "proof" and state.get("proof"):
            bot.answer_callback_query(call.id)
            submit(shop, chat_id, user, language, state)
        elif "step" in fields and _choose(shop, chat_id, user, language, state, fields["step"], fields["value"]):
            bot.answer_callback_query(call.id)
        else:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))

    def in_purchase(message: Message) -> bool:
        return shop.store.get(message.from_user.id).get("flow") == "buy" and not (message.text or "").startswith("/")

    @bot.message_handler(
        func=in_purchase,
        content_types=["text", *PROOF_TYPES, "sticker", "voice", "video", "audio"],
        chat_types=["private"],
    )
    @guarded(shop)
    def purchase_input(message: Message) -> None:
        user, chat_id = message.from_user, message.chat.id
        language = shop.language(user)
        state = shop.store.get(user.id)
        step = state.get("step")
        if step == "proof":
            if message.content_type not in PROOF_TYPES:
                shop.say(chat_id, t(language, "proof_wrong"), reply_markup=keyboards.cancel_only(language))
                return
            if not state.get("proof"):  # an earlier proof whose outcome is unknown wins: same id, same payment
                proof = receipts.file_of(message)
                if not readable(shop, proof["file_id"]):
                    shop.say(chat_id, t(language, "proof_wrong"), reply_markup=keyboards.cancel_only(language))
                    return
                state["proof"] = proof
                shop.store.set(user.id, state)
            submit(shop, chat_id, user, language, state)
        elif message.content_type in PROOF_TYPES:  # a receipt before this order's payment details: not for it
            receipts.stray_receipt(shop, message)
        elif step == "code" and message.content_type == "text":
            checkout.apply_code(shop, chat_id, user, language, state, message.text)
        elif step in NUMERIC and message.content_type == "text":
            options = _options(shop, step, _plans(shop, state, step), language)
            value = _typed_choice(step, message.text, options)
            if value is None or not _choose(shop, chat_id, user, language, state, step, value):
                listed = (
                    "، ".join(label for _, label in options)
                    if language == "fa"
                    else ", ".join(label for _, label in options)
                )
                shop.say(chat_id, t(language, "number_invalid", options=listed))
        else:
            shop.say(chat_id, t(language, "choice_stale"))
