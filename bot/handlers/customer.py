"""/trial, /configs and /invite (also as menu buttons). /configs shows each config as one compact card
(bot/config_cards.py: plan, location, used of total, expiry date, status; no link) with the Renew / Add data
buttons the API allows (bot/offers.py), the auto-renewal toggle, and 📷 QR / 🔗 Subscription, answered here."""

from __future__ import annotations

from typing import Any

from telebot.types import CallbackQuery, Message

from .. import config_cards, keyboards, offers
from ..api_client import ApiError
from ..context import Shop, guarded
from ..i18n import all_texts, id_list, money, reason_text, t
from ..i18n import plan_name as i18n_plan_name
from .checkout import location_label

SHOWN = 10  # configs listed by /configs


def plan_name(shop: Shop, config: dict[str, Any], language: str, known: dict[int, str]) -> str:
    """The name of CONFIG's plan in LANGUAGE (asked of the API once per plan; KNOWN keeps the answers), or
    "Free trial"."""
    plan_id = config.get("plan_id")
    if plan_id is None:
        return t(language, "cfg_trial_plan")
    if plan_id not in known:
        try:
            known[plan_id] = i18n_plan_name(shop.api.get_plan(plan_id), language)
        except ApiError:  # a plan deleted since: the config still shows
            known[plan_id] = f"#{plan_id}"
    return known[plan_id]


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
        """One compact card per config (no link), those in use first, then the newest: SHOWN at most."""
        profile = shop.profile(message.from_user)
        language = profile.get("language", "en")
        items = config_cards.relevant_first(shop.api.configs(profile["id"]))
        if not items:
            shop.say(message.chat.id, t(language, "configs_none"), reply_markup=keyboards.main_menu(language))
            return
        plans: dict[int, str] = {}
        for config in items[:SHOWN]:
            found = offers.offers(shop, profile["id"], config)
            notes = [t(language, "config_temporary_note")] if config["kind"] == "temporary" else []
            if found.in_review:
                notes.append(t(language, "config_in_review_note", ids=id_list(list(found.in_review))))
            text = config_cards.card_text(
                language,
                config,
                plan_name(shop, config, language, plans),
                location_label(shop, config["location_tag"], language) if config.get("location_tag") else "—",
                shop.settings.shop_timezone,
                notes,
            )
            markup = config_cards.card_markup(config, offers.actions(found, config["id"], language), language)
            shop.say(message.chat.id, text, **({"reply_markup": markup} if markup else {}))
        if len(items) > SHOWN:
            shop.say(message.chat.id, t(language, "cfg_more", shown=SHOWN, total=len(items)))

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("cfg:"))
    @guarded(shop, "callback")
    def config_button(call: CallbackQuery) -> None:
        """📷 QR (the subscription URL's QR code) or 🔗 Subscription (the URL and the config's own links) of one of
        the customer's own configs, as the API lists them now: another's id, or a revoked one, is stale."""
        language = shop.language(call.from_user)
        fields = keyboards.parse_callback(call.data)
        if fields is None or "view" not in fields:
            bot.answer_callback_query(call.id, t(language, "choice_stale"))
            return
        profile = shop.profile(call.from_user)
        config = offers.find_config(shop, profile["id"], int(fields["cid"]))
        if config is None or config["status"] == "revoked":
            bot.answer_callback_query(call.id, t(language, "choice_stale"), show_alert=True)
            return
        bot.answer_callback_query(call.id)
        chat_id = call.message.chat.id
        if not config_cards.shows_links(config):  # expired or paused since its card was shown: no link, Renew
            status = config_cards.status_text(config, language)
            markup = offers.actions(offers.offers(shop, profile["id"], config), config["id"], language)
            text = t(language, "cfg_no_links", id=config["id"], status=status)
            shop.say(chat_id, text, **({"reply_markup": markup} if markup else {}))
            return
        if fields["view"] == "qr":
            shop.send_subscription_qr(chat_id, language, profile["id"])
        else:
            url = shop.api.subscription_url(profile["id"])
            shop.say(chat_id, config_cards.subscription_text(language, config, url))

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
