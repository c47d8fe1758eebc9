"""Wallets: a user's balance is the sum of their ledger rows (models/wallet.py), never a number stored alone.

Money comes in through an approved top-up payment (payments.approve books it once: the payment's claim
is single-shot and wallet_entries.payment_id is unique), an admin's credit, or a referral reward (a
customer the user invited made their first paid purchase: credit_referrer, once per referred customer,
referrals.py); it goes out through a purchase from the balance (a new config, or a renewal or extra data
for one, renewals.py) or an admin's debit. Every debit locks the user first (lock_user), reads the
balance and refuses to go below zero in the same transaction, so concurrent purchases queue on the
user and never overdraw. Rows are only ever added; a correction is another row. A purchase or renewal
from the balance may name a discount code (discounts.py): the discounted price is debited and the use
recorded in the same transaction; a code that makes it free is refused here (nobody reviews a balance
purchase; a free order goes to an admin as a payment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from ..kvstore import KeyValueStore
from ..models import Payment, Plan, User, UserConfig, WalletEntry, columns_of, utcnow
from . import audit, discounts, referrals, renewals
from .bans import ensure_not_banned
from .configs import config_view, new_config
from .lookup import get_or_404
from .placement import place
from .revisions import Dispatch, bump, commit_and_dispatch


def lock_user(session: Session, user_id: int) -> User:
    """USER_ID's row, locked until the transaction ends: every debit of one user queues here.

    A no-op UPDATE rather than SELECT ... FOR UPDATE, because it serialises on both engines: on
    PostgreSQL it takes the row lock (and, unlike FOR UPDATE, lets inserts that reference the user
    through a foreign key go on); on SQLite, which ignores FOR UPDATE and whose driver opens a
    transaction only at the first write, it takes the database's write lock, so the balance read
    after it cannot be overtaken by another writer."""
    locked = session.execute(
        update(User).where(User.id == user_id).values(id=User.id),
        execution_options={"synchronize_session": False},
    ).rowcount
    if locked != 1:
        raise NotFound(f"User {user_id} does not exist.")
    return session.get_one(User, user_id, populate_existing=True)


def balance(session: Session, user_id: int) -> int:
    """The sum of the user's ledger rows (0 without any)."""
    total = session.scalar(
        select(func.coalesce(func.sum(WalletEntry.amount_cents), 0)).where(WalletEntry.user_id == user_id)
    )
    return int(total or 0)


def book(
    session: Session,
    actor: Principal,
    user_id: int,
    amount_cents: int,
    reason: str,
    *,
    note: str | None = None,
    payment_id: int | None = None,
    config_id: int | None = None,
) -> WalletEntry:
    """Add one ledger row in the caller's transaction (flushed, so it has an id). A debit's caller must
    hold lock_user and have checked the balance (ensure_covers)."""
    entry = WalletEntry(
        user_id=user_id,
        amount_cents=amount_cents,
        reason=reason,
        note=note,
        actor_type=actor.kind,
        actor_id=actor.actor_id,
        actor_name=actor.name[:100],
        payment_id=payment_id,
        config_id=config_id,
    )
    session.add(entry)
    session.flush()
    return entry


def credit_topup(session: Session, reviewer: Principal, payment: Payment) -> WalletEntry:
    """Book an approved top-up payment (payments.approve calls it once, after claiming the payment)."""
    return book(session, reviewer, payment.user_id, payment.amount_cents, "topup", payment_id=payment.id)


def credit_referrer(
    session: Session,
    actor: Principal,
    percent: int,
    user_id: int,
    price_cents: int,
    *,
    payment_id: int | None = None,
    config_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """USER_ID's purchase for PRICE_CENTS was approved (payments.approve) or paid (pay_from_balance), in that
    transaction: if it is their first paid one and someone invited them, book the inviter's reward (reason
    "referral"), which referrals.decide_first_purchase lets through once per referred customer."""
    referral = referrals.decide_first_purchase(
        session, actor, percent, user_id, price_cents, payment_id=payment_id, config_id=config_id, now=now
    )
    if referral is None:
        return
    assert referral.amount_cents is not None  # set with the outcome "credited" (a CHECK)
    entry = book(session, actor, referral.referrer_user_id, referral.amount_cents, "referral")
    referrals.credited(session, actor, referral, entry, balance(session, referral.referrer_user_id))


def ensure_covers(session: Session, user_id: int, amount_cents: int) -> int:
    """The balance, if it covers AMOUNT_CENTS; else 409 insufficient_balance. Call under lock_user."""
    available = balance(session, user_id)
    if available < amount_cents:
        raise Conflict(
            f"The balance is {available} cents; this needs {amount_cents}.",
            code="insufficient_balance",
            details={"balance_cents": available, "needed_cents": amount_cents},
        )
    return available


def ensure_price_as_shown(price: int, expected_amount_cents: int | None) -> None:
    """A balance purchase debits at once, so the customer's consent is to the price they were shown: when the
    caller sends it (expected_amount_cents) and the price to debit now differs (changed since the quote, or a
    code's discount no longer applies as quoted), nothing is debited."""
    if expected_amount_cents is not None and expected_amount_cents != price:
        raise InvalidInput(
            f"The price is now {price} cents, not {expected_amount_cents}: quote it again.",
            code="amount_mismatch",
            details={"json": {"expected_amount_cents": [f"The price is {price}."]}, "price_cents": price},
        )


def pay_from_balance(
    session: Session,
    actor: Principal,
    user_id: int,
    data: dict[str, Any],
    dispatch: Dispatch,
    *,
    referral_percent: int,
) -> dict[str, Any]:
    """Buy DATA's plan with the balance: debit its price (less DATA's discount code) and create the full
    config at once, no review.

    One transaction: the user's lock, the code's lock and use, the balance check, placement and the config
    (the same new_config, bump and sync as an approved payment), the debit and the audit row commit
    together, so a placement that fails (no node has room) debits nothing and uses no code, and of
    concurrent purchases only those the balance covers succeed. A first paid purchase credits the
    customer's referrer in it too (credit_referrer, a percent of what was paid). Returns the config's view,
    the ledger row, the balance after it and the code used.
    """
    try:
        user = lock_user(session, user_id)
        ensure_not_banned(user)
        plan = get_or_404(session, Plan, data["plan_id"], "Plan")
        if not plan.is_active:
            raise Conflict("This plan is no longer sold.", code="plan_not_for_sale")
        discount = discounts.claim(session, data.get("discount_code"), user.id, plan, utcnow())
        discounts.ensure_reviewed_if_free(discount)
        price = discounts.to_pay(plan.price_cents, discount)
        ensure_price_as_shown(price, data.get("expected_amount_cents"))
        available = ensure_covers(session, user.id, price)
        node = place(session, plan)
        config = new_config(
            session, user, node, "full", plan.data_limit_mb, plan.duration_days, plan=plan, protocol=data["protocol"]
        )
        entry = book(session, actor, user.id, -price, "purchase", config_id=config.id)
        credit_referrer(session, actor, referral_percent, user.id, price, config_id=config.id)
        facts = _redeem(session, discount, user.id, entry)
        touched = bump(session, [node.id])
        audit.record(
            session,
            actor,
            "wallet.purchase",
            user_id=user.id,
            plan_id=plan.id,
            config_id=config.id,
            entry_id=entry.id,
            amount_cents=-price,
            **facts,
        )
    except DomainError:
        session.rollback()  # release the user's lock now; nothing was written
        raise
    commit_and_dispatch(session, touched, dispatch)
    return {
        "config": config_view(session, config, node),
        "entry": entry_view(entry),
        "balance_cents": available - price,
        "discount": discounts.applied_views(session, entry_id=entry.id).get(entry.id),
    }


def _redeem(session: Session, discount: discounts.Discount | None, user_id: int, entry: WalletEntry) -> dict[str, Any]:
    """Record a balance purchase's code use (on its ledger row); the audit row's facts about it."""
    if discount is None:
        return {}
    discounts.redeem(session, discount, user_id, wallet_entry_id=entry.id)
    return {"discount_code": discount.code.code, "amount_off_cents": discount.amount_off_cents}


def buy(
    session: Session,
    actor: Principal,
    settings: Settings,
    user_id: int,
    data: dict[str, Any],
    dispatch: Dispatch,
    store: KeyValueStore | None = None,
) -> dict[str, Any]:
    """A purchase from the balance: a new config of DATA's plan, or, with extends_config_id, another period
    (with plan_id) or more data (with data_mb) for one of the user's paid configs, in place. STORE counts
    refused discount codes (discounts.attempts)."""
    with discounts.attempts(store, settings, actor, user_id, data.get("discount_code")):
        if data.get("extends_config_id") is None:
            return pay_from_balance(session, actor, user_id, data, dispatch, referral_percent=settings.referral_percent)
        return extend_from_balance(session, actor, settings, user_id, data, dispatch)


@dataclass(frozen=True)
class Extension:
    """What an extension from the balance did: the config, the debit, the balance after it, the nodes to sync."""

    config: UserConfig
    plan: Plan | None
    entry: WalletEntry
    balance_cents: int
    touched: list[int]


def extend_from_balance(
    session: Session, actor: Principal, settings: Settings, user_id: int, data: dict[str, Any], dispatch: Dispatch
) -> dict[str, Any]:
    """Renew (plan_id) or add data (data_mb) to one of the user's paid configs with the balance, at once
    (extend_in_place), committed; a refusal rolls back and raises. No review, so no temporary extension
    and no notification: the caller has the answer."""
    purpose = "renewal" if data.get("plan_id") is not None else "extra_data"
    order = {"purpose": purpose, "extends_config_id": data["extends_config_id"], "plan_id": data.get("plan_id")}
    order.update(extra_data_mb=data.get("data_mb"), discount_code=data.get("discount_code"))
    order["expected_amount_cents"] = data.get("expected_amount_cents")
    try:
        done = extend_in_place(session, actor, settings, user_id, order, utcnow())
    except DomainError:
        session.rollback()
        raise
    commit_and_dispatch(session, done.touched, dispatch)
    return {
        "config": config_view(session, done.config),
        "entry": entry_view(done.entry),
        "balance_cents": done.balance_cents,
        "discount": discounts.applied_views(session, entry_id=done.entry.id).get(done.entry.id),
    }


def extend_in_place(
    session: Session, actor: Principal, settings: Settings, user_id: int, order: dict[str, Any], now: datetime
) -> Extension:
    """The one way a balance pays for a renewal or extra data (ORDER as renewals.check_order takes it, with
    its discount code if any), in the caller's transaction, which the caller commits (the API at once; the
    sweep's auto-renewal with its attempt row).

    The same rules as a proof's order (renewals.py: the customer's own renewable config, an allowed plan,
    nothing else in review for it) and the same guard as pay_from_balance: the user's lock, then the code's
    lock and use, the balance check, the extension in place and the debit (ledger reason renewal or
    extra_data) and its audit row. Every refusal is raised before anything is written.
    """
    user = lock_user(session, user_id)
    ensure_not_banned(user)
    config, plan, price, discount = renewals.check_order(session, settings, user, order, now)
    discounts.ensure_reviewed_if_free(discount)
    ensure_price_as_shown(price, order.get("expected_amount_cents"))
    available = ensure_covers(session, user.id, price)
    if plan is not None:
        terms = renewals.renewal_terms(config, plan, now, now, None)
        touched = renewals.renew_in_place(session, config, plan, terms)
    else:
        touched = renewals.add_data(session, config, order["extra_data_mb"])
    entry = book(session, actor, user.id, -price, order["purpose"], config_id=config.id)
    facts = _redeem(session, discount, user.id, entry)
    audit.record(
        session,
        actor,
        f"wallet.{order['purpose']}",
        user_id=user.id,
        config_id=config.id,
        plan_id=order["plan_id"],
        extra_data_mb=order["extra_data_mb"],
        entry_id=entry.id,
        amount_cents=-price,
        **facts,
    )
    return Extension(config, plan, entry, available - price, touched)


def adjust(session: Session, actor: Principal, user_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """An admin's credit (amount > 0) or debit (amount < 0) with their reason, audited; a debit never
    overdraws (409 insufficient_balance). Returns the ledger row and the balance after it."""
    if actor.kind != "admin":
        raise Forbidden("Only an admin adjusts a balance.")
    amount, note = data["amount_cents"], (data.get("reason") or "").strip()
    if amount == 0:
        raise InvalidInput("The amount must not be zero.", details={"json": {"amount_cents": ["Must not be 0."]}})
    if not note:
        raise InvalidInput("An adjustment needs a reason.", details={"json": {"reason": ["Required."]}})
    try:
        user = lock_user(session, user_id)
        available = ensure_covers(session, user.id, -amount) if amount < 0 else balance(session, user.id)
        entry = book(session, actor, user.id, amount, "admin_credit" if amount > 0 else "admin_debit", note=note)
        audit.record(
            session, actor, "wallet.adjust", user_id=user.id, entry_id=entry.id, amount_cents=amount, reason=note
        )
    except DomainError:
        session.rollback()
        raise
    session.commit()
    return {"entry": entry_view(entry), "balance_cents": available + amount}


def wallet_view(session: Session, user_id: int, page: dict[str, Any]) -> dict[str, Any]:
    """The balance and a page of the ledger, newest first."""
    get_or_404(session, User, user_id, "User")
    where = WalletEntry.user_id == user_id
    total = session.scalar(select(func.count()).select_from(WalletEntry).where(where))
    rows = session.scalars(
        select(WalletEntry).where(where).order_by(WalletEntry.id.desc()).limit(page["limit"]).offset(page["offset"])
    ).all()
    return {
        "user_id": user_id,
        "balance_cents": balance(session, user_id),
        "items": [entry_view(row) for row in rows],
        "total": total,
        "limit": page["limit"],
        "offset": page["offset"],
    }


def entry_view(entry: WalletEntry) -> dict[str, Any]:
    return columns_of(entry)
