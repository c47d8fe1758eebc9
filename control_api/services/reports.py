"""Sales reports: the figures of a time window (GET /dashboard/sales) and the daily report the sweep
posts to the admin channel.

What counts where:
- **received**: money that came in, i.e. proofs approved in the window (by an admin or the auto-accept
  sweep), by purpose: purchases, renewals, extra data and top-ups. Spending from the balance is not
  received again (the top-up that filled it was).
- **sales by plan**: plans sold in the window, paid by an approved proof or from the balance, purchases
  and renewals apart. A balance renewal is counted under the plan the config has after it (the ledger
  row names the config, which now carries the plan it was renewed with).
- **trials converted**: customers who took a trial and made their first plan purchase in the window.
- **pending payments** and **nodes alerting** are as of now, not of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..config import Settings
from ..errors import InvalidInput
from ..models import Node, Notification, Payment, Plan, User, UserConfig, WalletEntry, utcnow
from . import notifications

MAX_WINDOW = timedelta(days=366)
PLAN_PURPOSES = ("purchase", "renewal")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window(start: datetime | None, end: datetime | None, now: datetime | None = None) -> Window:
    """[START, END): END defaults to NOW (the present), START to a day before END; refused when empty or over a year."""
    end = end or now or utcnow()
    start = start or end - timedelta(days=1)
    if start >= end:
        raise InvalidInput(
            "`from` must be before `to`.", code="invalid_window", details={"query": {"from": ["Must be before `to`."]}}
        )
    if end - start > MAX_WINDOW:
        raise InvalidInput(
            "A report covers at most 366 days.",
            code="invalid_window",
            details={"query": {"from": ["At most 366 days before `to`."]}},
        )
    return Window(start, end)


def sales_report(session: Session, span: Window) -> dict[str, Any]:
    received = _received(session, span)
    return {
        "start": span.start,
        "end": span.end,
        "received_cents": sum(row["amount_cents"] for row in received.values()),
        "received": received,
        "plans": _plans_sold(session, span),
        "rejected_payments": _count(
            session,
            select(func.count()).where(
                Payment.status == "rejected", Payment.reviewed_at >= span.start, Payment.reviewed_at < span.end
            ),
        ),
        "new_customers": _count(
            session, select(func.count()).where(User.created_at >= span.start, User.created_at < span.end)
        ),
        "trials_started": _count(
            session,
            select(func.count()).where(User.trial_used_at >= span.start, User.trial_used_at < span.end),
        ),
        "trials_converted": _trials_converted(session, span),
        "pending_payments": _count(session, select(func.count()).where(Payment.status == "pending")),
        "nodes_alerting": sorted(
            session.scalars(select(Node.name).where(Node.alert_since.is_not(None), Node.status != "disabled")).all()
        ),
    }


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)


def _approved_in(span: Window) -> list[Any]:
    return [Payment.status == "approved", Payment.reviewed_at >= span.start, Payment.reviewed_at < span.end]


def _received(session: Session, span: Window) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(Payment.purpose, func.count(), func.sum(Payment.amount_cents))
        .where(*_approved_in(span))
        .group_by(Payment.purpose)
    ).all()
    found = {purpose: {"count": count, "amount_cents": int(total or 0)} for purpose, count, total in rows}
    return {
        purpose: found.get(purpose, {"count": 0, "amount_cents": 0})
        for purpose in ("purchase", "renewal", "extra_data", "topup")
    }


def _plans_sold(session: Session, span: Window) -> list[dict[str, Any]]:
    """Per plan: purchases and renewals (by proof or balance) and what they were worth."""
    by_proof = session.execute(
        select(Payment.plan_id, Payment.purpose, func.count(), func.sum(Payment.amount_cents))
        .where(*_approved_in(span), Payment.purpose.in_(PLAN_PURPOSES))
        .group_by(Payment.plan_id, Payment.purpose)
    ).all()
    by_balance = session.execute(
        select(UserConfig.plan_id, WalletEntry.reason, func.count(), func.sum(-WalletEntry.amount_cents))
        .join(UserConfig, UserConfig.id == WalletEntry.config_id)
        .where(
            WalletEntry.reason.in_(PLAN_PURPOSES),
            WalletEntry.created_at >= span.start,
            WalletEntry.created_at < span.end,
        )
        .group_by(UserConfig.plan_id, WalletEntry.reason)
    ).all()
    plans: dict[int, dict[str, Any]] = {}
    for plan_id, purpose, count, total in [*by_proof, *by_balance]:
        if plan_id is None:
            continue
        row = plans.setdefault(plan_id, {"plan_id": plan_id, "purchases": 0, "renewals": 0, "amount_cents": 0})
        row["purchases" if purpose == "purchase" else "renewals"] += count
        row["amount_cents"] += int(total or 0)
    names = dict(session.execute(select(Plan.id, Plan.name).where(Plan.id.in_(plans))).all()) if plans else {}
    for plan_id, row in plans.items():
        row["name"] = names.get(plan_id, "")
    return sorted(plans.values(), key=lambda row: (-row["amount_cents"], row["plan_id"]))


def _trials_converted(session: Session, span: Window) -> int:
    """Trial users whose first plan purchase (approved proof or balance) falls in the window."""
    first_by_proof = (
        select(Payment.user_id.label("user_id"), Payment.reviewed_at.label("at"))
        .where(Payment.status == "approved", Payment.purpose == "purchase")
        .subquery()
    )
    first_by_balance = (
        select(WalletEntry.user_id.label("user_id"), WalletEntry.created_at.label("at"))
        .where(WalletEntry.reason == "purchase")
        .subquery()
    )
    purchases = select(first_by_proof.c.user_id, first_by_proof.c.at).union_all(
        select(first_by_balance.c.user_id, first_by_balance.c.at)
    )
    purchases_sq = purchases.subquery()
    firsts = (
        select(purchases_sq.c.user_id, func.min(purchases_sq.c.at).label("first_at"))
        .group_by(purchases_sq.c.user_id)
        .subquery()
    )
    return _count(
        session,
        select(func.count())
        .select_from(firsts)
        .join(User, User.id == firsts.c.user_id)
        .where(User.trial_used_at.is_not(None), firsts.c.first_at >= span.start, firsts.c.first_at < span.end),
    )


# --- the daily report --------------------------------------------------------------------------------------


def daily_report_due(settings: Settings, now: datetime) -> tuple[str, Window] | None:
    """(the shop's local date reported, its window) once the report hour has passed in the shop's time
    zone, for the day before; None before that hour or when reports are off."""
    if settings.daily_report_hour < 0:
        return None
    zone = ZoneInfo(settings.shop_timezone)
    local_now = now.astimezone(zone)
    if local_now.hour < settings.daily_report_hour:
        return None
    today = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Midnights come from the calendar date, not from subtracting 24 hours: a day with a DST change is
    # 23 or 25 hours long.
    yesterday = (today - timedelta(hours=12)).replace(hour=0)
    return yesterday.date().isoformat(), Window(yesterday.astimezone(UTC), today.astimezone(UTC))


def post_daily_report(session: Session, settings: Settings, now: datetime) -> bool:
    """Queue yesterday's report for the admin channel once (its dedupe key is the date); True if queued.
    Part of the caller's transaction."""
    due = daily_report_due(settings, now)
    if due is None:
        return False
    day, span = due
    key = f"daily_report:{day}"
    if session.scalar(select(Notification.id).where(Notification.dedupe_key == key)) is not None:
        return False
    report = sales_report(session, span)
    del report["start"], report["end"]
    payload = {**report, "day": day, "from": span.start.isoformat(), "to": span.end.isoformat()}
    return notifications.notify_admins(session, "daily_report", key, **payload)
