"""Receipts that arrive outside an order's proof step are never dropped.

A photo or document sent in a private chat while no order waits for its receipt (no purchase, a purchase
not yet at its payment details, or after a cancel) goes to the admin channel: as another receipt for the
customer's payment(s) in review, or as "a receipt outside any order" naming the customer. The customer is
told which, or told plainly that it could not be passed on (so they send it again). File ids are never logged.
"""

from __future__ import annotations

from typing import Any

from telebot.types import Message, User

from .. import keyboards
from ..api_client import ApiUnavailable
from ..context import Shop, guarded
from ..i18n import id_list, language_of, t
from . import admin

RECEIPT_TYPES = ("photo", "document")
MAX_STRAY_PER_HOUR = 5  # a flood of files must not bury the admin channel


def file_of(message: Message) -> dict[str, str]:
    """The receipt in MESSAGE (the largest photo size, or the document): file id, unique id, kind."""
    file = message.photo[-1] if message.content_type == "photo" else message.document
    return {"file_id": file.file_id, "unique_id": file.file_unique_id, "kind": message.content_type}


def customer_label(user: User) -> str:
    """How the admins see a customer: @username (telegram id), or the id alone."""
    return f"@{user.username} ({user.id})" if user.username else str(user.id)


def forward(shop: Shop, receipt: dict[str, Any], caption: str) -> bool:
    """Post RECEIPT to the admin channel with CAPTION; False when it could not be (no channel, Telegram refused)."""
    if shop.settings.admin_chat_id is None:
        return False
    return admin.send_file(shop, shop.settings.admin_chat_id, receipt["file_id"], receipt["kind"], caption) is not None


def forward_for_payments(shop: Shop, user: User, receipt: dict[str, Any], payment_ids: list[int]) -> bool:
    """RECEIPT to the admins as another receipt for PAYMENT_IDS (the customer's payments in review)."""
    language, customer = shop.settings.admin_language, customer_label(user)
    caption = t(language, "admin_extra_receipt", ids=id_list(payment_ids), customer=customer)
    return forward(shop, receipt, caption)


def _over_limit(shop: Shop, user_id: int) -> bool:
    key = f"stray-receipts:{user_id}"
    count = int(shop.store.cache_get(key) or 0)
    if count >= MAX_STRAY_PER_HOUR:
        return True
    shop.store.cache_set(key, count + 1, 3600)
    return False


def stray_receipt(shop: Shop, message: Message) -> None:
    """A receipt outside the proof step: to the admins, with the customer's payment in review if there is one."""
    user, chat_id = message.from_user, message.chat.id
    try:
        profile = shop.profile(user)
        pending = [payment["id"] for payment in shop.api.pending_payments(user_id=profile["id"])]
    except ApiUnavailable:  # the orders cannot be looked up: ask for the same file again, nothing is lost
        shop.say(chat_id, t(language_of(shop.language(user)), "api_down_proof"))
        return
    language = language_of(profile.get("language"))
    if _over_limit(shop, user.id):
        shop.say(chat_id, t(language, "receipt_limit"))
        return
    receipt = file_of(message)
    if pending:
        passed, key = forward_for_payments(shop, user, receipt, pending), "receipt_added"
    else:
        caption = t(shop.settings.admin_language, "admin_stray_receipt", customer=customer_label(user))
        passed, key = forward(shop, receipt, caption), "receipt_no_order"
    if not passed:
        key = "receipt_unrouted"
    shop.say(chat_id, t(language, key, ids=id_list(pending)), reply_markup=keyboards.main_menu(language))


def register(shop: Shop) -> None:
    """After the purchase flow (which takes the receipt at its proof step), before the fallbacks."""

    @shop.bot.message_handler(content_types=list(RECEIPT_TYPES), chat_types=["private"])
    @guarded(shop)
    def receipt_outside_an_order(message: Message) -> None:
        stray_receipt(shop, message)
