"""/broadcast: an admin's message to every customer of a segment (bot/broadcast.py sends it and reports).

Only users the API marks is_admin get an answer, and only in a private chat or the admin channel, as for the
other admin commands; everyone else gets no reply at all. The steps: the segment (a button per segment with
its count now), the text, then a preview with Send / Cancel. In the admin channel the bot speaks
BOT_ADMIN_LANGUAGE, in a private chat the admin's own language; customers get the text as the admin wrote it
(HTML-escaped, so formatting is not kept, and never translated). While a broadcast runs, a second one is
refused with the first one's progress. The steps live in the admin's conversation state, bound to the chat
where /broadcast was sent.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from telebot.apihelper import ApiTelegramException
from telebot.types import CallbackQuery, Message, User

from .. import broadcast, keyboards
from ..context import Shop, guarded
from ..i18n import t

log = logging.getLogger(__name__)
FLOW = "broadcast"
# What an admin might send instead of the text: answered with "text only", never taken for a receipt.
OTHER_CONTENT = ["photo", "document", "video", "animation", "sticker", "voice", "audio", "video_note"]


def _language(shop: Shop, chat_id: int, user: User) -> str:
    """The admin chat speaks BOT_ADMIN_LANGUAGE; a private chat the admin's own language."""
    return shop.settings.admin_language if chat_id == shop.settings.admin_chat_id else shop.language(user)


def _state(shop: Shop, user: User, chat_id: int, step: str | None = None) -> dict[str, Any] | None:
    """USER's broadcast in the making in CHAT_ID (at STEP, when given), or None."""
    state = shop.store.get(user.id)
    if state.get("flow") != FLOW or state.get("chat") != chat_id:
        return None
    return state if step is None or state.get("step") == step else None


def register(shop: Shop) -> None:
    bot = shop.bot

    def in_admin_place(message: Message) -> bool:
        return message.chat.type == "private" or message.chat.id == shop.settings.admin_chat_id

    @bot.message_handler(commands=["broadcast"], func=in_admin_place)
    @guarded(shop)
    def broadcast_command(message: Message) -> None:
        if message.from_user is None or not shop.is_admin(message.from_user):
            return  # not an admin: no reply at all
        chat_id = message.chat.id
        language = _language(shop, chat_id, message.from_user)
        running = broadcast.current(shop)
        if running is not None:
            shop.say(chat_id, broadcast.progress_text(language, running))
            return
        counts = shop.api.segment_counts(message.from_user.id)
        counts = {name: int(counts.get(name, 0)) for name in broadcast.SEGMENTS}
        sent = shop.say(
            chat_id, t(language, "broadcast_choose"), reply_markup=keyboards.broadcast_segments(counts, language)
        )
        state = {"flow": FLOW, "step": "segment", "chat": chat_id, "counts": counts, "message_id": sent.message_id}
        shop.store.set(message.from_user.id, state)

    def writing_the_text(message: Message) -> bool:
        if message.from_user is None or (message.text or "").startswith("/") or message.reply_to_message:
            return False
        return _state(shop, message.from_user, message.chat.id, "text") is not None

    @bot.message_handler(func=writing_the_text, content_types=["text", *OTHER_CONTENT])
    @guarded(shop)
    def broadcast_text(message: Message) -> None:
        user, chat_id = message.from_user, message.chat.id
        state = _state(shop, user, chat_id, "text")
        if state is None:
            return
        if not shop.is_admin(user):  # no longer an admin: the broadcast in the making is dropped, silently
            shop.store.clear(user.id)
            return
        language = _language(shop, chat_id, user)
        if message.content_type != "text" or not (message.text or "").strip():
            shop.say(chat_id, t(language, "broadcast_text_only"), reply_markup=keyboards.broadcast_cancel(language))
            return
        text = html.escape(message.text, quote=False)
        segment = broadcast.segment_label(language, state["segment"])
        shop.say(chat_id, t(language, "broadcast_preview", segment=segment, count=state["total"]))
        preview = shop.say(chat_id, text, reply_markup=keyboards.broadcast_confirm(state["total"], language))
        state.update(step="confirm", text=text, message_id=preview.message_id)
        shop.store.set(user.id, state)

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("bc:"))
    @guarded(shop, "callback")
    def pressed(call: CallbackQuery) -> None:
        user, chat_id = call.from_user, call.message.chat.id
        language = _language(shop, chat_id, user)
        fields = keyboards.parse_callback(call.data)
        state = _state(shop, user, chat_id)
        if fields is None or state is None or not shop.is_admin(user):
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        if fields.get("broadcast") == "no":
            shop.store.clear(user.id)
            bot.answer_callback_query(call.id)
            _close(shop, call, t(language, "broadcast_cancelled"))
        elif "segment" in fields and state["step"] == "segment":
            _choose_segment(shop, call, language, state, fields["segment"])
        elif fields.get("broadcast") == "ok" and state["step"] == "confirm":
            _confirm(shop, call, language, state)
        else:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))


def _choose_segment(shop: Shop, call: CallbackQuery, language: str, state: dict[str, Any], segment: str) -> None:
    count = int(state["counts"].get(segment, 0))
    if count == 0:
        shop.bot.answer_callback_query(call.id, t(language, "broadcast_empty"))
        return
    shop.bot.answer_callback_query(call.id)
    state.update(step="text", segment=segment, total=count)
    shop.store.set(call.from_user.id, state)
    text = t(language, "broadcast_ask_text", segment=broadcast.segment_label(language, segment), count=count)
    shop.bot.edit_message_text(
        text,
        call.message.chat.id,
        call.message.message_id,
        parse_mode="HTML",
        reply_markup=keyboards.broadcast_cancel(language),
    )


def _confirm(shop: Shop, call: CallbackQuery, language: str, state: dict[str, Any]) -> None:
    chat_id = call.message.chat.id
    job = broadcast.new(state["segment"], state["text"], state["total"], chat_id, language, call.from_user.id)
    shop.store.clear(call.from_user.id)
    shop.bot.answer_callback_query(call.id)
    if not broadcast.start(shop, job):  # another admin's broadcast started meanwhile
        running = broadcast.current(shop)
        shop.say(chat_id, broadcast.progress_text(language, running) if running else t(language, "choice_stale"))
        return
    log.info("Broadcast to %s (%s customers) started by an admin", state["segment"], state["total"])
    try:  # the preview keeps its text, without the buttons
        shop.bot.edit_message_reply_markup(chat_id, call.message.message_id, reply_markup=None)
    except ApiTelegramException as exc:
        log.info("Broadcast preview not edited: %s", exc.description)
    segment = broadcast.segment_label(language, state["segment"])
    shop.say(chat_id, t(language, "broadcast_started", segment=segment, count=state["total"]))


def _close(shop: Shop, call: CallbackQuery, text: str) -> None:
    """Replace the pressed message's buttons by TEXT (a cancelled broadcast)."""
    try:
        shop.bot.edit_message_reply_markup(call.message.chat.id, call.message.message_id, reply_markup=None)
    except ApiTelegramException as exc:
        log.info("Broadcast message not edited: %s", exc.description)
    shop.say(call.message.chat.id, text)
