"""Payments: a temporary config at once, then approval (upgrade in place) or rejection (revoke, maybe ban).

A payment's purpose is "purchase" (a plan, as above) or "topup": money into the customer's wallet
(wallet.py), with no plan and no temporary config, never auto-accepted; approval books it in the
ledger once, rejection books nothing.

A purchase or a renewal may name a discount code (discounts.py): the amount must then be the discounted
price, the code's use is recorded with the payment in its transaction (under the code's row lock), a
rejection releases it and an approval keeps it; an order the code made free is never auto-accepted.

The state machine is pending -> approved | rejected, nothing else. Each transition is gated by one
conditional UPDATE (`... WHERE status = 'pending'`), so of two reviewers racing on PostgreSQL or
SQLite exactly one wins and the other gets 409 naming who decided.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import SYSTEM, Principal
from ..config import Settings
from ..errors import Conflict, DomainError, InvalidInput, NotFound
from ..kvstore import KeyValueStore
from ..models import EXTENSION_PURPOSES, Admin, Payment, Plan, User, UserConfig, columns_of, utcnow
from . import audit, discounts, notifications, proofs, renewals, wallet, webhooks
from .bans import apply_ban, ensure_not_banned, reviewer_columns
from .configs import new_config
from .lookup import get_or_404
from .placement import place_or_none
from .principals import acting_admin
from .revisions import Dispatch, bump, commit_and_dispatch, serving_nodes


def create_payment(
    session: Session,
    actor: Principal,
    settings: Settings,
    data: dict[str, Any],
    dispatch: Dispatch,
    store: KeyValueStore | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a pending payment and issue its temporary config (none for a top-up). Returns (its view with
    the config's, created).

    A retry with the same proof (the bot lost our answer) returns the first payment, not a second one.
    STORE counts refused discount codes (discounts.attempts); without it nothing is limited.
    """
    with discounts.attempts(store, settings, actor, data["user_id"], data.get("discount_code")):
        try:
            payment, created = _create_payment(session, actor, settings, data, dispatch)
        except DomainError:
            session.rollback()  # release the user's and the code's locks now; nothing was written
            raise
    return {**payment_view(session, payment), "config": renewals.extended_config_view(session, payment)}, created


def order_extension(
    session: Session,
    actor: Principal,
    settings: Settings,
    config_id: int,
    purpose: str,
    data: dict[str, Any],
    dispatch: Dispatch,
    store: KeyValueStore | None = None,
) -> tuple[dict[str, Any], bool]:
    """A renewal (DATA's plan_id) or extra data (data_mb) of CONFIG_ID paid with a proof: create_payment with
    its proof rules, the purpose's own (renewals.py)."""
    order = {**data, "purpose": purpose, "extends_config_id": config_id}
    if purpose == "extra_data":
        order["extra_data_mb"] = order.pop("data_mb")
    return create_payment(session, actor, settings, order, dispatch, store)


def _create_payment(
    session: Session, actor: Principal, settings: Settings, data: dict[str, Any], dispatch: Dispatch
) -> tuple[Payment, bool]:
    # The user's row lock serialises their submissions: the pending-payment limit holds under races, on
    # PostgreSQL and on the embedded SQLite alike (which ignores FOR UPDATE; see wallet.lock_user).
    user = wallet.lock_user(session, data["user_id"])
    ensure_not_banned(user)
    existing = _by_evidence(session, user.id, data)
    if existing is not None:
        return _same_submission(session, existing, data), False
    if session.scalar(select(Payment.id).where(Payment.evidence_unique_id == data["evidence_unique_id"])):
        raise _used_elsewhere()
    now = utcnow()
    payment = Payment(
        user_id=user.id,
        purpose=data.get("purpose", "purchase"),
        amount_cents=data["amount_cents"],
        evidence_file_id=data["evidence_file_id"],
        evidence_unique_id=data["evidence_unique_id"],
        # Only an admin decides what a top-up's proof is worth; anything else is accepted when nobody decides.
        auto_accept_at=None if data.get("purpose") == "topup" else now + timedelta(days=settings.auto_accept_days),
    )
    issue = {"purchase": _issue_purchase, "topup": _issue_topup}.get(payment.purpose, _issue_extension)
    touched, facts, discount = issue(session, settings, user, payment, data, now)
    if discount is not None and discount.free:
        payment.auto_accept_at = None  # nothing was paid: only an admin approves it
    stored_first = _store(session, payment, data)
    if stored_first is not None:
        return stored_first, False
    if discount is not None:
        discounts.redeem(session, discount, user.id, payment_id=payment.id)
        facts.update(discount_code=discount.code.code, amount_off_cents=discount.amount_off_cents)
    audit.record(session, actor, "payment.create", payment_id=payment.id, user_id=user.id, **facts)
    webhooks.emit(session, "payment.created", webhooks.payment_payload(payment))
    commit_and_dispatch(session, touched, dispatch)
    return payment, True


# (nodes to sync, bumped; facts for the audit row; the discount code claimed, if any)
Issued = tuple[list[int], dict[str, Any], discounts.Discount | None]


def _issue_purchase(
    session: Session, settings: Settings, user: User, payment: Payment, data: dict[str, Any], now: datetime
) -> Issued:
    """A plan's purchase: its temporary config at once (unplaced when no node has room)."""
    plan = get_or_404(session, Plan, data["plan_id"], "Plan")
    if not plan.is_active:
        raise Conflict("This plan is no longer sold.", code="plan_not_for_sale")
    discount = discounts.claim(session, data.get("discount_code"), user.id, plan, now)
    renewals.ensure_amount(data["amount_cents"], plan.price_cents, "the plan's price", discount)
    _ensure_room_in_review(session, settings, user)
    # No node free right now (a race with the catalogue's `available`): the money is recorded anyway
    # and the temporary config waits unplaced; the sweep places it and tells the customer.
    node = place_or_none(session, plan)
    temporary_mb = max(1, math.ceil(plan.data_limit_mb * settings.temporary_data_percent / 100))
    config = new_config(
        session, user, node, "temporary", temporary_mb, settings.temporary_days, plan=plan, protocol=data["protocol"]
    )
    payment.plan_id, payment.config_id = plan.id, config.id
    facts = {"plan_id": plan.id, "config_id": config.id, "placed": node is not None}
    return bump(session, [config.node_id]), facts, discount


def _issue_topup(
    session: Session, settings: Settings, user: User, payment: Payment, data: dict[str, Any], now: datetime
) -> Issued:
    """A pending top-up: no plan, no config, no auto-acceptance (an admin decides what the proof is worth)."""
    if data.get("plan_id") is not None:
        raise InvalidInput("A top-up buys no plan.", details={"json": {"plan_id": ["Not allowed for a top-up."]}})
    if data.get("discount_code") is not None:
        raise InvalidInput(
            "A top-up takes no discount code.", details={"json": {"discount_code": ["Not allowed for a top-up."]}}
        )
    if data["amount_cents"] < 1:
        raise InvalidInput(
            "A top-up needs a positive amount.", details={"json": {"amount_cents": ["Must be at least 1."]}}
        )
    _ensure_room_in_review(session, settings, user)
    return [], {"purpose": "topup", "amount_cents": payment.amount_cents}, None


def _issue_extension(
    session: Session, settings: Settings, user: User, payment: Payment, data: dict[str, Any], now: datetime
) -> Issued:
    """A renewal or extra data for one of the customer's paid configs (renewals.py); a renewal keeps the
    config served while in review (its temporary extension)."""
    config, plan, _price, discount = renewals.check_order(session, settings, user, data, now)
    _ensure_room_in_review(session, settings, user)
    payment.plan_id, payment.extends_config_id = data.get("plan_id"), config.id
    payment.extra_data_mb = data.get("extra_data_mb")
    touched = [] if plan is None else renewals.extend_temporarily(session, settings, payment, config, plan, now)
    facts = {"purpose": payment.purpose, "extends_config_id": config.id, "temporary": payment.previous_status}
    return touched, {**facts, "plan_id": payment.plan_id, "extra_data_mb": payment.extra_data_mb}, discount


def _ensure_room_in_review(session: Session, settings: Settings, user: User) -> None:
    """The customer's payments in review (of every purpose) are capped."""
    waiting = session.scalars(
        select(Payment.id).where(Payment.user_id == user.id, Payment.status == "pending").order_by(Payment.id)
    ).all()
    if len(waiting) >= settings.max_pending_payments_per_user:
        raise Conflict(
            f"{len(waiting)} payment(s) of this customer are waiting for review; wait for the decision first.",
            code="too_many_pending_payments",
            details={"pending_payment_ids": list(waiting)},
        )


def _used_elsewhere() -> Conflict:
    return Conflict("This receipt was already sent for another customer's order.", code="evidence_used_elsewhere")


def _store(session: Session, payment: Payment, data: dict[str, Any]) -> Payment | None:
    """Flush the new PAYMENT. When the same proof arrived twice at once and the other request stored it
    first, roll back and return that payment (a retry); a proof stored for another customer is refused."""
    session.add(payment)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = _by_evidence(session, data["user_id"], data)
        if existing is None:
            raise _used_elsewhere() from None
        return _same_submission(session, existing, data)
    return None


def _by_evidence(session: Session, user_id: int, data: dict[str, Any]) -> Payment | None:
    """This user's earlier payment with the same proof (the same file, or the same Telegram file id)."""
    return session.scalar(
        select(Payment)
        .where(
            Payment.user_id == user_id,
            or_(
                Payment.evidence_unique_id == data["evidence_unique_id"],
                Payment.evidence_file_id == data["evidence_file_id"],
            ),
        )
        .order_by(Payment.id)
        .limit(1)
    )


def _same_submission(session: Session, payment: Payment, data: dict[str, Any]) -> Payment:
    applied = discounts.applied_views(session, [payment.id]).get(payment.id)
    stored = (payment.purpose, payment.plan_id, payment.extends_config_id, payment.extra_data_mb, payment.amount_cents)
    code = data.get("discount_code")
    same = (*stored, applied and applied["code"]) == (
        data.get("purpose", "purchase"),
        data.get("plan_id"),
        data.get("extends_config_id"),
        data.get("extra_data_mb"),
        data["amount_cents"],
        code and discounts.normalize(code),
    )
    if not same:
        raise Conflict("This proof was already sent with another payment.", code="evidence_reused")
    return payment


def _claim(session: Session, payment_id: int, status: str, reviewer: Principal | None, now: datetime) -> Payment:
    """Move PAYMENT_ID from pending to STATUS, or raise 409 saying who got there first."""
    values: dict[str, Any] = {"status": status, "reviewed_at": now, **reviewer_columns(reviewer)}
    claimed = session.execute(
        update(Payment).where(Payment.id == payment_id, Payment.status == "pending").values(**values),
        execution_options={"synchronize_session": False},
    ).rowcount
    payment = session.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise NotFound(f"Payment {payment_id} does not exist.")
    if claimed != 1:
        by = reviewer_name(session, payment)
        session.rollback()
        raise Conflict(
            f"Payment {payment_id} is already {payment.status}" + (f" by {by}." if by else "."),
            code="already_reviewed",
            details={"status": payment.status, "reviewed_by": by},
        )
    return payment


def reviewer_name(session: Session, payment: Payment) -> str | None:
    if payment.reviewed_by is not None:
        admin = session.get(Admin, payment.reviewed_by)
        return admin.username if admin else None
    if payment.reviewed_by_user_id is not None:
        user = session.get(User, payment.reviewed_by_user_id)
        return (user.username or str(user.telegram_id)) if user else None
    return "the automatic acceptance" if payment.status == "approved" else None


def approve(
    session: Session,
    reviewer: Principal | None,
    payment_id: int,
    dispatch: Dispatch,
    now: datetime | None = None,
    *,
    referral_percent: int,
) -> Payment:
    """Approve: the temporary config becomes the full plan in place (same UUID, same link); a renewal or
    extra data extends its config in place (renewals.py); a top-up is credited to the wallet. A purchase
    that is the customer's first paid one credits their referrer REFERRAL_PERCENT of it, in this
    transaction (wallet.credit_referrer; a renewal or extra data never does: it is not a first purchase).

    REVIEWER None is the sweep's auto-acceptance (reviewed_by stays empty).
    """
    now = now or utcnow()
    payment = _claim(session, payment_id, "approved", reviewer, now)
    if payment.purpose == "topup":
        return _approve_topup(session, reviewer, payment)
    if payment.purpose in EXTENSION_PURPOSES:
        config, touched = renewals.approve_extension(session, payment, now)
    else:
        config, touched = _upgrade_temporary(session, payment, now)
        wallet.credit_referrer(
            session,
            reviewer or SYSTEM,
            referral_percent,
            payment.user_id,
            payment.amount_cents,
            payment_id=payment.id,
            config_id=config.id,
            now=now,
        )
    audit.record(
        session,
        reviewer or SYSTEM,
        "payment.approve",
        payment_id=payment.id,
        config_id=config.id,
        automatic=reviewer is None,
    )
    by = None if reviewer is None else reviewer_name(session, payment)  # the sweep: worded by the bot
    notifications.payment_decided(session, payment, by, automatic=reviewer is None)
    webhooks.emit(session, "payment.approved", webhooks.payment_payload(payment, automatic=reviewer is None))
    commit_and_dispatch(session, touched, dispatch)
    return payment


def _upgrade_temporary(session: Session, payment: Payment, now: datetime) -> tuple[UserConfig, list[int]]:
    """A purchase's temporary config becomes the full plan; returns it and the nodes to sync (bumped)."""
    plan = session.get_one(Plan, payment.plan_id)
    config = session.get(UserConfig, payment.config_id, with_for_update=True) if payment.config_id else None
    touched: list[int] = []
    if config is None or config.status == "revoked":
        # The temporary config is gone (deleted by an admin): the customer still gets what they paid for,
        # placed now or, with no node free, by the sweep.
        user = session.get_one(User, payment.user_id)
        node = place_or_none(session, plan)
        config = new_config(session, user, node, "full", plan.data_limit_mb, plan.duration_days, plan)
        payment.config_id = config.id
        touched = bump(session, [config.node_id])
    else:
        if config.status in ("suspended", "expired"):
            # It had left its node (temporary quota or time used up): it comes back with the full plan.
            config.status, config.suspend_reason = "pending", None
            touched = bump(session, serving_nodes([config]))
        config.kind = "full"
        config.data_limit_mb = plan.data_limit_mb
    config.expires_at = now + timedelta(days=plan.duration_days)
    notifications.notify(
        session,
        payment.user_id,
        "approved",
        f"approved:payment-{payment.id}",
        payment_id=payment.id,
        config_id=config.id,
        data_limit_mb=plan.data_limit_mb,
        expires_at=config.expires_at.isoformat(),
        **notifications.plan_names(plan),
    )
    return config, touched


def _approve_topup(session: Session, reviewer: Principal | None, payment: Payment) -> Payment:
    """The claimed top-up is booked in the wallet: one ledger row, in the claim's transaction."""
    assert reviewer is not None  # a top-up has no auto_accept_at (a CHECK), so the sweep never approves one
    entry = wallet.credit_topup(session, reviewer, payment)
    notifications.notify(
        session,
        payment.user_id,
        "wallet_credited",
        f"wallet_credited:payment-{payment.id}",
        payment_id=payment.id,
        amount_cents=payment.amount_cents,
        reason="topup",
    )
    audit.record(
        session, reviewer, "payment.approve", payment_id=payment.id, entry_id=entry.id, amount_cents=entry.amount_cents
    )
    notifications.payment_decided(session, payment, reviewer_name(session, payment))
    webhooks.emit(session, "payment.approved", webhooks.payment_payload(payment, automatic=False))
    session.commit()
    return payment


def reject(
    session: Session,
    reviewer: Principal,
    payment_id: int,
    reason: str | None,
    ban: bool,
    dispatch: Dispatch,
    reason_code: str | None = None,
) -> Payment:
    """Reject: the temporary config is revoked (the next sync removes it), or a renewal's temporary extension
    undone (renewals.undo_temporary); optionally ban the user, which takes away everything else they are
    served too (bans.apply_ban). REASON is told as typed, REASON_CODE (REJECT_REASON_CODES) in the customer's
    language; a ban needs one of them (a code alone is the ban's reason)."""
    if ban and not (reason or reason_code):
        raise InvalidInput(
            "A ban needs a reason.", details={"json": {"reason": ["Required when ban is true (or reason_code)."]}}
        )
    now = utcnow()
    payment = _claim(session, payment_id, "rejected", reviewer, now)
    payment.review_note, payment.review_reason_code = reason, reason_code
    discounts.release(session, payment.id, now)
    touched = renewals.undo_temporary(session, payment, now)
    config = session.get(UserConfig, payment.config_id, with_for_update=True) if payment.config_id else None
    if config is not None and config.status != "revoked":
        was_served = config.status in ("pending", "active")
        config.status, config.suspend_reason = "revoked", None
        if was_served:
            touched += bump(session, serving_nodes([config]))
    user = session.scalar(select(User).where(User.id == payment.user_id).with_for_update())
    assert user is not None  # payments.user_id is a foreign key
    if ban:
        touched += apply_ban(session, reviewer, user, reason or reason_code or "", now)
    notifications.notify(
        session,
        user.id,
        "rejected",
        f"rejected:payment-{payment.id}",
        payment_id=payment.id,
        reason=reason,
        banned=ban,
        **({"reason_code": reason_code} if reason_code else {}),  # a quick reason, worded by the bot
    )
    audit.record(session, reviewer, "payment.reject", payment_id=payment.id, banned=ban, reason_code=reason_code)
    notifications.payment_decided(session, payment, reviewer_name(session, payment), banned=ban)
    webhooks.emit(session, "payment.rejected", webhooks.payment_payload(payment, banned=ban))
    commit_and_dispatch(session, touched, dispatch)
    return payment


def approve_payment(
    session: Session,
    caller: Principal,
    settings: Settings,
    payment_id: int,
    acting_telegram_id: int | None,
    dispatch: Dispatch,
) -> dict[str, Any]:
    """An admin's (or the bot's, for a Telegram admin) approval; returns the payment's view."""
    reviewer = acting_admin(session, caller, acting_telegram_id)
    payment = approve(session, reviewer, payment_id, dispatch, referral_percent=settings.referral_percent)
    return payment_view(session, payment)


def reject_payment(
    session: Session, caller: Principal, payment_id: int, decision: dict[str, Any], dispatch: Dispatch
) -> dict[str, Any]:
    """An admin's (or the bot's, for a Telegram admin) rejection; returns the payment's view."""
    reviewer = acting_admin(session, caller, decision.get("acting_telegram_id"))
    payment = reject(
        session,
        reviewer,
        payment_id,
        decision.get("reason"),
        decision["ban"],
        dispatch,
        reason_code=decision.get("reason_code"),
    )
    return payment_view(session, payment)


def get_payment(session: Session, payment_id: int) -> dict[str, Any]:
    return payment_view(session, get_or_404(session, Payment, payment_id, "Payment"))


def list_payments(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    query = select(Payment)
    if filters.get("status"):
        query = query.where(Payment.status == filters["status"])
    if filters.get("purpose"):
        query = query.where(Payment.purpose == filters["purpose"])
    if filters.get("user_id"):
        query = query.where(Payment.user_id == filters["user_id"])
    rows = session.scalars(query.order_by(Payment.id).limit(filters["limit"] + 1).offset(filters["offset"])).all()
    more = len(rows) > filters["limit"]
    page = rows[: filters["limit"]]
    # One query per related table; payment_view's session.get then finds them in the identity map.
    for model, ids in (
        (User, {p.user_id for p in page} | {p.reviewed_by_user_id for p in page if p.reviewed_by_user_id}),
        (Plan, {p.plan_id for p in page if p.plan_id}),
        (Admin, {p.reviewed_by for p in page if p.reviewed_by}),
    ):
        session.scalars(select(model).where(model.id.in_(ids))).all()
    applied = discounts.applied_views(session, [p.id for p in page])
    duplicate_of = proofs.duplicates(session, page)
    return {"items": [payment_view(session, p, applied, duplicate_of) for p in page], "more": more}


def attach_proof(
    session: Session, actor: Principal, settings: Settings, payment_id: int, user_id: int, data: bytes
) -> dict[str, Any]:
    """The bot's upload of a pending payment's proof file for its customer USER_ID (proofs.attach); its view."""
    return payment_view(session, proofs.attach(session, actor, settings, payment_id, user_id, data))


def payment_view(
    session: Session,
    payment: Payment,
    applied: dict[int, Any] | None = None,
    duplicate_of: dict[int, list[int]] | None = None,
) -> dict[str, Any]:
    """PAYMENT with its customer, plan, the discount code it used and what its proof file is (APPLIED and
    DUPLICATE_OF: the codes and same-proof payments of a page of payments, looked up at once by list_payments).
    Where the proof file is stored is never shown."""
    if applied is None:
        applied = discounts.applied_views(session, [payment.id])
    if duplicate_of is None:
        duplicate_of = proofs.duplicates(session, [payment])
    user = session.get_one(User, payment.user_id)
    plan = session.get_one(Plan, payment.plan_id) if payment.plan_id is not None else None
    columns = {key: value for key, value in columns_of(payment).items() if not key.startswith("proof_")}
    return {
        **columns,
        **proofs.proof_view(payment, duplicate_of),
        "reviewer": reviewer_name(session, payment),
        "user": {"id": user.id, "telegram_id": user.telegram_id, "username": user.username},
        "plan": None if plan is None else {"id": plan.id, "name": plan.name, "price_cents": plan.price_cents},
        "discount": applied.get(payment.id),
    }
