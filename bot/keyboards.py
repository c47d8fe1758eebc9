"""Inline and reply keyboards, and the callback-data grammar (parsed strictly: tampered data is refused)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlencode

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from .i18n import t

# lang:<en|fa> | buy:<step>:<value> | buy:<ok|no|retry> | howto:<platform> | sup:no
# | adm:<verdict>:<payment id>: ok approve, no reject (the reasons), bk back to Approve/Reject, op open the card
#   (from /payments), un undo a held decision
# | adm:<rs|rj|rb>:<reason>:<payment id>: rs a reason chosen (asks to confirm; other: asks to type it), rj reject,
#   rb reject and ban, with that reason (other: the one typed)
REASONS = ("fake_receipt", "wrong_amount", "unreadable", "already_used", "other")
_ID = r"[1-9][0-9]{0,17}"
_CALLBACK = re.compile(
    r"^(?:lang:(?P<lang>en|fa)|buy:(?P<step>cat|loc|dur|cap|dev):(?P<value>[a-z0-9_-]{1,32})"
    rf"|buy:(?P<action>ok|no|retry)|adm:(?P<verdict>ok|no|bk|op|un):(?P<pid>{_ID})"
    rf"|adm:(?P<reject>rs|rj|rb):(?P<reason>{'|'.join(REASONS)}):(?P<rpid>{_ID})"
    r"|howto:(?P<platform>android|ios|windows|macos)|sup:(?P<support>no))$"
)


def parse_callback(data: str | None) -> dict[str, str] | None:
    """The callback's fields, or None for anything the bot never sent."""
    match = _CALLBACK.match(data or "")
    if match is None:
        return None
    fields = {key: value for key, value in match.groupdict().items() if value is not None}
    if "rpid" in fields:  # one name per group in a regex: the reason's payment id is the payment id
        fields["pid"] = fields.pop("rpid")
    return fields


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


def reasons(payment_id: int, language: str) -> InlineKeyboardMarkup:
    """Why reject: the quick reasons, "other" (typed), and Back to Approve / Reject."""
    markup = InlineKeyboardMarkup(row_width=2)
    markup.add(
        *(
            InlineKeyboardButton(t(language, f"reason_{code}"), callback_data=f"adm:rs:{code}:{payment_id}")
            for code in REASONS
        )
    )
    markup.row(InlineKeyboardButton(t(language, "admin_back"), callback_data=f"adm:bk:{payment_id}"))
    return markup


def confirm_reject(payment_id: int, reason: str, language: str) -> InlineKeyboardMarkup:
    """Reject, or reject and ban, for REASON; Back to the reasons."""
    markup = InlineKeyboardMarkup()
    markup.row(
        InlineKeyboardButton(t(language, "admin_reject_do"), callback_data=f"adm:rj:{reason}:{payment_id}"),
        InlineKeyboardButton(t(language, "admin_reject_ban"), callback_data=f"adm:rb:{reason}:{payment_id}"),
    )
    markup.row(InlineKeyboardButton(t(language, "admin_back"), callback_data=f"adm:no:{payment_id}"))
    return markup


def undo(payment_id: int, language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton(t(language, "admin_undo"), callback_data=f"adm:un:{payment_id}"))
    return markup


def open_cards(entries: Iterable[tuple[int, str]], language: str) -> InlineKeyboardMarkup:
    """One button per (payment id, customer) that opens the payment's card."""
    markup = InlineKeyboardMarkup(row_width=2)
    markup.add(
        *(
            InlineKeyboardButton(t(language, "admin_open", id=pid, customer=who), callback_data=f"adm:op:{pid}")
            for pid, who in entries
        )
    )
    return markup


def share(link: str, language: str) -> InlineKeyboardMarkup:
    """One button that opens Telegram's "share to a chat" with LINK and a line of invitation."""
    markup = InlineKeyboardMarkup()
    query = urlencode({"url": link, "text": t(language, "invite_share_text")})
    markup.row(InlineKeyboardButton(t(language, "invite_share"), url=f"https://t.me/share/url?{query}"))
    return markup
