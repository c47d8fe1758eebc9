"""A config in /configs as one compact card (plan, location, used of total, expiry as a date, status; never a
link), its buttons, and what its 📷 QR and 🔗 Subscription buttons answer.

Links are shown only of a config in use (active, or waiting for its server): an expired, paused or revoked one
shows none anywhere, but keeps its Renew button. The QR code is of the customer's subscription URL, which the
bot recommends: a client that imports it stays connected through renewals and moves between servers.

Callback data: `cfg:qr:<config id>` and `cfg:sub:<config id>` (bot/keyboards.py); the handler asks the API for
the customer's own configs, so a config id that is not theirs is refused as stale.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

from . import auto_renew
from .i18n import data_size, t

IN_USE = ("active", "pending")  # the statuses whose links (and subscription) are shown
_RANK = {"active": 0, "pending": 0, "suspended": 1, "expired": 2}  # how relevant, in /configs order
_MIB = 1024 * 1024
_PERSIAN_DIGITS = str.maketrans("0123456789", "".join(chr(0x06F0 + d) for d in range(10)))
JALALI_MONTHS = (
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
)
_MONTH_STARTS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def shows_links(config: dict[str, Any]) -> bool:
    return config.get("status") in IN_USE


def relevant_first(configs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """CONFIGS (the API lists them newest first) with those in use first, then paused, then expired; revoked
    ones are left out."""
    kept = [c for c in configs if c.get("status") != "revoked"]
    return sorted(kept, key=lambda c: _RANK.get(c.get("status"), 3))  # stable: newest first within each


def jalali(year: int, month: int, day: int) -> tuple[int, int, int]:
    """The Solar Hijri (Jalali) date of a Gregorian date: the 33-year arithmetic rule, exact for 1979-2099
    (the years a shop's configs can have)."""
    year2 = year + 1 if month > 2 else year
    days = (
        355666
        + 365 * year
        + (year2 + 3) // 4
        - (year2 + 99) // 100
        + (year2 + 399) // 400
        + day
        + _MONTH_STARTS[month - 1]
    )
    jy = -1595 + 33 * (days // 12053)
    days %= 12053
    jy += 4 * (days // 1461)
    days %= 1461
    if days > 365:
        jy += (days - 1) // 365
        days = (days - 1) % 365
    if days < 186:
        return jy, 1 + days // 31, 1 + days % 31
    return jy, 7 + (days - 186) // 30, 1 + (days - 186) % 30


def local_date(value: str, zone: str, language: str) -> str:
    """An API timestamp (ISO 8601, UTC) as a date in the shop's time zone ZONE: YYYY-MM-DD in English; in
    Persian the Jalali date in Persian digits, e.g. ۱۴ دی ۱۴۰۵."""
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    date = moment.astimezone(ZoneInfo(zone)).date()
    if language != "fa":
        return date.isoformat()
    year, month, day = jalali(date.year, date.month, date.day)
    return f"{day} {JALALI_MONTHS[month - 1]} {year}".translate(_PERSIAN_DIGITS)


def usage(config: dict[str, Any], language: str) -> str:
    """Used of total, in the one unit system (GB of 1024 MB): "0 MB of 10 GB"."""
    used = data_size((config.get("used_bytes") or 0) // _MIB, language)
    if config.get("data_limit_mb") is None:
        return t(language, "cfg_usage_unlimited", used=used)
    return t(language, "cfg_usage", used=used, total=data_size(config["data_limit_mb"], language))


def status_text(config: dict[str, Any], language: str) -> str:
    status = config.get("status") or ""
    return t(language, f"status_{status}") if status in (*_RANK, "revoked") else status


def card_text(
    language: str, config: dict[str, Any], plan: str, location: str, zone: str, notes: Sequence[str] = ()
) -> str:
    """The compact card of CONFIG: PLAN (its name), LOCATION (its label), used of total, expiry, status, NOTES
    (rendered lines). No link: those are behind its buttons."""
    expires = config.get("expires_at")
    if not expires:
        expiry = t(language, "cfg_no_expiry")
    else:
        key = "cfg_expired_on" if config.get("status") == "expired" else "cfg_expires_on"
        expiry = t(language, key, date=local_date(expires, zone, language))
    text = t(
        language,
        "cfg_card",
        id=config["id"],
        plan=plan,
        location=location,
        usage=usage(config, language),  # rendered: its sizes carry their direction marks already
        expiry=expiry,
        status=status_text(config, language),
    )
    extra = list(notes)
    if config.get("status") == "expired":
        extra.insert(0, t(language, "cfg_expired_note"))
    elif config.get("status") == "suspended":
        extra.insert(0, t(language, "cfg_paused_note"))
    return "\n\n".join([text, *extra])


def card_markup(
    config: dict[str, Any], extension: InlineKeyboardMarkup | None, language: str
) -> InlineKeyboardMarkup | None:
    """The card's buttons: EXTENSION (Renew / Add data, those the API allows), the auto-renewal toggle, and
    📷 QR and 🔗 Subscription for a config in use."""
    markup = auto_renew.with_toggle(extension, config, language)
    if shows_links(config):
        markup.row(
            InlineKeyboardButton(t(language, "cfg_qr"), callback_data=f"cfg:qr:{config['id']}"),
            InlineKeyboardButton(t(language, "cfg_sub"), callback_data=f"cfg:sub:{config['id']}"),
        )
    return markup if markup.keyboard else None


def links_block(language: str, config: dict[str, Any]) -> list[str]:
    """CONFIG's own links, each tappable to copy (or why there are none yet)."""
    links = config.get("links") or []
    if not links:
        return [t(language, "cfg_sub_pending", id=config["id"])]
    header = t(language, "cfg_sub_links", id=config["id"])
    return [header, *(f"<code>{html.escape(link, quote=False)}</code>" for link in links)]


def subscription_text(language: str, config: dict[str, Any], url: str) -> str:
    """The 🔗 Subscription answer: the subscription URL, recommended, then CONFIG's own links."""
    recommended = t(language, "sub_recommended", url=html.escape(url, quote=False))
    return "\n\n".join([recommended, *links_block(language, config)])
