"""Admin desk: /payments, /approve, /reject, /nodes and the review buttons in the admin channel (/broadcast is in
broadcast.py).

Only users the API marks is_admin get an answer to these commands, and only in a private chat or the admin
channel (TELEGRAM_ADMIN_CHAT_ID): in any other group they are silent, as they are for everyone else. Every
decision goes to the API under the pressing admin's Telegram id (acting_telegram_id): the API checks
is_admin, audits the admin, and answers 409 to a second decision, which the bot reports as such.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import requests
from telebot.apihelper import ApiException, ApiTelegramException
from telebot.types import CallbackQuery, Message

from .. import fleet, keyboards
from ..api_client import ApiError
from ..context import Shop, guarded
from ..i18n import data_size, money, normalize_digits, parse_int, t

log = logging.getLogger(__name__)
ADMIN_COMMANDS = ["payments", "approve", "reject", "nodes"]
_ALREADY = re.compile(r"already (?P<status>\w+) by (?P<name>.+?)\.?$")


def _payment_text(shop: Shop, payment: dict[str, Any], language: str) -> str:
    user = payment["user"]
    customer = f"@{user['username']}" if user.get("username") else str(user["telegram_id"])
    text = t(
        language,
        "admin_new_payment",
        id=payment["id"],
        status=payment["status"],
        customer=f"{customer} ({user['telegram_id']})",
        plan=_ordered(payment, language),
        price=money(payment["amount_cents"], shop.settings.currency),
        auto=str(payment["auto_accept_at"])[:16].replace("T", " ")
        if payment.get("auto_accept_at")
        else t(language, "admin_no_auto_accept"),
    )
    discount = payment.get("discount")
    if discount:
        currency = shop.settings.currency
        text += "\n" + t(
            language,
            "admin_discount",
            code=discount["code"],
            off=money(discount["amount_off_cents"], currency),
            price=money(discount["price_cents"], currency),
        )
    if is_free_order(payment):
        text += "\n" + t(language, "admin_free_order")
    config = payment.get("config")  # present right after the payment was recorded
    if config is not None and config.get("node_id") is None:
        text += "\n\n" + t(language, "admin_unplaced")
    return text


def _ordered(payment: dict[str, Any], language: str) -> str:
    """What the payment pays for: a plan, a renewal or extra data of a config, or a wallet top-up (no plan,
    and only an admin approves it: no auto-accept time)."""
    purpose, plan = payment.get("purpose"), payment.get("plan") or {}
    if purpose == "renewal":
        return t(language, "admin_renewal", id=payment.get("extends_config_id"), plan=plan.get("name", ""))
    if purpose == "extra_data":
        data = data_size(payment.get("extra_data_mb"), language)
        return t(language, "admin_extra_data", id=payment.get("extends_config_id"), data=data)
    return plan["name"] if plan else t(language, "admin_topup")


def is_free_order(payment: dict[str, Any]) -> bool:
    """A discount code took the whole price: there is no receipt to show."""
    return bool(payment.get("discount")) and payment["amount_cents"] == 0


def send_file(shop: Shop, chat_id: int, file_id: str, kind: str | None, caption: str) -> int | None:
    """Send a customer's file by its file id (a photo, or a document); returns the message id, None if it failed."""
    senders = [shop.bot.send_document, shop.bot.send_photo]
    if kind != "document":
        senders.reverse()
    for send in senders:
        try:
            return send(chat_id, file_id, caption=caption).message_id
        except ApiTelegramException as exc:  # a document's id sent as a photo (or the reverse): try the other
            log.info("A customer's file not sent with %s: %s", send.__name__, exc.description)  # never the file id
        except (ApiException, requests.RequestException) as exc:  # Telegram unreachable: no point trying again
            log.warning("A customer's file not sent: %s", type(exc).__name__)
            return None
    return None


def _send_proof(shop: Shop, chat_id: int, payment: dict[str, Any], kind: str | None, language: str) -> int | None:
    """Re-send the proof by its file id (a photo, or a document); returns the message id."""
    caption = t(language, "admin_proof_caption", id=payment["id"])
    return send_file(shop, chat_id, payment["evidence_file_id"], kind, caption)


def show_for_review(shop: Shop, chat_id: int, payment: dict[str, Any], kind: str | None, language: str) -> None:
    proof_id = None if is_free_order(payment) else _send_proof(shop, chat_id, payment, kind, language)
    extra = {"reply_to_message_id": proof_id} if proof_id else {}
    shop.say(
        chat_id, _payment_text(shop, payment, language), reply_markup=keyboards.review(payment["id"], language), **extra
    )


def post_for_review(shop: Shop, payment: dict[str, Any], kind: str) -> None:
    """A new payment in the admin channel (TELEGRAM_ADMIN_CHAT_ID): its proof, the facts, Approve / Reject."""
    if shop.settings.admin_chat_id is None:
        return
    try:
        show_for_review(shop, shop.settings.admin_chat_id, payment, kind, shop.settings.admin_language)
    except ApiTelegramException:  # the payment stands; admins still see it in /payments
        log.exception("Could not post payment %s to the admin channel", payment["id"])


def _decide(
    shop: Shop, admin_id: int, payment_id: int, approve: bool, reason: str | None = None, ban: bool = False
) -> tuple[str, dict[str, str]]:
    """Call the API; returns (catalog key, values) describing the outcome."""
    try:
        if approve:
            payment = shop.api.approve(payment_id, admin_id)
        else:
            payment = shop.api.reject(payment_id, admin_id, reason, ban)
    except ApiError as exc:
        if exc.status == 409:
            match = _ALREADY.search(exc.message)
            if match:
                return "admin_already", {"status": match["status"], "name": match["name"], "id": str(payment_id)}
        if exc.status == 404:
            return "admin_not_found", {"id": str(payment_id)}
        if exc.code == "not_an_admin":
            return "admin_not_admin", {}
        return "admin_refused", {"message": exc.message}
    key = "admin_approved_by" if payment["status"] == "approved" else "admin_rejected_by"
    return key, {"id": str(payment_id), "name": payment.get("reviewer") or str(admin_id)}


def register(shop: Shop) -> None:
    bot = shop.bot

    def in_admin_place(message: Message) -> bool:
        """A private chat or the admin channel: never another group, where everyone would see receipts."""
        return message.chat.type == "private" or message.chat.id == shop.settings.admin_chat_id

    @bot.message_handler(commands=ADMIN_COMMANDS, func=in_admin_place)
    @guarded(shop)
    def admin_command(message: Message) -> None:
        if message.from_user is None or not shop.is_admin(message.from_user):
            return  # not an admin: no reply at all
        language = shop.language(message.from_user)
        command = message.text.split()[0].lstrip("/").split("@")[0].lower()
        args = normalize_digits(message.text).split()[1:]
        chat_id = message.chat.id
        if command == "payments":
            pending = shop.api.pending_payments()
            if not pending:
                shop.say(chat_id, t(language, "admin_none_pending"))
            for payment in pending:
                show_for_review(shop, chat_id, payment, None, language)
        elif command == "nodes":
            _nodes(shop, message, language)
        else:
            payment_id = parse_int(args[0], maximum=2**63 - 1) if args else None
            if payment_id is None:
                shop.say(chat_id, t(language, f"admin_usage_{command}"))
                return
            ban = command == "reject" and len(args) > 1 and args[1].lower() == "ban"
            reason = " ".join(message.text.split()[2 + ban :]) or None if command == "reject" else None
            if ban and not reason:
                shop.say(chat_id, t(language, "admin_usage_reject"))
                return
            key, values = _decide(shop, message.from_user.id, payment_id, command == "approve", reason, ban)
            shop.say(chat_id, t(language, key, **values))

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("adm:"))
    @guarded(shop, "callback")
    def review_button(call: CallbackQuery) -> None:
        fields = keyboards.parse_callback(call.data)
        if fields is None:
            bot.answer_callback_query(call.id)
            return
        language = shop.settings.admin_language
        payment_id = int(fields["pid"])
        key, values = _decide(shop, call.from_user.id, payment_id, fields["verdict"] == "ok")
        bot.answer_callback_query(call.id, t(language, key, **values), show_alert=key == "admin_not_admin")
        if key in ("admin_approved_by", "admin_rejected_by", "admin_already"):
            payment = shop.api.get_payment(payment_id)
            decided = key if key != "admin_already" else f"admin_{payment['status']}_by"
            name = values.get("name") or payment.get("reviewer") or ""
            text = _payment_text(shop, payment, language) + "\n\n" + t(language, decided, id=payment_id, name=name)
            try:
                bot.edit_message_text(text, call.message.chat.id, call.message.message_id, parse_mode="HTML")
            except ApiTelegramException as exc:  # "message is not modified": the other press already edited it
                log.info("Review message not edited: %s", exc.description)


def _nodes(shop: Shop, message: Message, language: str) -> None:
    """GET /nodes and GET /nodes/alerts for the pressing Telegram admin (acting_telegram_id), joined on the node.

    Nothing is shown that the API refused. An API without /nodes/alerts (404: older than the bot) still gets
    its list, with the alerts the node views carry (none on such an API)."""
    try:
        nodes = shop.api.nodes(message.from_user.id)
        try:
            alerts = {alert["node_id"]: alert for alert in shop.api.node_alerts(message.from_user.id)}
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.warning("The API has no node alerts (%s); /nodes shows the nodes only", exc)
            alerts = {node.get("id"): node["alert"] for node in nodes if node.get("alert")}
    except ApiError as exc:
        if exc.status in (401, 403, 422):
            shop.say(message.chat.id, t(language, "admin_nodes_unavailable"))
            return
        raise
    for text in fleet.nodes_messages(language, nodes, alerts):
        shop.say(message.chat.id, text)
