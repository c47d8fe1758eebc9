"""Auto-renewal attempts: what became of one config's renewal from the balance for one period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow

AUTO_RENEWAL_OUTCOMES = ("renewed", "failed")


class AutoRenewal(Base):
    """One row per config and period (the expiry the renewal was to follow): the period is renewed at most
    once, whatever sweeps run at once (the unique key). A failed attempt is retried while the period is in
    the window (a top-up may come meanwhile) and counted here; a renewed one never again."""

    __tablename__ = "auto_renewals"
    __table_args__ = (
        CheckConstraint(enum_check("outcome", AUTO_RENEWAL_OUTCOMES), name="outcome"),
        CheckConstraint("(outcome = 'failed') = (reason IS NOT NULL)", name="reason_of_failure"),
        CheckConstraint("attempts >= 1", name="attempts_positive"),
        Index(None, "config_id", "period_expires_at", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("user_configs.id", ondelete="CASCADE"))
    # The config's expiry when the renewal was attempted: names the period.
    period_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    # A failure's refusal code (insufficient_balance, plan_not_for_sale, user_banned, ...); NULL once renewed.
    reason: Mapped[str | None] = mapped_column(String(32))
    # What the plan cost at the last attempt, and the debit that paid for it once renewed.
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_entries.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
