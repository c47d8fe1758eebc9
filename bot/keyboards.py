"""Inline and reply keyboards, and the callback-data grammar (parsed strictly: tampered data is refused)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from .i18n import t

# lang:<en|fa> | buy:<step>:<value> | buy:<ok|no|retry|code|nocode> | adm:<ok|no>:<payment id>
_CALLBACK = re.compile(
    r"^(?:lang:(?P<lang>en|fa)|buy:(?P<step>cat|loc|dur|cap|dev):(?P<value>[a-z0-9_-]{1,32})"
    r"|buy:(?P<action>ok|no|retry|code|nocode)|adm:(?P<verdict>ok|no):(?P<pid>[1-9][0-9]{0,17}))$"
)


def parse_callback(data: str | None) -> dict[str, str] | None:
    """The callback's fields, or None for anything the bot never sent."""
    match = _CALLBACK.match(data or "")
    if match is None:
        return None
    return {key: value for key, value in match.groupdict().items() if value is not None}


def language_choice() -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(
        InlineKeyboardButton(t("en", "lang_en"), callback_data="lang:en"),
        InlineKeyboardButton(t("fa", "lang_fa"), callback_data="lang:fa"),
    )
    return markup


def main_menu(language: str) -> ReplyKeyboardMarkup:
    markup = ReplyKeyboardMarkup(resize_keyboard=True)
    markup.row(KeyboardButton(t(language, "menu_buy")), KeyboardButton(t(language, "menu_trial")))
    markup.row(KeyboardButton(t(language, "menu_configs")), KeyboardButton(t(language, "menu_language")))
    return markup


def choices(step: str, options: Iterable[tuple[str, str]], language: str, per_row: int = 2) -> InlineKeyboardMarkup:
    """One button per (value, label), then Cancel."""
    markup = InlineKeyboardMarkup(row_width=per_row)
    markup.add(*(InlineKeyboardButton(label, callback_data=f"buy:{step}:{value}") for value, label in options))
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"))
    return markup


def confirm(language: str, offer_code: bool = False) -> InlineKeyboardMarkup:
    """Confirm / Cancel; with OFFER_CODE, an "I have a discount code" button above them."""
    markup = InlineKeyboardMarkup()
    if offer_code:
        markup.row(InlineKeyboardButton(t(language, "have_code"), callback_data="buy:code"))
    markup.row(
        InlineKeyboardButton(t(language, "confirm"), callback_data="buy:ok"),
        InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"),
    )
    return markup


def code_entry(language: str) -> InlineKeyboardMarkup:
    """While the bot waits for a discount code: go on without one, or cancel."""
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "no_code"), callback_data="buy:nocode"))
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"))
    return markup


def cancel_only(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"))
    return markup


def review(payment_id: int, language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(
        InlineKeyboardButton(t(language, "admin_approve"), callback_data=f"adm:ok:{payment_id}"),
        InlineKeyboardButton(t(language, "admin_reject"), callback_data=f"adm:no:{payment_id}"),
    )
    return markup
