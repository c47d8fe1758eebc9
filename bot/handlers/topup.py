"""A wallet top-up: money into the customer's balance, through the same proof and review as a purchase.

Started by the "Top up" button of an auto-renewal the balance did not cover (its amount is what was missing):
the customer is shown the amount and the payment details, sends the receipt, and the API records a top-up
payment (POST /payments, purpose topup) that an admin credits; the admins get it in their channel like any
payment. The proof's file id is stored before the call, so a retry (the API was unreachable) is the same
payment, never a second one. Refusals are the purchase's: a receipt used elsewhere keeps the top-up at its
proof step, payments already in review or a ban end it.
"""

from __future__ import annotations

from typing import Any

from telebot.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, User

from .. import keyboards, proofs
from ..api_client import ApiError, ApiUnavailable
from ..auto_renew import TOPUP
from ..context import Shop, guarded
from ..i18n import id_list, money, t
from . import admin, checkout, receipts

FLOW = "topup"


def _cancel_markup(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="top:no"))
    return markup


def start_topup(shop: Shop, chat_id: int, user: User, language: str, amount_cents: int) -> None:
    """Ask for a receipt of AMOUNT_CENTS (after the checks a purchase makes before showing payment details)."""
    profile = shop.profile(user, fresh=True)
    if profile.get("is_banned"):
        shop.say(chat_id, t(language, "banned", reason=profile.get("ban_reason") or ""))
        return
    if not profile.get("can_order", True):
        ids = id_list(profile.get("pending_payment_ids") or [])
        shop.say(chat_id, t(language, "payment_in_review", ids=ids), reply_markup=keyboards.main_menu(language))
        return
    shop.store.set(user.id, {"flow": FLOW, "step": "proof", "amount": amount_cents})
    text = t(language, "topup_ask", amount=money(amount_cents, shop.settings.currency, language))
    text += checkout.payment_instructions(shop)
    shop.say(chat_id, text, reply_markup=_cancel_markup(language))


def _submit(shop: Shop, chat_id: int, user: User, language: str, state: dict[str, Any]) -> None:
    profile = shop.profile(user)
    proof, amount = state["proof"], state["amount"]
    try:
        payment, created = shop.api.create_topup(profile["id"], amount, proof["file_id"], proof["unique_id"])
    except ApiUnavailable:
        shop.say(chat_id, t(language, "api_down_proof"))  # the stored proof is sent again with the next file
        return
    except ApiError as exc:
        if exc.code in ("evidence_used_elsewhere", "evidence_reused"):
            state.pop("proof", None)
            shop.store.set(user.id, state)
            shop.say(chat_id, t(language, "receipt_used_elsewhere"), reply_markup=_cancel_markup(language))
            return
        shop.store.clear(user.id)
        details = exc.details if isinstance(exc.details, dict) else {}
        if exc.code == "too_many_pending_payments":
            text = t(language, "payment_in_review", ids=id_list(details.get("pending_payment_ids") or []))
        elif exc.code == "user_banned":
            text = t(language, "banned", reason=details.get("reason") or exc.message)
        else:
            text = t(language, "refused", message=exc.message)
        shop.say(chat_id, text, reply_markup=keyboards.main_menu(language))
        return
    shop.store.clear(user.id)
    key = "topup_received" if created else "topup_again"
    shop.say(
        chat_id,
        t(language, key, id=payment["id"], amount=money(amount, shop.settings.currency, language)),
        reply_markup=keyboards.main_menu(language),
    )
    if created:
        admin.post_for_review(shop, payment, proof["kind"])
        proofs.upload(shop, chat_id, language, payment, proof, profile["id"])


def register(shop: Shop) -> None:
    """After the purchase flow, before receipts outside an order (this flow takes its own receipt)."""
    bot = shop.bot

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("top:"))
    @guarded(shop, "callback")
    def pressed(call: CallbackQuery) -> None:
        language = shop.language(call.from_user)
        fields = TOPUP.match(call.data or "")
        if fields is None:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        bot.answer_callback_query(call.id)
        if fields["cancel"]:
            was_topup = shop.store.get(call.from_user.id).get("flow") == FLOW
            if was_topup:
                shop.store.clear(call.from_user.id)
            shop.say(call.message.chat.id, t(language, "topup_cancelled" if was_topup else "nothing_to_cancel"))
            return
        start_topup(shop, call.message.chat.id, call.from_user, language, int(fields["amount"]))

    def in_topup(message: Message) -> bool:
        return shop.store.get(message.from_user.id).get("flow") == FLOW and not (message.text or "").startswith("/")

    @bot.message_handler(
        func=in_topup,
        content_types=["text", *receipts.RECEIPT_TYPES, "sticker", "voice", "video", "audio"],
        chat_types=["private"],
    )
    @guarded(shop)
    def topup_input(message: Message) -> None:
        user, chat_id = message.from_user, message.chat.id
        language = shop.language(user)
        state = shop.store.get(user.id)
        if message.content_type not in receipts.RECEIPT_TYPES:
            shop.say(chat_id, t(language, "proof_wrong"), reply_markup=_cancel_markup(language))
            return
        if not state.get("proof"):  # an earlier receipt whose outcome is unknown wins: same id, same payment
            state["proof"] = receipts.file_of(message)
            shop.store.set(user.id, state)
        _submit(shop, chat_id, user, language, state)
