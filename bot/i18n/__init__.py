"""Every text the bot says, from the catalogs (en, fa), formatted for Telegram HTML and RTL-safe.

Inside Persian text, Latin fragments (codes, ids, prices, sizes) are wrapped in LEFT-TO-RIGHT MARKs so they
keep their order; links and URLs are left bare (they sit on their own line and must copy cleanly).
"""

from __future__ import annotations

import html
import re
from typing import Any

from . import en, fa

CATALOGS: dict[str, dict[str, str]] = {"en": en.MESSAGES, "fa": fa.MESSAGES}
LANGUAGES = ("en", "fa")
DEFAULT_LANGUAGE = "en"
LRM = "\u200e"
# A rejection's quick reasons, as the API's stable codes (RejectIn.reason_code).
REASON_CODES = ("fake_receipt", "wrong_amount", "unreadable", "already_used")
_BARE = {"links", "url", "link", "sub_url", "raw"}  # already-formatted HTML or copyable links
_LATIN = re.compile(r"[A-Za-z0-9]")
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


def language_of(value: str | None) -> str:
    return value if value in CATALOGS else DEFAULT_LANGUAGE


def ltr(text: str, language: str) -> str:
    """Wrap a Latin fragment in direction marks inside RTL text (a no-op in English)."""
    if language == "fa" and _LATIN.search(text) and LRM not in text:
        return f"{LRM}{text}{LRM}"
    return text


def t(language: str, key: str, **values: Any) -> str:
    """The message KEY in LANGUAGE (falling back to English), with VALUES escaped for HTML."""
    language = language_of(language)
    template = CATALOGS[language].get(key) or CATALOGS[DEFAULT_LANGUAGE][key]
    safe = {
        name: str(value) if name in _BARE else ltr(html.escape(str(value), quote=False), language)
        for name, value in values.items()
    }
    return template.format(**safe)


def normalize_digits(text: str) -> str:
    """Persian and Arabic-Indic digits to ASCII, so Persian thirty parses as 30."""
    return text.translate(_DIGITS)


def parse_int(text: str | None, maximum: int = 10**12) -> int | None:
    """A positive integer from user input in any digits, or None (absurd, negative or not a number)."""
    if not text:
        return None
    cleaned = normalize_digits(text).strip().replace(",", "").replace("٬", "")
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > 13:
        return None
    value = int(cleaned)
    return value if 0 < value <= maximum else None


def id_list(ids: list[int]) -> str:
    """Payment ids for a "#{ids}" placeholder: 12 or 12, #13 (one Latin run, so one pair of direction marks)."""
    return ", #".join(str(i) for i in ids)


def money(cents: int, currency: str) -> str:
    whole, rest = divmod(int(cents), 100)
    return f"{whole:,}.{rest:02d} {currency}" if rest else f"{whole:,} {currency}"


def data_size(megabytes: int | None, language: str) -> str:
    if megabytes is None:
        return t(language, "unlimited")
    if megabytes >= 1024 and megabytes % 1024 == 0:
        return f"{megabytes // 1024} GB"
    if megabytes >= 1000 and megabytes % 1000 == 0:
        return f"{megabytes // 1000} GB"
    return f"{megabytes} MB"


def remaining_bytes(value: int | None, language: str) -> str:
    if value is None:
        return t(language, "unlimited")
    mib = value / (1024 * 1024)
    return f"{mib / 1024:.1f} GB" if mib >= 1024 else f"{mib:.0f} MB"


def remaining_time(seconds: int | None, language: str) -> str:
    if seconds is None:
        return t(language, "unlimited")
    days, rest = divmod(max(0, int(seconds)), 86400)
    return t(language, "days_hours", days=days, hours=rest // 3600)


def day(value: str | None) -> str:
    """The date of an ISO timestamp from the API (YYYY-MM-DD, UTC), or a dash without one."""
    return str(value)[:10] if value else "—"


def all_texts(key: str) -> set[str]:
    """KEY in every language (to recognise menu buttons whatever the user's language)."""
    return {catalog[key] for catalog in CATALOGS.values() if key in catalog}


def reason_text(language: str, reason: str | None) -> str:
    """A rejection's or a ban's reason for the customer: a quick reason's code in LANGUAGE, else as written."""
    if reason in REASON_CODES:
        return t(language, f"notify_reason_{reason}")
    return reason or ""
