"""Renewals and extra data: a paid config gets another period, or more data for this one, in place.

The config keeps its id, UUID and links; only its plan, expiry, data cap (and, for a renewal, its
period's usage counter) change. Paid with a proof (payments.py: a payment of purpose "renewal" or
"extra_data", under the same proof rules as a purchase, approved by an admin or the sweep) or from the
balance (wallet.py), which extends at once.

- **Which config**: the customer's own full (paid) config with an expiry; not a trial or a temporary
  config, not revoked, not suspended by an admin. One renewal or extra data in review per config
  (extension_in_review), so an approval always counts from the config's own state.
- **Which plan**: one on sale, of the config's plan's location and constant-IP kind, and of the config's
  node's region when the plan names one (the config stays on its node). Any such plan may follow; the
  quote says whether it is the same plan or an upgrade (more data or more days).
- **Time**: the new expiry is max(now, expires_at) + the plan's days, expires_at being the config's own,
  before any temporary extension.
- **Data**, by the plan's renewal_data_rule: "reset" gives the plan's MB from zero; "carry" adds what
  was left unused, if the order came before the config expired. Either way the usage counter
  (used_bytes) restarts at 0 for the new period; the usage rows keep the history.
- **While a renewal is in review** the config is served until at least TEMPORARY_DAYS from the proof,
  with at least TEMPORARY_DATA_PERCENT of the new plan's cap left (an expired config gets exactly that,
  the usual temporary extension; it, or one suspended because its data ran out, goes back onto its node
  at once). The payment keeps the values this
  replaced; a rejection (or a ban) restores exactly them, so an expired config is expired again and
  leaves its node. Nothing else of the config is touched by a rejection.
- **Extra data**: for the current period of a full config that has not expired (served, or suspended
  for its quota); the price is EXTRA_DATA_PRICE_CENTS_PER_GB per 1024 MB, rounded up. Approval adds
  the MB to the cap; a config suspended for its quota comes back if the new cap covers its usage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Node, Payment, Plan, User, UserConfig, utcnow
from . import discounts, notifications
from .configs import config_view, new_config
from .lookup import get_or_404
from .placement import place_or_none
from .revisions import SERVED_STATUSES, bump, serving_nodes

MIB = 1024 * 1024
MB_PER_GB = 1024


@dataclass(frozen=True)
class Renewal:
    """What a renewal makes of a config."""

    expires_at: datetime
    data_limit_mb: int
    carried_mb: int


# --- who may order what ---------------------------------------------------------------------------------


def own_config(session: Session, user_id: int, config_id: int, lock: bool = True) -> UserConfig:
    """USER_ID's config CONFIG_ID (locked unless LOCK is false); 404 for a config of someone else, as for
    one that does not exist."""
    get_or_404(session, User, user_id, "User")
    config = session.get(UserConfig, config_id, with_for_update=lock, populate_existing=True)
    if config is None or config.user_id != user_id:
        raise NotFound(f"User {user_id} has no config {config_id}.")
    return config


def ensure_renewable(config: UserConfig) -> None:
    """A paid config with an expiry, not revoked and not suspended by an admin (or a ban)."""
    why = None
    if config.kind != "full":
        why = "a trial is not renewed; buy a plan" if config.kind == "trial" else "its purchase is still in review"
    elif config.status == "revoked":
        why = "it was revoked"
    elif config.status == "suspended" and config.suspend_reason != "quota":
        why = f"it is suspended ({config.suspend_reason})"
    elif config.expires_at is None or config.plan_id is None:
        why = "it has no plan period to follow"
    if why:
        raise Conflict(f"Config {config.id} cannot be extended: {why}.", code="config_not_renewable")


def ensure_in_period(config: UserConfig, now: datetime) -> None:
    """Extra data is for a period that has not ended: served, or suspended because its data ran out."""
    ensure_renewable(config)
    if config.status == "expired" or config.expires_at <= now:
        raise Conflict(f"Config {config.id} has expired; renew it instead of adding data.", code="config_not_renewable")


def ensure_none_in_review(session: Session, config: UserConfig) -> None:
    waiting = session.scalars(
        select(Payment.id).where(Payment.extends_config_id == config.id, Payment.status == "pending")
    ).all()
    if waiting:
        raise Conflict(
            f"Config {config.id} has a renewal or extra data in review; wait for the decision first.",
            code="extension_in_review",
            details={"pending_payment_ids": list(waiting)},
        )


def allowed_plan(session: Session, config: UserConfig, plan_id: int) -> Plan:
    """PLAN_ID if it may follow CONFIG's plan: on sale, same location and constant-IP kind, and the region
    of the config's node when it names one."""
    plan = get_or_404(session, Plan, plan_id, "Plan")
    if not plan.is_active:
        raise Conflict("This plan is no longer sold.", code="plan_not_for_sale")
    current = session.get_one(Plan, config.plan_id)
    node = session.get(Node, config.node_id) if config.node_id is not None else None
    why = None
    if plan.location_tag != current.location_tag:
        why = f"it serves {plan.location_tag!r}, the config {current.location_tag!r}"
    elif plan.is_constant_ip != current.is_constant_ip:
        why = "a constant-IP plan and a dynamic one do not follow each other"
    elif plan.region is not None and node is not None and node.region != plan.region:
        why = f"it serves region {plan.region!r}, the config's node is in {node.region!r}"
    if why:
        raise Conflict(f"Plan {plan.id} cannot renew config {config.id}: {why}.", code="plan_not_allowed")
    return plan


def extra_data_price(settings: Settings, data_mb: int) -> int:
    return math.ceil(data_mb * settings.extra_data_price_cents_per_gb / MB_PER_GB)


def ensure_amount(amount_cents: int, price: int, what: str, discount: discounts.Discount | None = None) -> None:
    """The amount a proof pays must be PRICE (WHAT it is), or what DISCOUNT leaves of it."""
    expected = discounts.to_pay(price, discount)
    if discount is not None:
        what += f" after the discount code {discount.code.code}"
    if amount_cents != expected:
        raise InvalidInput(
            f"The amount must be {what}, {expected} cents.",
            code="amount_mismatch",
            details={"json": {"amount_cents": [f"Expected {expected}."]}},
        )


def check_order(
    session: Session, settings: Settings, user: User, data: dict[str, Any], now: datetime
) -> tuple[UserConfig, Plan | None, int, discounts.Discount | None]:
    """The config, plan (a renewal's), price to pay and discount code (claimed: its use is the caller's to
    record) of a renewal or extra-data order in DATA; raises what refuses it. Only a renewal takes a code."""
    config = own_config(session, user.id, data["extends_config_id"])
    if data["purpose"] == "renewal":
        ensure_renewable(config)
        plan = allowed_plan(session, config, data["plan_id"])
        price, what = plan.price_cents, "the plan's price"
    else:
        if data.get("discount_code") is not None:
            raise InvalidInput(
                "Extra data takes no discount code.", details={"json": {"discount_code": ["Only with a plan."]}}
            )
        ensure_in_period(config, now)
        plan, price, what = None, extra_data_price(settings, data["extra_data_mb"]), "the data's price"
    ensure_none_in_review(session, config)
    discount = None if plan is None else discounts.claim(session, data.get("discount_code"), user.id, plan, now)
    if "amount_cents" in data:
        ensure_amount(data["amount_cents"], price, what, discount)
    return config, plan, discounts.to_pay(price, discount), discount


# --- what a renewal makes of a config -------------------------------------------------------------------


def renewal_terms(
    config: UserConfig, plan: Plan, now: datetime, ordered_at: datetime, payment: Payment | None
) -> Renewal:
    """CONFIG renewed with PLAN at NOW, for an order placed at ORDERED_AT (PAYMENT's, when it has one: its
    temporary extension is not counted)."""
    extended = payment is not None and payment.previous_status is not None
    expires = payment.previous_expires_at if extended else config.expires_at
    limit = payment.previous_data_limit_mb if extended else config.data_limit_mb
    carried = 0
    if plan.renewal_data_rule == "carry" and limit is not None and expires > ordered_at:
        carried = max(limit * MIB - config.used_bytes, 0) // MIB
    return Renewal(max(now, expires) + timedelta(days=plan.duration_days), plan.data_limit_mb + carried, carried)


def temporary_terms(
    config: UserConfig, plan: Plan, settings: Settings, now: datetime
) -> tuple[datetime, int | None] | None:
    """(expiry, cap) that keep CONFIG served while its renewal is in review; None when it already is."""
    until = now + timedelta(days=settings.temporary_days)
    temporary_mb = max(1, math.ceil(plan.data_limit_mb * settings.temporary_data_percent / 100))
    expires = max(config.expires_at, until)
    limit = config.data_limit_mb
    if limit is not None:
        bridge = math.ceil(config.used_bytes / MIB) + temporary_mb
        # An expired period's leftover is not served again: the usual temporary allowance, exactly. A live
        # config keeps what it has if that is more.
        limit = bridge if config.status == "expired" else max(limit, bridge)
    if config.status in SERVED_STATUSES and (expires, limit) == (config.expires_at, config.data_limit_mb):
        return None
    return expires, limit


def extend_temporarily(
    session: Session, settings: Settings, payment: Payment, config: UserConfig, plan: Plan, now: datetime
) -> list[int]:
    """Apply the temporary extension of a renewal's proof (if the config needs one), keeping what it
    replaces on PAYMENT; returns the nodes to sync (bumped) when the config went back onto its node."""
    terms = temporary_terms(config, plan, settings, now)
    if terms is None:
        return []
    payment.previous_status, payment.previous_suspend_reason = config.status, config.suspend_reason
    payment.previous_expires_at, payment.previous_data_limit_mb = config.expires_at, config.data_limit_mb
    config.expires_at, config.data_limit_mb = terms
    if config.status in SERVED_STATUSES:
        return []
    config.status, config.suspend_reason = "pending", None
    return bump(session, serving_nodes([config]))


def undo_temporary(session: Session, payment: Payment, now: datetime) -> list[int]:
    """Restore what PAYMENT's temporary extension replaced (its rejection, or its user's ban); returns the
    nodes to sync (bumped) when the config left its node."""
    if payment.previous_status is None or payment.extends_config_id is None:
        return []
    config = session.get(UserConfig, payment.extends_config_id, with_for_update=True, populate_existing=True)
    if config is None:
        return []
    was_served = config.status in SERVED_STATUSES
    config.expires_at, config.data_limit_mb = payment.previous_expires_at, payment.previous_data_limit_mb
    decided_elsewhere = config.status == "revoked" or (
        config.status == "suspended" and config.suspend_reason in ("admin", "ban")
    )
    if decided_elsewhere:
        pass  # an admin's or a ban's status stays; only the temporary values go
    elif payment.previous_status == "expired" or config.expires_at <= now:
        config.status, config.suspend_reason = "expired", None
    elif payment.previous_status == "suspended":
        config.status, config.suspend_reason = "suspended", payment.previous_suspend_reason
    # Served before and still in its period: it stays served; the quota sweep judges the restored cap.
    return bump(session, serving_nodes([config])) if was_served and config.status not in SERVED_STATUSES else []


def renew_in_place(session: Session, config: UserConfig, plan: Plan, terms: Renewal) -> list[int]:
    """Give CONFIG the new period; returns the nodes to sync (bumped) if it went back onto its node."""
    config.plan_id = plan.id
    config.expires_at, config.data_limit_mb, config.used_bytes = terms.expires_at, terms.data_limit_mb, 0
    return _back_on_node(session, config, ("expired", "suspended"))


def add_data(session: Session, config: UserConfig, data_mb: int) -> list[int]:
    """Add DATA_MB to CONFIG's cap; a config suspended for its quota comes back if the cap now covers it."""
    if config.data_limit_mb is not None:
        config.data_limit_mb += data_mb
    covered = config.data_limit_mb is None or config.used_bytes < config.data_limit_mb * MIB
    return _back_on_node(session, config, ("suspended",)) if covered else []


def _back_on_node(session: Session, config: UserConfig, from_statuses: tuple[str, ...]) -> list[int]:
    """A config that left its node for its time or data (never an admin's or a ban's suspension) returns."""
    if config.status not in from_statuses or config.suspend_reason not in (None, "quota"):
        return []
    config.status, config.suspend_reason = "pending", None
    return bump(session, serving_nodes([config]))


def approve_extension(session: Session, payment: Payment, now: datetime) -> tuple[UserConfig, list[int]]:
    """Extend the claimed payment's config in place and tell the customer; returns (the config, the
    nodes to sync, bumped). A renewal whose config was revoked meanwhile gets a new config of its plan
    (placed now, or by the sweep), as a purchase would."""
    config = session.get(UserConfig, payment.extends_config_id, with_for_update=True, populate_existing=True)
    if payment.purpose == "extra_data":
        assert config is not None  # extends_config_id cascades: the payment goes with its config
        assert payment.extra_data_mb is not None  # a CHECK
        touched = add_data(session, config, payment.extra_data_mb)
        facts = {"extra_data_mb": payment.extra_data_mb}
    else:
        plan = session.get_one(Plan, payment.plan_id)
        if config is None or config.status == "revoked":
            user = session.get_one(User, payment.user_id)
            node = place_or_none(session, plan)
            config = new_config(session, user, node, "full", plan.data_limit_mb, plan.duration_days, plan)
            payment.config_id = config.id
            touched = bump(session, [config.node_id])
            terms = Renewal(config.expires_at, plan.data_limit_mb, 0)
        else:
            terms = renewal_terms(config, plan, now, payment.created_at, payment)
            touched = renew_in_place(session, config, plan, terms)
        facts = {**notifications.plan_names(plan), "carried_mb": terms.carried_mb}
    kind = "renewed" if payment.purpose == "renewal" else "data_added"
    notifications.notify(
        session,
        payment.user_id,
        kind,
        f"{kind}:payment-{payment.id}",
        payment_id=payment.id,
        config_id=config.id,
        data_limit_mb=config.data_limit_mb,
        expires_at=config.expires_at.isoformat(),
        **facts,
    )
    return config, touched


# --- quotes: what the customer is shown before paying ---------------------------------------------------


def quote_renewal(session: Session, settings: Settings, config_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """Price, new expiry and data of renewing CONFIG_ID with the plan, or the refusal a proof would get."""
    now = utcnow()
    config = own_config(session, query["user_id"], config_id, lock=False)
    ensure_renewable(config)
    plan = allowed_plan(session, config, query["plan_id"])
    ensure_none_in_review(session, config)
    current = session.get_one(Plan, config.plan_id)
    terms = renewal_terms(config, plan, now, now, None)
    temporary = temporary_terms(config, plan, settings, now)
    return {
        "config_id": config.id,
        "plan": _plan_facts(plan),
        "price_cents": plan.price_cents,
        "same_plan": plan.id == current.id,
        "upgrade": plan.data_limit_mb > current.data_limit_mb or plan.duration_days > current.duration_days,
        "expires_at": config.expires_at,
        "new_expires_at": terms.expires_at,
        "data_rule": plan.renewal_data_rule,
        "carried_mb": terms.carried_mb,
        "new_data_limit_mb": terms.data_limit_mb,
        "while_in_review": None if temporary is None else {"expires_at": temporary[0], "data_limit_mb": temporary[1]},
    }


def quote_extra_data(session: Session, settings: Settings, config_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """Price and resulting cap of adding DATA_MB to CONFIG_ID's current period, or the refusal."""
    config = own_config(session, query["user_id"], config_id, lock=False)
    ensure_in_period(config, utcnow())
    ensure_none_in_review(session, config)
    return {
        "config_id": config.id,
        "data_mb": query["data_mb"],
        "price_cents": extra_data_price(settings, query["data_mb"]),
        "price_cents_per_gb": settings.extra_data_price_cents_per_gb,
        "new_data_limit_mb": None if config.data_limit_mb is None else config.data_limit_mb + query["data_mb"],
        "expires_at": config.expires_at,
    }


def _plan_facts(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "name_fa": plan.name_fa,
        "price_cents": plan.price_cents,
        "duration_days": plan.duration_days,
        "data_limit_mb": plan.data_limit_mb,
        "renewal_data_rule": plan.renewal_data_rule,
    }


def extended_config_view(session: Session, payment: Payment) -> dict[str, Any] | None:
    config_id = payment.config_id or payment.extends_config_id
    return config_view(session, session.get_one(UserConfig, config_id)) if config_id else None
