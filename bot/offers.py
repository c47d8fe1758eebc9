"""What the API lets a customer do with a config (Renew, Add data), asked of its quotes, and how a quote and
a refusal read: shared by /configs, the notifier and the renewal flow (handlers/renewals.py).

The bot decides none of it: offers() asks GET /configs/{id}/renewal and /extra-data, so no button is shown
that the API would refuse, and a refusal's code picks the customer's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telebot.types import InlineKeyboardMarkup

from . import keyboards
from .api_client import ApiError
from .context import Shop
from .i18n import data_size, day, money, plan_name, remaining_bytes, t

MB_PER_GB = 1024  # the API prices extra data per 1024 MB
MIB = 1024 * 1024
OFFER_GONE = ("plan_not_allowed", "plan_not_for_sale", "amount_mismatch")


@dataclass(frozen=True)
class Offers:
    """What the API would let the customer do with a config now."""

    renew: bool = False
    data: bool = False
    in_review: tuple[int, ...] = ()  # a renewal or extra data of it waits for review: nothing until decided


def _pending_ids(exc: ApiError) -> list[int]:
    details = exc.details if isinstance(exc.details, dict) else {}
    return [int(i) for i in details.get("pending_payment_ids") or []]


def offers(shop: Shop, user_id: int, config: dict[str, Any]) -> Offers:
    """Ask the API's quotes whether CONFIG may be renewed (with its own plan; when that one is no longer sold
    or may not follow, another may: the button stays) and get more data (1 GB)."""
    if config.get("status") == "revoked":
        return Offers()
    in_review: set[int] = set()

    def allowed(quote: Any) -> bool:
        try:
            quote()
        except ApiError as exc:
            if exc.code == "extension_in_review":
                in_review.update(_pending_ids(exc))
            return exc.code in ("plan_not_for_sale", "plan_not_allowed")
        return True

    renew = config.get("plan_id") is not None and allowed(
        lambda: shop.api.renewal_quote(config["id"], user_id, config["plan_id"])
    )
    data = allowed(lambda: shop.api.extra_data_quote(config["id"], user_id, MB_PER_GB))
    if in_review:
        return Offers(in_review=tuple(sorted(in_review)))
    return Offers(renew, data)


def actions(found: Offers, config_id: int, language: str) -> InlineKeyboardMarkup | None:
    if not (found.renew or found.data):
        return None
    return keyboards.extension_actions(config_id, found.renew, found.data, language)


def actions_for(shop: Shop, user_id: int, config_id: int, language: str) -> InlineKeyboardMarkup | None:
    """The Renew / Add data buttons the API allows for USER_ID's config CONFIG_ID (None: none, or no such config)."""
    config = find_config(shop, user_id, config_id)
    return None if config is None else actions(offers(shop, user_id, config), config_id, language)


def find_config(shop: Shop, user_id: int, config_id: int) -> dict[str, Any] | None:
    return next((c for c in shop.api.configs(user_id) if c["id"] == config_id), None)


def refusal_key(code: str, what: str, config: dict[str, Any] | None) -> str | None:
    if code == "config_not_renewable":
        if config is None:
            return "ext_data_expired" if what == "data" else "ext_not_renewable"
        if what == "data" and (config["status"] == "expired" or config.get("remaining_seconds") == 0):
            return "ext_data_expired"
        return {"trial": "ext_not_renewable_trial", "temporary": "ext_not_renewable_temporary"}.get(
            config["kind"], "ext_not_renewable"
        )
    if code == "extension_in_review":
        return "ext_in_review"
    if code in OFFER_GONE:
        return "ext_offer_changed"
    if code == "not_found":
        return "ext_gone"
    return None


def renewal_quotes(shop: Shop, user_id: int, config: dict) -> list[dict]:
    """The API's quote for every plan that may renew CONFIG (the plans of its plan's location and kind that
    the API accepts), its own plan first. A refusal of the config itself raises."""
    if config.get("plan_id") is None:  # a trial: the API has no plan period to follow
        raise ApiError(409, "config_not_renewable", "Nothing to renew.")
    current = shop.api.get_plan(config["plan_id"])
    quotes = []
    for plan in shop.api.plans(location_tag=current["location_tag"], is_constant_ip=current["is_constant_ip"]):
        try:
            quotes.append(shop.api.renewal_quote(config["id"], user_id, plan["id"]))
        except ApiError as exc:
            if exc.code not in ("plan_not_allowed", "plan_not_for_sale"):
                raise
    return sorted(quotes, key=lambda quote: (not quote["same_plan"], quote["price_cents"], quote["plan"]["id"]))


def _past(timestamp: str) -> bool:
    moment = datetime.fromisoformat(timestamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) <= datetime.now(UTC)


def _left(data_limit_mb: int | None, used_bytes: int, language: str) -> str:
    return remaining_bytes(None if data_limit_mb is None else max(data_limit_mb * MIB - used_bytes, 0), language)


def quote_text(language: str, currency: str, what: str, quote: dict, balance: int, used_bytes: int) -> str:
    """A renewal's (WHAT "renew") or extra data's QUOTE as the customer reads it before paying, with their
    BALANCE; USED_BYTES tell what is left of the cap a receipt gives while it is reviewed."""
    price, balance_text = money(quote["price_cents"], currency, language), money(balance, currency, language)
    if what == "data":
        return t(
            language,
            "ext_quote_data",
            id=quote["config_id"],
            data=data_size(quote["data_mb"], language),
            date=day(quote["expires_at"]),
            cap=data_size(quote["new_data_limit_mb"], language),
            price=price,
            balance=balance_text,
        )
    plan = quote["plan"]
    if quote["data_rule"] == "carry" and quote["carried_mb"]:
        data = t(
            language,
            "ext_data_carry",
            plan_data=data_size(plan["data_limit_mb"], language),
            carried=data_size(quote["carried_mb"], language),
            data=data_size(quote["new_data_limit_mb"], language),
        )
    else:
        data = t(language, "ext_data_reset", data=data_size(quote["new_data_limit_mb"], language))
    parts = [
        t(
            language,
            "ext_quote_renew",
            id=quote["config_id"],
            name=plan_name(plan, language),
            days=plan["duration_days"],
            until=t(language, "ext_expired_on" if _past(quote["expires_at"]) else "ext_runs_until"),
            current=day(quote["expires_at"]),
            new=day(quote["new_expires_at"]),
            raw=data,  # rendered above
            price=price,
            balance=balance_text,
        )
    ]
    meanwhile = quote.get("while_in_review")
    if meanwhile:
        left = _left(meanwhile["data_limit_mb"], used_bytes, language)
        parts.append(t(language, "ext_meanwhile", date=day(meanwhile["expires_at"]), data=left))
    parts.append(t(language, "ext_same_link"))
    return "\n\n".join(parts)
