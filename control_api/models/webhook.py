"""Webhooks (issue 18): endpoints admins register, and the outbox of signed deliveries to them
(services/webhooks.py writes the rows in the transaction of the change; jobs/webhooks.py sends them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONDocument, UTCDateTime, enum_check, utcnow

WEBHOOK_EVENTS = (
    "payment.created",
    "payment.approved",
    "payment.rejected",
    "config.created",
    "config.suspended",
    "config.migrated",
    "node.alert_raised",
    "node.alert_cleared",
)
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class Webhook(Base):
    """An endpoint that receives the events it names, signed with its secret (HMAC-SHA256). The secret is a
    shared signing key, so it is stored as is (a hash could not sign); it is shown once, when created, and
    never again in an answer, a log or an audit row."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    # A list of WEBHOOK_EVENTS names (checked by the service; JSON keeps it portable across both engines).
    events: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the outbox row written with the change, then its delivery attempts.

    pending (next_attempt_at: when it is due) -> delivered | failed (attempts used up, or a refused target).
    The row's id is the X-Rayfleet-Delivery header: a receiver dedupes on it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(enum_check("status", DELIVERY_STATUSES), name="status"),
        CheckConstraint(enum_check("event", WEBHOOK_EVENTS), name="event"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    # Bounded, and never the secret or the receiver's body: an exception's class, or "HTTP 500".
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
