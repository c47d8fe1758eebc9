"""Inline and reply keyboards, and the callback-data grammar (parsed strictly: tampered data is refused)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlencode

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from .i18n import t

# lang:<en|fa> | buy:<step>:<value> | buy:<ok|no|retry|code|nocode|all> | buy:back:<step the Back is on>
# | buy:plan:<plan id> (from "All plans") | howto:<platform> | sup:no
# | adm:<verdict>:<payment id>: ok approve, no reject (the reasons), bk back to Approve/Reject, op open the card
#   (from /payments), un undo a held decision
# | adm:<rs|rj|rb>:<reason>:<payment id>: rs a reason chosen (asks to confirm; other: asks to type it), rj reject,
#   rb reject and ban, with that reason (other: the one typed)
# | ext:<renew|data>:<config id> | ext:plan:<plan id> | ext:gb:<GB> | ext:<wallet|proof|back|no|retry>
# | bc:seg:<segment> | bc:<ok|no>
# | cfg:<qr|sub>:<config id> (a /configs card's QR and Subscription buttons)
REASONS = ("fake_receipt", "wrong_amount", "unreadable", "already_used", "other")
_ID = r"[1-9][0-9]{0,17}"
_CALLBACK = re.compile(
    r"^(?:lang:(?P<lang>en|fa)|buy:(?P<step>cat|loc|dur|cap|dev):(?P<value>[a-z0-9_-]{1,32})"
    rf"|buy:(?P<action>ok|no|retry|code|nocode|all)|buy:back:(?P<back>cat|loc|dur|cap|dev|list|confirm)"
    rf"|buy:plan:(?P<pick>{_ID})|adm:(?P<verdict>ok|no|bk|op|un):(?P<pid>{_ID})"
    rf"|adm:(?P<reject>rs|rj|rb):(?P<reason>{'|'.join(REASONS)}):(?P<rpid>{_ID})"
    rf"|ext:(?P<extend>renew|data):(?P<config>{_ID})|ext:plan:(?P<plan>{_ID})|ext:gb:(?P<gb>[1-9][0-9]{{0,4}})"
    r"|ext:(?P<ext>wallet|proof|back|no|retry)"
    rf"|cfg:(?P<view>qr|sub):(?P<cid>{_ID})"
    r"|howto:(?P<platform>android|ios|windows|macos)|sup:(?P<support>no)"
    r"|bc:seg:(?P<segment>all|active|expired|never_bought)|bc:(?P<broadcast>ok|no))$"
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


def _purchase_back_and_cancel(markup: InlineKeyboardMarkup, language: str, back: str | None) -> InlineKeyboardMarkup:
    """Back (when BACK, the step it is on, is not the first step shown) and Cancel, in one row."""
    row = [InlineKeyboardButton(t(language, "back"), callback_data=f"buy:back:{back}")] if back else []
    markup.row(*row, InlineKeyboardButton(t(language, "cancel"), callback_data="buy:no"))
    return markup


def choices(
    step: str,
    options: Iterable[tuple[str, str]],
    language: str,
    back: str | None = None,
    all_plans: bool = False,
) -> InlineKeyboardMarkup:
    """One button a row per (value, label with its price); "All plans" when ALL_PLANS; then Back, Cancel."""
    markup = InlineKeyboardMarkup()
    for value, label in options:
        markup.row(InlineKeyboardButton(label, callback_data=f"buy:{step}:{value}"))
    if all_plans:
        markup.row(InlineKeyboardButton(t(language, "buy_all_plans"), callback_data="buy:all"))
    return _purchase_back_and_cancel(markup, language, back)


def plan_list(plans: Iterable[tuple[int, str]], language: str, back: str = "list") -> InlineKeyboardMarkup:
    """One button a row per (plan id, label) of "All plans", then Back, Cancel."""
    markup = InlineKeyboardMarkup()
    for plan_id, label in plans:
        markup.row(InlineKeyboardButton(label, callback_data=f"buy:plan:{plan_id}"))
    return _purchase_back_and_cancel(markup, language, back)


def confirm(language: str, offer_code: bool = False, back: str | None = None) -> InlineKeyboardMarkup:
    """Confirm / Cancel; with OFFER_CODE, an "I have a discount code" button above them; with BACK (the
    summary was not the first step shown), Back beside them."""
    markup = InlineKeyboardMarkup()
    if offer_code:
        markup.row(InlineKeyboardButton(t(language, "have_code"), callback_data="buy:code"))
    row = [InlineKeyboardButton(t(language, "back"), callback_data=f"buy:back:{back}")] if back else []
    markup.row(
        *row,
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


def extension_actions(
    config_id: int, renew: bool, data: bool, language: str, cancel: bool = False
) -> InlineKeyboardMarkup:
    """Renew / Add data for a config (those the API allows), under its card, a notification or the menu step."""
    markup = InlineKeyboardMarkup()
    row = []
    if renew:
        row.append(InlineKeyboardButton(t(language, "ext_renew"), callback_data=f"ext:renew:{config_id}"))
    if data:
        row.append(InlineKeyboardButton(t(language, "ext_add_data"), callback_data=f"ext:data:{config_id}"))
    if row:
        markup.row(*row)
    if cancel:
        markup.row(InlineKeyboardButton(t(language, "cancel"), callback_data="ext:no"))
    return markup


def _back_and_cancel(markup: InlineKeyboardMarkup, language: str) -> InlineKeyboardMarkup:
    markup.row(
        InlineKeyboardButton(t(language, "back"), callback_data="ext:back"),
        InlineKeyboardButton(t(language, "cancel"), callback_data="ext:no"),
    )
    return markup


def extension_choices(options: Iterable[tuple[str, str]], language: str) -> InlineKeyboardMarkup:
    """One button a row per (callback data, label): plans or amounts with their prices; then Back, Cancel."""
    markup = InlineKeyboardMarkup()
    for data, label in options:
        markup.row(InlineKeyboardButton(label, callback_data=data))
    return _back_and_cancel(markup, language)


def extension_payment(language: str, from_balance: bool) -> InlineKeyboardMarkup:
    """How to pay a quoted renewal or extra data: the balance (when it covers the price), a receipt."""
    markup = InlineKeyboardMarkup()
    if from_balance:
        markup.row(InlineKeyboardButton(t(language, "ext_pay_wallet"), callback_data="ext:wallet"))
    markup.row(InlineKeyboardButton(t(language, "ext_pay_proof"), callback_data="ext:proof"))
    return _back_and_cancel(markup, language)


def extension_back(language: str) -> InlineKeyboardMarkup:
    return _back_and_cancel(InlineKeyboardMarkup(), language)


def extension_retry(language: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(InlineKeyboardButton("🔁", callback_data="ext:retry"))
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
