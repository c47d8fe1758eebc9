"""The "Auto-renew: on/off" button under a config card: the API opts the config in or out (it decides whether
it may), and the button changes in place; the customer gets a short answer either way."""

from __future__ import annotations

from telebot.types import CallbackQuery

from ..api_client import ApiError
from ..auto_renew import TOGGLE, with_toggle
from ..context import Shop, guarded
from ..i18n import t

REFUSALS = {
    "config_not_renewable": "auto_renew_refused_not_renewable",
    "plan_not_for_sale": "auto_renew_refused_plan",
    "plan_not_allowed": "auto_renew_refused_plan",
    "user_banned": "auto_renew_refused_banned",
    "not_found": "choice_stale",
}


def register(shop: Shop) -> None:
    bot = shop.bot

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("ar:"))
    @guarded(shop, "callback")
    def toggle(call: CallbackQuery) -> None:
        language = shop.language(call.from_user)
        fields = TOGGLE.match(call.data or "")
        if fields is None:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        profile = shop.profile(call.from_user)
        config_id = int(fields["config_id"])
        try:
            config = shop.api.set_auto_renewal(profile["id"], config_id, fields["on"] == "1")
        except ApiError as exc:
            key = REFUSALS.get(exc.code)
            text = t(language, key) if key else t(language, "refused", message=exc.message)
            bot.answer_callback_query(call.id, text, show_alert=True)
            return
        key = "auto_renew_enabled" if config["auto_renew"] else "auto_renew_disabled"
        bot.answer_callback_query(call.id, t(language, key, id=config_id))
        markup = with_toggle(call.message.reply_markup, config, language)
        bot.edit_message_reply_markup(call.message.chat.id, call.message.message_id, reply_markup=markup)
