"""Discount codes: what a code takes off a plan's price, for whom and how often; applied at checkout.

- **A code** is 4 to 32 letters, digits, '-' or '_', typed in any case (stored upper-case, unique). It takes
  a percent of the price off, the amount off rounded down to the shop's smallest unit (the customer pays the
  rest, rounded up: 15 % of 999 is 149 off, 850 to pay), or a fixed amount off (at most the whole price).
  It applies to one plan or to every plan, when that plan is bought (POST /payments, or from the balance)
  or renews a config (POST /configs/{id}/renew, or from the balance); never to a top-up or extra data.
- **Refusals** (409), checked in this order: discount_unknown (no such code, or deactivated: the same
  answer), discount_expired, discount_not_for_this_plan, discount_already_used_by_you (the per-customer
  limit), discount_used_up (the total limit).
- **Uses** are the code's redemptions that were not released. A use is taken in the transaction that
  records the payment (or debits the balance), under the code's row lock (claim), so of customers racing
  for the last use exactly one gets it. A rejected payment (an admin's rejection, or a ban) releases its
  use, so the customer may use the code again; an approval (an admin's, or the sweep's automatic one)
  keeps it. A quote reserves nothing.
- **A free order** (the code takes the whole price off) is never granted without an admin: its payment
  has no automatic acceptance (the sweep never approves it; an admin does), and a purchase from the
  balance, which has no review, refuses it (free_order_needs_review). A leaked 100 % code is therefore
  worth, to an abuser, what a fake receipt is: a temporary config until an admin says no.
- **Guessing**: every refused code counts against the customer and against the caller (the bot's
  credentials); past DISCOUNT_CODE_FAILURES_PER_USER or DISCOUNT_CODE_FAILURES_PER_CALLER, every code is
  refused with 429 until the window ends (attempts), so a leaked bot token tries a few hundred codes a
  day, not millions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import Conflict, RateLimited
from ..kvstore import KeyValueStore
from ..models import DiscountCode, DiscountRedemption, Plan, User, columns_of, utcnow
from . import audit
from .lookup import get_or_404


class CodeRefused(Conflict):
    """A code that does not apply to this order; attempts() counts it."""


@dataclass(frozen=True)
class Discount:
    """A code applied to a price."""

    code: DiscountCode
    price_cents: int
    amount_off_cents: int

    @property
    def amount_cents(self) -> int:
        """What the customer pays."""
        return self.price_cents - self.amount_off_cents

    @property
    def free(self) -> bool:
        """The code took the whole price off (so an admin must approve the order)."""
        return self.amount_off_cents > 0 and self.amount_cents == 0


def normalize(text: str) -> str:
    return text.strip().upper()


def amount_off(code: DiscountCode, price_cents: int) -> int:
    """What CODE takes off PRICE_CENTS: a percent rounded down, or the fixed amount, never more than the price."""
    if code.percent_off is not None:
        return price_cents * code.percent_off // 100
    return min(code.amount_off_cents or 0, price_cents)


def to_pay(price_cents: int, discount: Discount | None) -> int:
    return price_cents if discount is None else discount.amount_cents


def _uses(session: Session, code_id: int, user_id: int | None = None) -> int:
    query = (
        select(func.count())
        .select_from(DiscountRedemption)
        .where(DiscountRedemption.code_id == code_id, DiscountRedemption.released_at.is_(None))
    )
    if user_id is not None:
        query = query.where(DiscountRedemption.user_id == user_id)
    return int(session.scalar(query) or 0)


def judge(session: Session, code: DiscountCode | None, user_id: int, plan: Plan, now: datetime) -> Discount:
    """CODE applied to PLAN for USER_ID at NOW, or the refusal (CodeRefused)."""
    if code is None or not code.is_active:
        raise CodeRefused("This discount code is not valid.", code="discount_unknown")
    if code.expires_at is not None and code.expires_at <= now:
        raise CodeRefused("This discount code has expired.", code="discount_expired")
    if code.plan_id is not None and code.plan_id != plan.id:
        raise CodeRefused("This discount code is not for this plan.", code="discount_not_for_this_plan")
    if code.max_uses_per_user is not None and _uses(session, code.id, user_id) >= code.max_uses_per_user:
        raise CodeRefused("This customer has already used this discount code.", code="discount_already_used_by_you")
    if code.max_uses is not None and _uses(session, code.id) >= code.max_uses:
        raise CodeRefused("This discount code has been used up.", code="discount_used_up")
    return Discount(code, plan.price_cents, amount_off(code, plan.price_cents))


def _find(session: Session, text: str, lock: bool) -> DiscountCode | None:
    """The code TEXT names (any case), locked until the transaction ends when LOCK is true.

    The lock is a no-op UPDATE, as in wallet.lock_user: a row lock on PostgreSQL, the database's write
    lock on SQLite (which ignores SELECT ... FOR UPDATE); either way the uses counted after it cannot be
    overtaken by another redemption of the same code."""
    normalized = normalize(text)
    where = DiscountCode.code == normalized
    if lock:
        session.execute(
            update(DiscountCode).where(where).values(id=DiscountCode.id),
            execution_options={"synchronize_session": False},
        )
    return session.scalar(select(DiscountCode).where(where).execution_options(populate_existing=True))


def claim(session: Session, text: str | None, user_id: int, plan: Plan, now: datetime) -> Discount | None:
    """The code TEXT applied to an order of PLAN, its row locked for the rest of the transaction (redeem()
    records the use in it); None without a code. Call after the order's own checks, before its amount check."""
    if text is None:
        return None
    return judge(session, _find(session, text, lock=True), user_id, plan, now)


def ensure_reviewed_if_free(discount: Discount | None) -> None:
    """An order a code made free needs an admin: refused where nobody reviews (a purchase from the balance)."""
    if discount is not None and discount.free:
        raise Conflict(
            "This code makes the order free; a free order is approved by an admin: send it as a payment for "
            "review (POST /payments or /configs/{id}/renew) instead.",
            code="free_order_needs_review",
        )


def redeem(
    session: Session,
    discount: Discount,
    user_id: int,
    *,
    payment_id: int | None = None,
    wallet_entry_id: int | None = None,
) -> DiscountRedemption:
    """Record the use of a claimed code in the caller's transaction (flushed)."""
    row = DiscountRedemption(
        code_id=discount.code.id,
        user_id=user_id,
        payment_id=payment_id,
        wallet_entry_id=wallet_entry_id,
        price_cents=discount.price_cents,
        amount_off_cents=discount.amount_off_cents,
    )
    session.add(row)
    session.flush()
    return row


def release(session: Session, payment_id: int, now: datetime) -> None:
    """A rejected payment's use no longer counts (the customer may use the code again)."""
    session.execute(
        update(DiscountRedemption)
        .where(DiscountRedemption.payment_id == payment_id, DiscountRedemption.released_at.is_(None))
        .values(released_at=now),
        execution_options={"synchronize_session": False},
    )


@contextmanager
def attempts(
    store: KeyValueStore | None, settings: Settings, actor: Principal, user_id: int, text: str | None
) -> Iterator[None]:
    """Around an order or a quote that names code TEXT: refuse at once (429) while the customer or the caller
    is over their limit of refused codes, and count a refusal (CodeRefused) against both. Without a STORE
    (internal callers) or a code, nothing is limited."""
    if store is None or text is None:
        yield
        return
    limits = (
        (f"rayfleet:discount:fail:user:{user_id}", settings.discount_code_failures_per_user),
        (f"rayfleet:discount:fail:caller:{actor.kind}:{actor.actor_id}", settings.discount_code_failures_per_caller),
    )
    for key, (allowed, _window) in limits:
        failures, seconds_left = store.peek(key)
        if failures >= allowed:
            raise RateLimited("Too many discount codes were refused; try again later.", retry_after=seconds_left)
    try:
        yield
    except CodeRefused:
        for key, (_allowed, window) in limits:
            store.hit(key, window)
        raise


# --- the quote shown before paying ------------------------------------------------------------------------


def quote(
    session: Session, store: KeyValueStore | None, settings: Settings, actor: Principal, data: dict[str, Any]
) -> dict[str, Any]:
    """What DATA's code makes of its plan's price for its customer, or the refusal; reserves nothing."""
    with attempts(store, settings, actor, data["user_id"], data["code"]):
        get_or_404(session, User, data["user_id"], "User")
        plan = get_or_404(session, Plan, data["plan_id"], "Plan")
        if not plan.is_active:
            raise Conflict("This plan is no longer sold.", code="plan_not_for_sale")
        discount = judge(session, _find(session, data["code"], lock=False), data["user_id"], plan, utcnow())
    code = discount.code
    return {
        "code": code.code,
        "plan_id": plan.id,
        "price_cents": discount.price_cents,
        "percent_off": code.percent_off,
        "amount_off_cents": discount.amount_off_cents,
        "amount_cents": discount.amount_cents,
        "needs_review": discount.free,
        "expires_at": code.expires_at,
    }


def applied_views(session: Session, payment_ids: list[int] | None = None, entry_id: int | None = None) -> dict:
    """The code each of PAYMENT_IDS used (by payment id), or the one ledger row ENTRY_ID's purchase used."""
    column = DiscountRedemption.payment_id if entry_id is None else DiscountRedemption.wallet_entry_id
    wanted = payment_ids if entry_id is None else [entry_id]
    if not wanted:
        return {}
    rows = session.execute(
        select(column, DiscountCode.code, DiscountRedemption)
        .join(DiscountCode, DiscountCode.id == DiscountRedemption.code_id)
        .where(column.in_(wanted))
    ).all()
    return {
        key: {
            "code": code,
            "price_cents": row.price_cents,
            "amount_off_cents": row.amount_off_cents,
            "released_at": row.released_at,
        }
        for key, code, row in rows
    }


# --- the admins' catalogue of codes -----------------------------------------------------------------------


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """DATA for the audit log (JSON: times as text)."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in data.items()}


def _taken(code: str) -> Conflict:
    return Conflict(f"The discount code {code} already exists.", code="discount_code_taken")


def create_code(session: Session, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    data = {**data, "code": normalize(data["code"])}
    if data.get("plan_id") is not None:
        get_or_404(session, Plan, data["plan_id"], "Plan")
    if session.scalar(select(DiscountCode.id).where(DiscountCode.code == data["code"])) is not None:
        raise _taken(data["code"])
    row = DiscountCode(**data)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # created by another admin meanwhile
        session.rollback()
        raise _taken(data["code"]) from None
    audit.record(session, actor, "discount_code.create", code_id=row.id, fields=_fields(data))
    session.commit()
    return code_view(session, row)


def update_code(session: Session, actor: Principal, code_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Change a code's plan, expiry, limits or active flag (its text and discount stay: a new discount is a
    new code). Uses already taken stay; a lower limit only refuses later ones."""
    row = get_or_404(session, DiscountCode, code_id, "Discount code")
    changes = {field: value for field, value in changes.items() if getattr(row, field) != value}
    if not changes:
        return code_view(session, row)
    if changes.get("plan_id") is not None:
        get_or_404(session, Plan, changes["plan_id"], "Plan")
    for field, value in changes.items():
        setattr(row, field, value)
    audit.record(session, actor, "discount_code.update", code_id=code_id, fields=_fields(changes))
    session.commit()
    return code_view(session, row)


def delete_code(session: Session, actor: Principal, code_id: int) -> None:
    row = get_or_404(session, DiscountCode, code_id, "Discount code")
    if session.scalar(select(exists().where(DiscountRedemption.code_id == code_id))):
        raise Conflict(
            "This code was used; deactivate it with PATCH is_active=false instead.", code="discount_code_in_use"
        )
    session.delete(row)
    audit.record(session, actor, "discount_code.delete", code_id=code_id, code=row.code)
    session.commit()


def get_code(session: Session, code_id: int) -> dict[str, Any]:
    return code_view(session, get_or_404(session, DiscountCode, code_id, "Discount code"))


def list_codes(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    query = select(DiscountCode)
    if "is_active" in filters:
        query = query.where(DiscountCode.is_active.is_(filters["is_active"]))
    if "plan_id" in filters:
        query = query.where(DiscountCode.plan_id == filters["plan_id"])
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(DiscountCode.id).limit(filters["limit"]).offset(filters["offset"])).all()
    uses = dict(
        session.execute(
            select(DiscountRedemption.code_id, func.count())
            .where(DiscountRedemption.code_id.in_([row.id for row in rows]), DiscountRedemption.released_at.is_(None))
            .group_by(DiscountRedemption.code_id)
        ).all()
    )
    return {
        "items": [{**columns_of(row), "uses": uses.get(row.id, 0)} for row in rows],
        "total": total,
        "limit": filters["limit"],
        "offset": filters["offset"],
    }


def code_view(session: Session, row: DiscountCode) -> dict[str, Any]:
    return {**columns_of(row), "uses": _uses(session, row.id)}
