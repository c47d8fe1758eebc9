"""Every text the bot says, from the catalogs (en, fa), formatted for Telegram HTML and RTL-safe.

Inside Persian text, Latin fragments (codes, ids, prices, sizes) are wrapped in LEFT-TO-RIGHT MARKs so they
keep their order; links and URLs are left bare (they sit on their own line and must copy cleanly).
"""

from __future__ import annotations

import html
import math
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


# Currencies without minor units: a Toman or Rial shop stores whole Tomans or Rials (price_cents = 150000 is
# 150,000 Toman); every other currency stores hundredths (cents).
WHOLE_UNIT_CURRENCIES = frozenset(("IRT", "IRR", "TOMAN", "RIAL"))
CURRENCY_NAMES = {
    "en": {"IRT": "Toman", "TOMAN": "Toman", "IRR": "Rial", "RIAL": "Rial"},
    "fa": {"IRT": "تومان", "TOMAN": "تومان", "IRR": "ریال", "RIAL": "ریال"},
}
# Persian digits (U+06F0..U+06F9), the Arabic thousands separator and decimal separator.
_PERSIAN_NUMBER = str.maketrans("0123456789,.", "".join(chr(0x06F0 + d) for d in range(10)) + "\u066c\u066b")
# One unit system everywhere: a GB is 1024 MB (plans, quotas, extra data, what is left), so a plan of
# 10 GB (10240 MB) shows 10 GB left on its first day.
MB_PER_GB = 1024


def money(amount: int, currency: str, language: str = "en") -> str:
    """AMOUNT in the shop's smallest unit, for LANGUAGE: "15 USD", "1,500.50 USD"; a Toman shop's amounts
    have no minor units and read "150,000 Toman", or in Persian digits and separators with the Persian name."""
    code = currency.strip().upper()
    if code in WHOLE_UNIT_CURRENCIES:
        number = f"{int(amount):,}"
        name = CURRENCY_NAMES.get(language, CURRENCY_NAMES["en"]).get(code, currency)
        return f"{number.translate(_PERSIAN_NUMBER)} {name}" if language == "fa" else f"{number} {name}"
    whole, rest = divmod(int(amount), 100)
    return f"{whole:,}.{rest:02d} {currency}" if rest else f"{whole:,} {currency}"


def _size(megabytes: float) -> str:
    """MEGABYTES in GB of 1024 MB (one decimal, rounded down so what is left is never overstated) or MB."""
    if megabytes >= MB_PER_GB:
        tenths = math.floor(megabytes * 10 / MB_PER_GB)
        whole, tenth = divmod(tenths, 10)
        return f"{whole}.{tenth} GB" if tenth else f"{whole} GB"
    return f"{math.floor(megabytes)} MB"


def data_size(megabytes: int | None, language: str) -> str:
    if megabytes is None:
        return t(language, "unlimited")
    return _size(megabytes)


def remaining_bytes(value: int | None, language: str) -> str:
    if value is None:
        return t(language, "unlimited")
    return _size(value / (1024 * 1024))


def remaining_time(seconds: int | None, language: str) -> str:
    if seconds is None:
        return t(language, "unlimited")
    days, rest = divmod(max(0, int(seconds)), 86400)
    return t(language, "days_hours", days=days, hours=rest // 3600)


def day(value: str | None) -> str:
    """The date of an ISO timestamp from the API (YYYY-MM-DD, UTC), or a dash without one."""
    return str(value)[:10] if value else "—"


def plan_name(plan: dict[str, Any], language: str) -> str:
    """A plan's name as a customer in LANGUAGE reads it: its Persian name (name_fa) for Persian, when it has one;
    else its name. (Admins' cards and reports keep the name.)"""
    if language_of(language) == "fa" and plan.get("name_fa"):
        return plan["name_fa"]
    return plan.get("name") or ""


# What a customer copies from the payment instructions: a card number (16 digits, in groups of 4 or not, split
# by spaces or dashes, in any digits) or a Sheba (IBAN: IR and 24 digits, grouped or not). No digit (or
# separated digit) may touch either end, so a longer number (an account, a phone) is never half-copied.
_D = "[0-9\u06f0-\u06f9\u0660-\u0669]"
_SEP = "[ \u00a0-]"
_COPYABLE = re.compile(
    rf"(?<![A-Za-z0-9\u06f0-\u06f9\u0660-\u0669])(?<!{_D}{_SEP})"
    rf"(?:[Ii][Rr]{_SEP}?{_D}{{2}}(?:{_SEP}?{_D}){{22}}|{_D}{{4}}(?:{_SEP}?{_D}{{4}}){{3}})"
    rf"(?!{_SEP}?{_D})"
)


def copyable_numbers(text: str) -> str:
    """TEXT as Telegram HTML, with every card number and Sheba in a code span (a tap copies it): escaped
    everywhere, the numbers in ASCII digits as written (groups kept, so they read as on the card) and between
    left-to-right marks, so the groups keep their order inside Persian text."""
    parts, last = [], 0
    for match in _COPYABLE.finditer(text):
        number = normalize_digits(match.group()).upper().replace("\u00a0", " ")
        parts += [html.escape(text[last : match.start()], quote=False), f"{LRM}<code>{html.escape(number)}</code>{LRM}"]
        last = match.end()
    parts.append(html.escape(text[last:], quote=False))
    return "".join(parts)


def all_texts(key: str) -> set[str]:
    """KEY in every language (to recognise menu buttons whatever the user's language)."""
    return {catalog[key] for catalog in CATALOGS.values() if key in catalog}


def reason_text(language: str, reason: str | None) -> str:
    """A rejection's or a ban's reason for the customer: a quick reason's code in LANGUAGE, else as written."""
    if reason in REASON_CODES:
        return t(language, f"notify_reason_{reason}")
    return reason or ""
