"""The purchase: category → location → duration → data cap → devices → summary → confirm → proof → payment.

Each choice narrows GET /plans to the plans the API can place now (`available`): a choice that leads only
to plans no server has room for is never offered, and the plan is checked again before the payment details
are shown. Every choice carries its price (or "from" the cheapest it leads to); a step with a single option
is chosen for the customer and not shown (with every step single, /buy lands on the summary); every step
after the first one shown, the summary included, has Back to the step shown before it (skipped ones are
skipped on the way back too), which takes off the choices made at and after it. Once the category is known,
"All plans" lists every plan of it side by side, one button each straight to its summary.

The state (Redis, with a TTL; Back's trail included) survives restarts, so a half-done purchase continues.
The proof's file id is stored before the payment call: a retry re-sends the same id, and the API answers a
repeated id with the same payment, so nothing is paid twice. Every refusal after a receipt keeps the receipt:
the same receipt used by someone else keeps the order at its proof step; a customer over the limit of
payments in review has it passed to the admins with the payment in review. A payment recorded while no
server had room (a race) is told as it is: received, its config follows when a server has room (the
notifier's config_ready).

At the summary, "I have a discount code" asks for a code and shows what the API's quote makes of the price
(or the refusal, in the customer's language); the order then goes on with the code and the discounted amount,
which the API checks again when the payment is recorded. A code the API refuses at that point (its last use
taken meanwhile) sends the receipt to the admins. An order a code makes free needs no receipt: it is recorded
at once, with a reference of the bot's own standing in for the proof, and waits for an admin.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from telebot.apihelper import ApiException
from telebot.types import CallbackQuery, InlineKeyboardMarkup, Message, User

from .. import keyboards, proofs
from ..api_client import ApiError, ApiRateLimited, ApiUnavailable
from ..context import Shop, guarded
from ..i18n import all_texts, data_size, id_list, money, parse_int, plan_name, reason_text, t
from . import admin, checkout, receipts

STEPS = ("cat", "loc", "dur", "cap", "dev")
FIELD = {"cat": "category", "loc": "location", "dur": "days", "cap": "cap", "dev": "devices"}
QUESTION = {"cat": "buy_category", "loc": "buy_location", "dur": "buy_duration", "cap": "buy_cap", "dev": "buy_devices"}
NUMERIC = ("dur", "cap", "dev")
KEYS = {"days": "duration_days", "cap": "data_limit_mb", "devices": "max_devices"}
# What a choice (or a plan from the list) sets; Back takes them off and puts back those of the step it returns to.
CHOICES = (*FIELD.values(), "plan_id", "price", "code", "amount", "off")
PROOF_TYPES = receipts.RECEIPT_TYPES
MAX_PROOF_BYTES = 20 * 1024 * 1024  # what the Bot API lets a bot download
log = logging.getLogger(__name__)


def _available(plans: list[dict]) -> list[dict]:
    return [plan for plan in plans if plan.get("available") is True]  # never sell what cannot be placed now


def _plans(shop: Shop, state: dict[str, Any], step: str) -> list[dict]:
    constant = None if "category" not in state else state["category"] == "c"
    if step == "cat":
        plans = shop.api.plans()
    elif step in ("loc", "list"):
        plans = shop.api.plans(is_constant_ip=constant)
    else:
        plans = shop.api.plans(location_tag=state["location"], is_constant_ip=constant)
    plans = _available(plans)
    if step == "list":  # every plan of the category, side by side
        return plans
    for name, key in KEYS.items():
        if name in state:
            plans = [plan for plan in plans if str(plan[key]) == state[name]]
    return plans


def _value(step: str, plan: dict) -> str:
    if step == "cat":
        return "c" if plan["is_constant_ip"] else "d"
    if step == "loc":
        return plan["location_tag"]
    return str(plan[KEYS[FIELD[step]]])


def _options(shop: Shop, step: str, plans: list[dict], language: str) -> list[tuple[str, str]]:
    """The step's choices as (value, label), in the order they are offered."""
    if step == "cat":
        kinds = sorted({plan["is_constant_ip"] for plan in plans}, reverse=True)
        return [("c" if k else "d", t(language, "cat_constant" if k else "cat_dynamic")) for k in kinds]
    if step == "loc":
        return [
            (tag, checkout.location_label(shop, tag, language))
            for tag in sorted({plan["location_tag"] for plan in plans})
        ]
    values = sorted({plan[KEYS[FIELD[step]]] for plan in plans})
    if step == "dur":
        return [(str(v), t(language, "dur_option", days=v)) for v in values]
    if step == "cap":
        return [(str(v), data_size(v, language)) for v in values]
    return [(str(v), t(language, "dev_option", count=v)) for v in values]


def _price_label(shop: Shop, language: str, step: str, value: str, plans: list[dict]) -> str:
    """What choosing VALUE costs: the price, or "from" the cheapest when it leads to several prices. Of plans
    alike in every choice the cheapest is the one sold (see _advance), so only those prices count."""
    cheapest: dict[tuple, int] = {}
    for plan in plans:
        if _value(step, plan) != value:
            continue
        alike = (plan["is_constant_ip"], plan["location_tag"], *(plan[key] for key in KEYS.values()))
        cheapest[alike] = min(cheapest.get(alike, plan["price_cents"]), plan["price_cents"])
    prices = set(cheapest.values())
    price = money(min(prices), shop.settings.currency, language)
    return price if len(prices) == 1 else t(language, "price_from", price=price)


def _so_far(shop: Shop, language: str, state: dict) -> str:
    """The choices made so far (those the bot made for a single option too), for the step's header."""
    parts = []
    if "category" in state:
        parts.append(t(language, "cat_constant" if state["category"] == "c" else "cat_dynamic"))
    if "location" in state:
        # A catalog name is an admin's text: escaped here, as the header is HTML.
        parts.append(html.escape(checkout.location_label(shop, state["location"], language), quote=False))
    if "days" in state:
        parts.append(t(language, "dur_option", days=state["days"]))
    if "cap" in state:
        parts.append(data_size(int(state["cap"]), language))
    return t(language, "buy_chosen", raw=" · ".join(parts)) + "\n" if parts else ""


def start_purchase(shop: Shop, message: Message) -> None:
    profile = shop.profile(message.from_user, fresh=True)
    language = profile.get("language", "en")
    if profile.get("is_banned"):
        shop.say(message.chat.id, t(language, "banned", reason=reason_text(language, profile.get("ban_reason"))))
        return
    if _in_review(shop, message.chat.id, language, profile):
        return
    # "seen": the steps the customer was shown before this one, each with the choices made before it (Back).
    state = {"flow": "buy", "step": "cat", "seen": []}
    _advance(shop, message.chat.id, language, state, message.from_user)


def _put(shop: Shop, chat_id: int, state: dict, text: str, markup: InlineKeyboardMarkup, edit: int | None) -> None:
    """Show TEXT in the flow's message (edited in place once there is one)."""
    if edit:
        shop.bot.edit_message_text(text, chat_id, edit, reply_markup=markup, parse_mode="HTML")
        state["message_id"] = edit
    else:
        state["message_id"] = shop.say(chat_id, text, reply_markup=markup).message_id


def _advance(shop: Shop, chat_id: int, language: str, state: dict, user: User, edit: int | None = None) -> None:
    """Show the current step; a step with one option is chosen for the customer, on to the next one (with
    every step single, the summary)."""
    while state["step"] in STEPS:
        step = state["step"]
        plans = _plans(shop, state, step)
        options = _options(shop, step, plans, language)
        if not options:
            shop.store.clear(user.id)
            shop.say(chat_id, t(language, "sold_out" if step == "cat" and not state.get("seen") else "no_plans"))
            return
        if len(options) > 1:
            _show_step(shop, chat_id, language, state, user, plans, options, edit)
            return
        state[FIELD[step]] = options[0][0]
        state["step"] = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "confirm"
    if state["step"] == "list":
        _show_list(shop, chat_id, language, state, user, edit)
        return
    plans = _plans(shop, state, "dev")
    if not plans:  # the last servers filled up meanwhile
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "no_plans"))
        return
    _show_summary(shop, chat_id, language, state, user, min(plans, key=lambda p: (p["price_cents"], p["id"])), edit)


def _show_step(
    shop: Shop,
    chat_id: int,
    language: str,
    state: dict,
    user: User,
    plans: list[dict],
    options: list[tuple[str, str]],
    edit: int | None,
) -> None:
    step = state["step"]
    text = _so_far(shop, language, state) + t(language, QUESTION[step])
    if step in NUMERIC:
        text += "\n" + t(language, "type_hint")
    priced = [
        (value, t(language, "buy_option", raw=label, price=_price_label(shop, language, step, value, plans)))
        for value, label in options
    ]
    # All plans of the category side by side, once the category is known (and there is more than one).
    all_plans = step != "cat" and len(_plans(shop, state, "list")) > 1
    back = step if state.get("seen") else None
    _put(shop, chat_id, state, text, keyboards.choices(step, priced, language, back, all_plans), edit)
    shop.store.set(user.id, state)


def _show_list(shop: Shop, chat_id: int, language: str, state: dict, user: User, edit: int | None) -> None:
    plans = sorted(
        _plans(shop, state, "list"),
        key=lambda p: (p["location_tag"], p["duration_days"], p["data_limit_mb"], p["max_devices"], p["price_cents"]),
    )
    if not plans:
        shop.store.clear(user.id)
        shop.say(chat_id, t(language, "no_plans"))
        return
    currency = shop.settings.currency
    category = t(language, "cat_constant" if state["category"] == "c" else "cat_dynamic")
    lines = [t(language, "buy_all_title", category=category)]
    buttons = []
    for number, plan in enumerate(plans, 1):
        price = money(plan["price_cents"], currency, language)
        lines.append(
            t(
                language,
                "buy_all_line",
                number=number,
                name=plan_name(plan, language),
                location=checkout.location_label(shop, plan["location_tag"], language),
                days=plan["duration_days"],
                data=data_size(plan["data_limit_mb"], language),
                devices=plan["max_devices"],
                price=price,
            )
        )
        label = t(language, "buy_all_button", number=number, name=plan_name(plan, language), price=price)
        buttons.append((plan["id"], html.unescape(label)))  # a button is plain text, not HTML
    lines.append(t(language, "buy_all_pick"))
    _put(shop, chat_id, state, "\n\n".join(lines), keyboards.plan_list(buttons, language, back="list"), edit)
    shop.store.set(user.id, state)


def _show_summary(
    shop: Shop, chat_id: int, language: str, state: dict, user: User, plan: dict, edit: int | None
) -> None:
    state.update(step="confirm", plan_id=plan["id"], price=plan["price_cents"])
    text = checkout.summary(shop, language, plan, state)
    markup = keyboards.confirm(language, offer_code=True, back="confirm" if state.get("seen") else None)
    _put(shop, chat_id, state, text, markup, edit)
    shop.store.set(user.id, state)


def _remember(state: dict) -> None:
    """The step being left, with the choices made before it: where Back returns."""
    state.setdefault("seen", []).append(
        {"step": state["step"], "choices": {k: state[k] for k in FIELD.values() if k in state}}
    )


def _choose(shop: Shop, chat_id: int, user: User, language: str, state: dict, step: str, value: str) -> bool:
    """Apply a choice; False when it is not one of the current options (stale or tampered)."""
    if state.get("step") != step:
        return False
    plans = _plans(shop, state, step)
    if value not in {v for v, _ in _options(shop, step, plans, language)}:
        return False
    _remember(state)
    state[FIELD[step]] = value
    state["step"] = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "confirm"
    _advance(shop, chat_id, language, state, user, edit=state.get("message_id"))
    return True


def _open_list(shop: Shop, chat_id: int, user: User, language: str, state: dict) -> bool:
    """All plans of the chosen category; False unless the current step offers the list."""
    if state.get("step") not in STEPS[1:] or "category" not in state:
        return False
    _remember(state)
    state["step"] = "list"
    _show_list(shop, chat_id, language, state, user, edit=state.get("message_id"))
    return True


def _pick(shop: Shop, chat_id: int, user: User, language: str, state: dict, plan_id: int) -> bool:
    """A plan from the list, straight to its summary; False when it is not in the list (stale or tampered)."""
    if state.get("step") != "list":
        return False
    plan = next((p for p in _plans(shop, state, "list") if p["id"] == plan_id), None)
    if plan is None:
        return False
    _remember(state)
    state.update(
        location=plan["location_tag"],
        days=str(plan["duration_days"]),
        cap=str(plan["data_limit_mb"]),
        devices=str(plan["max_devices"]),
    )
    _show_summary(shop, chat_id, language, state, user, plan, edit=state.get("message_id"))
    return True


def _back(shop: Shop, chat_id: int, user: User, language: str, state: dict, step: str) -> bool:
    """Back from STEP to the step shown before it, with the choices made before that one; False when STEP is
    not the current step or nothing was shown before it (stale or tampered)."""
    if state.get("step") != step or not state.get("seen"):
        return False
    previous = state["seen"].pop()
    for key in CHOICES:
        state.pop(key, None)
    state.update(previous["choices"], step=previous["step"])
    _advance(shop, chat_id, language, state, user, edit=state.get("message_id"))
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
        proofs.upload(shop, chat_id, language, payment, proof, profile["id"])


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


def _step_action(shop: Shop, chat_id: int, user: User, language: str, state: dict, fields: dict[str, str]) -> bool:
    """A choice, Back, "All plans" or a plan from it; False when it does not fit the current step (stale)."""
    if "step" in fields:
        return _choose(shop, chat_id, user, language, state, fields["step"], fields["value"])
    if "back" in fields:
        return _back(shop, chat_id, user, language, state, fields["back"])
    if "pick" in fields:
        return _pick(shop, chat_id, user, language, state, int(fields["pick"]))
    return fields.get("action") == "all" and _open_list(shop, chat_id, user, language, state)


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
        elif _step_action(shop, chat_id, user, language, state, fields):
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
