"""Admin desk: /payments, /approve, /reject, /nodes and the review cards' buttons (/broadcast is in broadcast.py).

Only users the API marks is_admin get an answer to these commands, and only in a private chat or the admin
channel (TELEGRAM_ADMIN_CHAT_ID): in any other group they are silent, as they are for everyone else. A
non-admin pressing a card's button is told they are not an admin; nothing else happens. Every decision goes
to the API under the pressing admin's Telegram id (acting_telegram_id): the API checks is_admin, audits the
admin, and answers 409 to a second decision, which the bot reports as such.

A card (review.py) shows the payment, the customer's history and a link to them, with Approve / Reject.
Reject asks why (quick reasons, sent as codes the customer reads in their language, or "other": the admin
types it as a reply to the bot's question), then Reject or Reject and ban. A decision, by button or command,
is held for BOT_UNDO_SECONDS with an Undo button (holds.py) before it is made.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from telebot.apihelper import ApiException, ApiTelegramException
from telebot.types import CallbackQuery, ForceReply, Message, User

from .. import fleet, holds, keyboards, menus, review
from ..api_client import ApiError
from ..context import Shop, guarded
from ..i18n import REASON_CODES, normalize_digits, parse_int, t

log = logging.getLogger(__name__)
ADMIN_COMMANDS = list(menus.ADMIN_COMMANDS)
PROMPT_TTL_SECONDS = 24 * 3600


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
    """The proof (none for an order a discount code made free), then the card under it with Approve / Reject;
    the card is remembered (review.remember_post)."""
    proof_id = None if review.is_free_order(payment) else _send_proof(shop, chat_id, payment, kind, language)
    extra = {"reply_to_message_id": proof_id} if proof_id else {}
    text = review.card_text(shop, payment, language)
    sent = shop.say(chat_id, text, reply_markup=keyboards.review(payment["id"], language), **extra)
    review.remember_post(shop, payment["id"], chat_id, sent.message_id, text, language)


def post_for_review(shop: Shop, payment: dict[str, Any], kind: str) -> None:
    """A new payment in the admin channel (TELEGRAM_ADMIN_CHAT_ID): its proof, the facts, Approve / Reject."""
    if shop.settings.admin_chat_id is None:
        return
    try:
        show_for_review(shop, shop.settings.admin_chat_id, payment, kind, shop.settings.admin_language)
    except ApiTelegramException:  # the payment stands; admins still see it in /payments
        log.exception("Could not post payment %s to the admin channel", payment["id"])


def _language_for(shop: Shop, chat_id: int, user: User) -> str:
    """The admin chat speaks BOT_ADMIN_LANGUAGE; an admin's private chat, the admin's language."""
    return shop.settings.admin_language if chat_id == shop.settings.admin_chat_id else shop.language(user)


def _prompt_key(chat_id: int, message_id: int) -> str:
    return f"review:prompt:{chat_id}:{message_id}"


def decide_by_command(shop: Shop, message: Message, language: str, decision: dict[str, Any]) -> None:
    """/approve or /reject: made at once, or held with an Undo button on the bot's answer."""
    chat_id = message.chat.id
    if shop.settings.undo_seconds <= 0:
        key, values, _payment = holds.decide(shop, decision)
        shop.say(chat_id, t(language, key, **values))
        return
    sent = shop.say(chat_id, holds.holding_text(decision), reply_markup=keyboards.undo(decision["pid"], language))
    decision["message"] = sent.message_id
    key, values = holds.hold(shop, decision)
    if key != "holding":
        review.edit(shop, chat_id, sent.message_id, t(language, key, **values))


def decide_by_button(shop: Shop, call: CallbackQuery, language: str, decision: dict[str, Any]) -> None:
    """A card's Approve, Reject or Reject and ban: made at once (the card shows it), or held (the card shows
    it is held, with Undo)."""
    if shop.settings.undo_seconds <= 0:
        outcome = holds.decide(shop, decision)
        shop.bot.answer_callback_query(
            call.id, t(language, outcome[0], **outcome[1]), show_alert=outcome[0] == "admin_not_admin"
        )
        holds.finish(shop, decision, outcome)
        return
    key, values = holds.hold(shop, decision)
    if key == "holding":
        text = holds.holding_text(decision)
        shop.bot.answer_callback_query(call.id, text)
        base = review.base_text(shop, decision["chat"], decision["message"], decision["pid"], language)
        review.edit(
            shop, decision["chat"], decision["message"], base + "\n\n" + text, keyboards.undo(decision["pid"], language)
        )
        return
    shop.bot.answer_callback_query(call.id, t(language, key, **values), show_alert=key == "admin_not_admin")
    if key == "admin_already":
        holds.finish(shop, decision, (key, values, None))


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
        language = _language_for(shop, message.chat.id, message.from_user)
        if message.chat.type == "private":
            menus.admin_menu(shop, message.chat.id, language)
        command = message.text.split()[0].lstrip("/").split("@")[0].lower()
        args = normalize_digits(message.text).split()[1:]
        chat_id = message.chat.id
        if command == "payments":
            _list_pending(shop, chat_id, language)
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
            code = reason if reason in REASON_CODES else None  # "/reject 12 fake_receipt": a quick reason
            decision = holds.new_decision(
                shop,
                payment_id,
                "approve" if command == "approve" else "reject",
                message.from_user,
                (chat_id, 0, False),
                language,
                reason_code=code,
                reason=None if code else reason,
                ban=ban,
            )
            decide_by_command(shop, message, language, decision)

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("adm:"))
    @guarded(shop, "callback")
    def review_button(call: CallbackQuery) -> None:
        chat_id, message_id = call.message.chat.id, call.message.message_id
        card = review.card_of(shop, chat_id, message_id)
        language = card["language"] if card else shop.settings.admin_language
        fields = keyboards.parse_callback(call.data)
        payment_id = int(fields["pid"]) if fields else 0
        if fields is None or (card is not None and card["pid"] != payment_id and fields.get("verdict") != "op"):
            bot.answer_callback_query(call.id, t(language, "choice_stale"))  # forged, or not this card's
            return
        if not shop.is_admin(call.from_user):
            bot.answer_callback_query(call.id, t(language, "admin_not_admin"), show_alert=True)
            return
        action = fields.get("verdict") or fields["reject"]
        if action == "op":
            _open(shop, call, payment_id, _language_for(shop, chat_id, call.from_user))
        elif action == "un":
            _undo(shop, call, payment_id, language)
        elif action == "ok":
            place = (chat_id, message_id, True)
            decide_by_button(
                shop, call, language, holds.new_decision(shop, payment_id, "approve", call.from_user, place, language)
            )
        elif action in ("rj", "rb"):
            _reject(shop, call, payment_id, fields["reason"], action == "rb", card, language)
        else:
            _reject_steps(shop, call, payment_id, action, fields.get("reason"), language)

    def replies_to_a_prompt(message: Message) -> bool:
        replied = message.reply_to_message
        return (
            replied is not None and shop.store.cache_get(_prompt_key(message.chat.id, replied.message_id)) is not None
        )

    @bot.message_handler(func=replies_to_a_prompt, content_types=["text"])
    @guarded(shop)
    def typed_reason(message: Message) -> None:
        """An admin's reason for a rejection, typed as a reply to the bot's question: the card asks to confirm."""
        if not shop.is_admin(message.from_user):
            log.info("A reply to a rejection question from a non-admin was ignored")
            return
        prompt = shop.store.cache_get(_prompt_key(message.chat.id, message.reply_to_message.message_id))
        reason = (message.text or "").strip()[:500]
        if not reason or reason.startswith("/"):
            return
        payment_id, (chat_id, card_id), language = prompt["pid"], prompt["card"], prompt["language"]
        base = review.base_text(shop, chat_id, card_id, payment_id, language)
        review.update_card(shop, chat_id, card_id, typed_reason=reason)
        confirm = t(language, "admin_reject_confirm", id=payment_id, reason=reason)
        review.edit(
            shop, chat_id, card_id, base + "\n\n" + confirm, keyboards.confirm_reject(payment_id, "other", language)
        )
        shop.bot.reply_to(message, t(language, "admin_reason_noted", id=payment_id))


def _reject_steps(
    shop: Shop, call: CallbackQuery, payment_id: int, action: str, reason: str | None, language: str
) -> None:
    """Reject's steps before the decision: the reasons (no), back to Approve / Reject (bk), a reason chosen (rs:
    confirm it; other: ask the admin to type it)."""
    chat_id, message_id = call.message.chat.id, call.message.message_id
    base = review.base_text(shop, chat_id, message_id, payment_id, language)
    shop.bot.answer_callback_query(call.id)
    if action == "no":
        review.edit(
            shop,
            chat_id,
            message_id,
            base + "\n\n" + t(language, "admin_reject_why", id=payment_id),
            keyboards.reasons(payment_id, language),
        )
    elif action == "bk":
        review.edit(shop, chat_id, message_id, base, keyboards.review(payment_id, language))
    elif reason == "other":
        who = call.from_user
        mention = f'<a href="tg://user?id={int(who.id)}">{_escape(who.first_name or str(who.id))}</a>'
        asked = shop.say(
            chat_id,
            t(language, "admin_reason_prompt", raw=mention, id=payment_id),
            reply_markup=ForceReply(selective=True),
            reply_to_message_id=message_id,
        )
        record = {"pid": payment_id, "card": [chat_id, message_id], "language": language}
        shop.store.cache_set(_prompt_key(chat_id, asked.message_id), record, PROMPT_TTL_SECONDS)
    else:
        confirm = t(language, "admin_reject_confirm", id=payment_id, reason=t(language, f"reason_{reason}"))
        review.edit(
            shop, chat_id, message_id, base + "\n\n" + confirm, keyboards.confirm_reject(payment_id, reason, language)
        )


def _reject(
    shop: Shop, call: CallbackQuery, payment_id: int, reason: str, ban: bool, card: dict | None, language: str
) -> None:
    """Reject (and ban) for a quick reason, or for the reason the admin typed (other)."""
    typed = (card or {}).get("typed_reason") if reason == "other" else None
    if reason == "other" and not typed:
        shop.bot.answer_callback_query(call.id, t(language, "admin_reason_missing"), show_alert=True)
        return
    place = (call.message.chat.id, call.message.message_id, True)
    decision = holds.new_decision(
        shop,
        payment_id,
        "reject",
        call.from_user,
        place,
        language,
        reason_code=None if typed else reason,
        reason=typed,
        ban=ban,
    )
    decide_by_button(shop, call, language, decision)


def _undo(shop: Shop, call: CallbackQuery, payment_id: int, language: str) -> None:
    decision = holds.undo(shop, payment_id, call.from_user)
    if decision is None:
        shop.bot.answer_callback_query(call.id, t(language, "admin_undo_late", id=payment_id), show_alert=True)
        return
    name = call.from_user.username or str(call.from_user.id)
    undone = t(decision["language"], "admin_undone", id=payment_id, name=name)
    shop.bot.answer_callback_query(call.id, undone)
    chat_id, message_id = decision["chat"], decision["message"]
    if decision["card"]:
        base = review.base_text(shop, chat_id, message_id, payment_id, decision["language"])
        review.edit(shop, chat_id, message_id, base, keyboards.review(payment_id, decision["language"]))
    else:
        review.edit(shop, chat_id, message_id, undone)


def _open(shop: Shop, call: CallbackQuery, payment_id: int, language: str) -> None:
    """A payment of the /payments list: its proof and card, here."""
    try:
        payment = shop.api.get_payment(payment_id)
    except ApiError as exc:
        key, values = holds.refusal(exc, payment_id)
        shop.bot.answer_callback_query(call.id, t(language, key, **values))
        return
    if payment["status"] != "pending":
        shop.bot.answer_callback_query(
            call.id, t(language, "admin_already", status=payment["status"], name=payment.get("reviewer") or "")
        )
        return
    shop.bot.answer_callback_query(call.id)
    show_for_review(shop, call.message.chat.id, payment, None, language)


def _list_pending(shop: Shop, chat_id: int, language: str) -> None:
    """/payments: the count, one line per payment waiting (oldest first), a button each to open its card."""
    payments, more = shop.api.pending_page(review.LIST_LIMIT)
    if not payments:
        shop.say(chat_id, t(language, "admin_none_pending"))
        return
    buttons = keyboards.open_cards(((p["id"], review.customer_label(p["user"])) for p in payments), language)
    shop.say(chat_id, review.pending_list(shop, payments, more, language), reply_markup=buttons)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
