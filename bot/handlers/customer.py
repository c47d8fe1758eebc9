"""/trial, /configs and /invite (also as menu buttons): each config with the Renew / Add data buttons the API
allows (renewals.offers), a temporary one said to be temporary."""

from __future__ import annotations

from telebot.types import Message

from .. import keyboards, offers
from ..api_client import ApiError
from ..context import Shop, guarded
from ..i18n import all_texts, id_list, money, reason_text, t


def register(shop: Shop) -> None:
    bot = shop.bot

    @bot.message_handler(commands=["trial"], chat_types=["private"])
    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_trial"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def trial(message: Message) -> None:
        profile = shop.profile(message.from_user)
        language = profile.get("language", "en")
        try:
            config = shop.api.trial(profile["id"], shop.settings.protocol)
        except ApiError as exc:
            key = {"trial_used": "trial_used", "user_banned": "banned", "no_node_available": "no_node"}.get(exc.code)
            reason = (exc.details or {}).get("reason") if isinstance(exc.details, dict) else None
            if key:
                text = t(language, key, reason=reason_text(language, reason) or exc.message)
            else:
                text = t(language, "refused", message=exc.message)
            shop.say(message.chat.id, text, reply_markup=keyboards.main_menu(language))
            return
        shop.say(message.chat.id, t(language, "trial_ok"))
        shop.send_config(message.chat.id, language, config, profile["id"])

    @bot.message_handler(commands=["configs"], chat_types=["private"])
    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_configs"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def configs(message: Message) -> None:
        profile = shop.profile(message.from_user)
        language = profile.get("language", "en")
        items = [c for c in shop.api.configs(profile["id"]) if c["status"] not in ("revoked",)]
        if not items:
            shop.say(message.chat.id, t(language, "configs_none"), reply_markup=keyboards.main_menu(language))
            return
        for config in items[:10]:
            found = offers.offers(shop, profile["id"], config)
            notes = [t(language, "config_temporary_note")] if config["kind"] == "temporary" else []
            if found.in_review:
                notes.append(t(language, "config_in_review_note", ids=id_list(list(found.in_review))))
            markup = offers.actions(found, config["id"], language)
            shop.send_config(message.chat.id, language, config, profile["id"], notes=notes, markup=markup)

    @bot.message_handler(commands=["invite"], chat_types=["private"])
    @bot.message_handler(
        func=lambda m: m.text in all_texts("menu_invite"), content_types=["text"], chat_types=["private"]
    )
    @guarded(shop)
    def invite(message: Message) -> None:
        """The customer's personal invite link (t.me/<this bot>?start=ref_<code>) and how many came and paid."""
        profile = shop.profile(message.from_user)
        language = profile.get("language", "en")
        referral = shop.api.referral(profile["id"])
        link = f"https://t.me/{shop.bot.user.username}?start={referral['start_parameter']}"
        text = t(
            language,
            "invite" if referral["percent"] > 0 else "invite_no_reward",
            link=link,
            percent=referral["percent"],
            invited=referral["invited_count"],
            credited=referral["credited_count"],
            amount=money(referral["credited_cents"], shop.settings.currency, language),
        )
        shop.say(message.chat.id, text, reply_markup=keyboards.share(link, language))
