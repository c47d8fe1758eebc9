"""Auto-renewal as the customer sees it: the per-config "Auto-renew: on/off" button, the two notifications
(auto_renewed, auto_renew_failed), and the failure's "Top up" button (handlers/topup.py starts the top-up).

The API decides everything (who may opt in, when and whether a config is renewed, the amount missing); this
module only words it. Callback data: `ar:<1|0>:<config id>` asks for auto-renewal on (1) or off (0);
`top:<amount in the smallest unit>` starts a top-up of that amount, `top:no` cancels one. Both are parsed
strictly: anything else is refused as stale.
"""

from __future__ import annotations

import re
from typing import Any

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

from .i18n import money, plan_name, t

TOGGLE = re.compile(r"^ar:(?P<on>[01]):(?P<config_id>[1-9][0-9]{0,17})$")
TOPUP = re.compile(r"^top:(?:(?P<amount>[1-9][0-9]{0,11})|(?P<cancel>no))$")
# Refusals a failure notification explains; anything else is shown with the API's message.
WHY = ("insufficient_balance", "plan_not_for_sale", "plan_not_allowed", "user_banned", "extension_in_review")
WHY += ("config_not_renewable",)


def toggle_button(config: dict[str, Any], language: str) -> InlineKeyboardButton | None:
    """The button of a paid config that may be renewed (on shows "on" and turns it off); None for others."""
    on = bool(config.get("auto_renew"))
    if (
        config.get("kind") != "full"
        or config.get("status") == "revoked"
        or (config.get("status") == "expired" and not on)
    ):
        return None
    label = t(language, "auto_renew_on" if on else "auto_renew_off")
    return InlineKeyboardButton(label, callback_data=f"ar:{0 if on else 1}:{config['id']}")


def config_markup(config: dict[str, Any], language: str) -> InlineKeyboardMarkup | None:
    """The buttons under a config card: the auto-renewal toggle, when the config has one."""
    button = toggle_button(config, language)
    if button is None:
        return None
    markup = InlineKeyboardMarkup()
    markup.row(button)
    return markup


def with_toggle(markup: InlineKeyboardMarkup | None, config: dict[str, Any], language: str) -> InlineKeyboardMarkup:
    """MARKUP (a config card's, as Telegram returned it) with CONFIG's toggle replaced, or added if it had none;
    the card's other buttons stay as they are."""
    button = toggle_button(config, language)
    mine = f":{config['id']}"
    rows, replaced = [], False
    for row in markup.keyboard if markup is not None else []:
        kept = []
        for old in row:
            if (old.callback_data or "").startswith("ar:") and old.callback_data.endswith(mine):
                replaced = True
                if button is not None:
                    kept.append(button)
            else:
                kept.append(old)
        if kept:
            rows.append(kept)
    if not replaced and button is not None:
        rows.append([button])
    result = InlineKeyboardMarkup()
    for row in rows:
        result.row(*row)
    return result


def topup_markup(language: str, amount_cents: int, currency: str) -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    label = t(language, "topup_button", amount=money(amount_cents, currency, language))
    markup.row(InlineKeyboardButton(label, callback_data=f"top:{amount_cents}"))
    return markup


def notification(
    language: str, kind: str, payload: dict[str, Any], currency: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The message (and buttons) of an auto_renewed or auto_renew_failed notification."""
    values = {
        "config_id": payload.get("config_id", ""),
        "plan": plan_name({"name": payload.get("plan"), "name_fa": payload.get("plan_fa")}, language),
        "expires": str(payload.get("expires_at") or "")[:10],
        "amount": money(int(payload.get("amount_cents") or 0), currency, language),
        "balance": money(int(payload.get("balance_cents") or 0), currency, language),
    }
    if kind == "auto_renewed":
        return t(language, "notify_auto_renewed", **values), None
    reason = payload.get("reason")
    missing = int(payload.get("missing_cents") or 0)
    why = t(
        language,
        f"auto_renew_why_{reason}" if reason in WHY else "auto_renew_why_other",
        **values,
        missing=money(missing, currency, language),
        message=payload.get("message") or reason or "",
    )
    text = t(language, "notify_auto_renew_failed", **values) + "\n\n" + why
    markup = topup_markup(language, missing, currency) if reason == "insufficient_balance" and missing > 0 else None
    return text, markup
