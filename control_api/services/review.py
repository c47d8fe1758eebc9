"""What an admin needs to review a payment fast and safely: the customer's history at a glance, and the
review events of a decision the bot holds before it is made (held, then executed or undone).

The decisions themselves are payments.approve and payments.reject; this module decides nothing. A hold
lives in the bot (the API keeps no half-made decision: an approval that books money, extends a config and
credits a referrer is not taken back here); the API audits each hold and each undo under the admin who
did it, so the audit log tells the whole story: held, undone (nothing happened), or held then approved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict
from ..models import Payment, UserConfig
from . import audit, discounts, proofs
from .lookup import get_or_404
from .payments import payment_view, reviewer_name
from .principals import acting_admin
from .users import get_user

# An event's action in the audit log.
EVENT_ACTIONS = {"held": "payment.review_held", "undone": "payment.review_undone"}


def customer_history(session: Session, user_id: int) -> dict[str, Any]:
    """USER_ID's record as a reviewer sees it: since when, the trial, payments by status and the money
    approved, configs live now, and a ban."""
    user = get_user(session, user_id)
    counts = dict(
        session.execute(
            select(Payment.status, func.count()).where(Payment.user_id == user.id).group_by(Payment.status)
        ).all()
    )
    approved_cents = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.user_id == user.id, Payment.status == "approved"
        )
    )
    active = session.scalar(
        select(func.count()).select_from(UserConfig).where(UserConfig.user_id == user.id, UserConfig.status == "active")
    )
    return {
        "user_id": user.id,
        "telegram_id": user.telegram_id,
        "username": user.username,
        "language": user.language,
        "created_at": user.created_at,
        "trial_used_at": user.trial_used_at,
        "payments": {status: int(counts.get(status, 0)) for status in ("approved", "rejected", "pending")},
        "approved_cents": int(approved_cents or 0),
        "active_configs": int(active or 0),
        "is_banned": user.is_banned,
        "ban_reason": user.ban_reason,
    }


def record_review_event(session: Session, caller: Principal, payment_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Audit a held decision (DATA's event "held": the payment must still be pending, else 409 naming who
    decided) or its undo ("undone": nothing was decided). Changes nothing else."""
    admin = acting_admin(session, caller, data.get("acting_telegram_id"))
    payment = get_or_404(session, Payment, payment_id, "Payment")
    event = data["event"]
    if event == "held" and payment.status != "pending":
        by = reviewer_name(session, payment)
        raise Conflict(
            f"Payment {payment_id} is already {payment.status}" + (f" by {by}." if by else "."),
            code="already_reviewed",
            details={"status": payment.status, "reviewed_by": by},
        )
    facts = {key: data[key] for key in ("decision", "ban", "reason_code") if data.get(key) is not None}
    audit.record(session, admin, EVENT_ACTIONS[event], payment_id=payment.id, **facts)
    session.commit()
    return {"payment_id": payment.id, "event": event, "status": payment.status, "actor": admin.name, **facts}


def review_queue(session: Session, pending_limit: int = 100, decided_limit: int = 20) -> dict[str, Any]:
    """The console's payments queue: pending payments oldest first, then the most recently decided ones, each
    as its API view (payments.payment_view: plan, customer, proof_duplicate_of) with its customer's history
    (customer_history, read once per customer)."""
    pending = session.scalars(
        select(Payment).where(Payment.status == "pending").order_by(Payment.created_at, Payment.id).limit(pending_limit)
    ).all()
    decided = session.scalars(
        select(Payment)
        .where(Payment.status != "pending")
        .order_by(func.coalesce(Payment.reviewed_at, Payment.created_at).desc(), Payment.id.desc())
        .limit(decided_limit)
    ).all()
    rows = [*pending, *decided]
    duplicate_of = proofs.duplicates(session, rows)
    applied = discounts.applied_views(session, [p.id for p in rows])
    histories = {user_id: customer_history(session, user_id) for user_id in {p.user_id for p in rows}}
    views = [payment_view(session, p, applied, duplicate_of) for p in rows]
    for view in views:
        view["history"] = histories[view["user"]["id"]]
    return {"pending": views[: len(pending)], "decided": views[len(pending) :]}


def decisions(session: Session, payment_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Where each of PAYMENT_IDS stands now (status and who decided), for pages that show them to update."""
    payments = session.scalars(select(Payment).where(Payment.id.in_(payment_ids))).all()
    return {p.id: {"status": p.status, "reviewer": reviewer_name(session, p)} for p in payments}
