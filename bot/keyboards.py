"""Inline and reply keyboards, and the callback-data grammar (parsed strictly: tampered data is refused)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlencode

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from .i18n import t

# lang:<en|fa> | buy:<step>:<value> | buy:<ok|no|retry> | adm:<ok|no>:<payment id> | howto:<platform> | sup:no
# | bc:seg:<segment> | bc:<ok|no>
_CALLBACK = re.compile(
    r"^(?:lang:(?P<lang>en|fa)|buy:(?P<step>cat|loc|dur|cap|dev):(?P<value>[a-z0-9_-]{1,32})"
    r"|buy:(?P<action>ok|no|retry)|adm:(?P<verdict>ok|no):(?P<pid>[1-9][0-9]{0,17})"
    r"|howto:(?P<platform>android|ios|windows|macos)|sup:(?P<support>no)"
    r"|bc:seg:(?P<segment>all|active|expired|never_bought)|bc:(?P<broadcast>ok|no))$"
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
    markup.row(KeyboardButton(t(language, "menu_invite")))
    markup.row(KeyboardButton(t(language, "menu_support")), KeyboardButton(t(language, "menu_howto")))
    return markup


def platforms(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup(row_width=2)
    markup.add(
        *(
            InlineKeyboardButton(t(language, f"platform_{name}"), callback_data=f"howto:{name}")
            for name in ("android", "ios", "windows", "macos")
        )
    )
    return markup


def support_cancel(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="sup:no"))
    return markup


def choices(step: str, options: Iterable[tuple[str, str]], language: str, per_row: int = 2) -> InlineKeyboardMarkup:
    """One button per (value, label), then Cancel."""
    markup = InlineKeyboardMarkup(row_width=per_row)
    markup.add(*(InlineKeyboardButton(label, callback_data=f"buy:{step}:{value}") for value, label in options))
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"))
    return markup


def confirm(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(
        InlineKeyboardButton(t(language, "confirm"), callback_data="buy:ok"),
        InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"),
    )
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


def share(link: str, language: str) -> InlineKeyboardMarkup:
    """One button that opens Telegram's "share to a chat" with LINK and a line of invitation."""
    markup = InlineKeyboardMarkup()
    query = urlencode({"url": link, "text": t(language, "invite_share_text")})
    markup.row(InlineKeyboardButton(t(language, "invite_share"), url=f"https://t.me/share/url?{query}"))
    return markup


def broadcast_segments(counts: dict[str, int], language: str) -> InlineKeyboardMarkup:
    """One button per segment with how many customers it has now, then Cancel."""
    markup = InlineKeyboardMarkup(row_width=2)
    markup.add(
        *(
            InlineKeyboardButton(
                t(language, "broadcast_segment_button", segment=t(language, f"segment_{name}"), count=count),
                callback_data=f"bc:seg:{name}",
            )
            for name, count in counts.items()
        )
    )
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="bc:no"))
    return markup


def broadcast_cancel(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="bc:no"))
    return markup


def broadcast_confirm(count: int, language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(
        InlineKeyboardButton(t(language, "broadcast_send", count=count), callback_data="bc:ok"),
        InlineKeyboardButton(t(language, "cancel"), callback_data="bc:no"),
    )
    return markup
