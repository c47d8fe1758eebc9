"""The outbox the bot reads: each fact (dedupe key) is stored once, listed until acknowledged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Notification, Plan, User, utcnow


def notify(session: Session, user_id: int, kind: str, dedupe_key: str, **payload: Any) -> bool:
    """Add a notification unless one with DEDUPE_KEY exists; True if added. Part of the caller's transaction."""
    return _add(session, Notification(user_id=user_id, kind=kind, dedupe_key=dedupe_key, payload=payload))


def plan_names(plan: Plan | None) -> dict[str, Any]:
    """A customer notification's plan: its name, and its Persian name (plan_fa) when it has one; the bot shows
    the one of the customer's language."""
    if plan is None:
        return {"plan": None}
    return {"plan": plan.name, **({"plan_fa": plan.name_fa} if plan.name_fa else {})}


def notify_admins(session: Session, kind: str, dedupe_key: str, **payload: Any) -> bool:
    """Like notify(), for the admin channel (audience "admins": the bot sends it to its admin chat)."""
    note = Notification(user_id=None, audience="admins", kind=kind, dedupe_key=dedupe_key, payload=payload)
    return _add(session, note)


def payment_decided(
    session: Session, payment: Any, reviewer: str | None, *, automatic: bool = False, banned: bool = False
) -> bool:
    """Tell the admins PAYMENT (just approved or rejected, by anyone: a button, a command, the API, the sweep,
    a ban) is decided, so the bot updates every review card it posted of it. REVIEWER is who decided, by name;
    AUTOMATIC the sweep's acceptance. Part of the caller's transaction."""
    return notify_admins(
        session,
        "payment_decided",
        f"payment_decided:payment-{payment.id}",
        payment_id=payment.id,
        status=payment.status,
        reviewer=reviewer,
        automatic=automatic,
        reason=payment.review_note,
        reason_code=payment.review_reason_code,
        banned=banned,
    )


class Notice(NamedTuple):
    user_id: int
    kind: str
    dedupe_key: str
    payload: dict[str, Any]


def notify_many(session: Session, notices: Sequence[Notice]) -> int:
    """notify() for each of NOTICES, in the caller's transaction; how many were added. The keys are looked up in
    batches and the new ones inserted in one flush; if a concurrent writer took one meanwhile, they go one by
    one after all (notify: that one is skipped)."""
    sent = existing_keys(session, [notice.dedupe_key for notice in notices])
    first: dict[str, Notice] = {}
    for notice in notices:
        if notice.dedupe_key not in sent:
            first.setdefault(notice.dedupe_key, notice)
    fresh = list(first.values())
    if not fresh:
        return 0
    try:
        with session.begin_nested():
            session.add_all(
                Notification(
                    user_id=notice.user_id, kind=notice.kind, dedupe_key=notice.dedupe_key, payload=notice.payload
                )
                for notice in fresh
            )
    except IntegrityError:
        return sum(notify(session, *notice[:3], **notice.payload) for notice in fresh)
    return len(fresh)


def existing_keys(session: Session, keys: Sequence[str], batch: int = 1000) -> set[str]:
    """The dedupe keys among KEYS that a notification already holds (notify() would add nothing for them)."""
    found: set[str] = set()
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        found.update(session.scalars(select(Notification.dedupe_key).where(Notification.dedupe_key.in_(chunk))))
    return found


def _add(session: Session, note: Notification) -> bool:
    if session.scalar(select(Notification.id).where(Notification.dedupe_key == note.dedupe_key)) is not None:
        return False
    try:
        with session.begin_nested():  # a concurrent writer of the same fact loses on the unique key, quietly
            session.add(note)
    except IntegrityError:
        return False
    return True


def pending(session: Session, limit: int) -> list[dict[str, Any]]:
    """Undelivered notifications, oldest first, with what the bot needs to address the user (none for
    the admins' ones)."""
    rows = session.execute(
        select(Notification, User.telegram_id, User.language)
        .outerjoin(User, User.id == Notification.user_id)
        .where(Notification.delivered_at.is_(None))
        .order_by(Notification.id)
        .limit(limit)
    ).all()
    return [
        {
            "id": note.id,
            "audience": note.audience,
            "user_id": note.user_id,
            "telegram_id": telegram_id,
            "language": language,
            "kind": note.kind,
            "payload": note.payload,
            "created_at": note.created_at,
        }
        for note, telegram_id, language in rows
    ]


def acknowledge(session: Session, ids: list[int]) -> int:
    """Mark IDS delivered; returns how many were still pending (acknowledging twice is harmless)."""
    count = session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.delivered_at.is_(None))
        .values(delivered_at=utcnow()),
        execution_options={"synchronize_session": False},
    ).rowcount
    session.commit()
    return count
