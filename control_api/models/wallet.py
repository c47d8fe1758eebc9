"""Customers' wallets: an append-only ledger. A user's balance is the sum of their entries, nothing else."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .audit import ACTOR_TYPES
from .base import Base, UTCDateTime, enum_check, utcnow

# Why money came in (amount > 0) or went out (amount <= 0; a free plan's purchase is recorded at 0).
CREDIT_REASONS = ("topup", "admin_credit", "referral")
DEBIT_REASONS = ("purchase", "renewal", "extra_data", "admin_debit")
WALLET_REASONS = CREDIT_REASONS + DEBIT_REASONS


class WalletEntry(Base):
    """One credit or debit, never updated or deleted: the ledger is the balance."""

    __tablename__ = "wallet_entries"
    __table_args__ = (
        CheckConstraint(enum_check("reason", WALLET_REASONS), name="reason"),
        CheckConstraint(enum_check("actor_type", ACTOR_TYPES), name="actor_type"),
        # The sign follows the reason, so a debit can never be booked as a credit (or the other way).
        CheckConstraint(f"(amount_cents > 0) = ({enum_check('reason', CREDIT_REASONS)})", name="amount_sign"),
        # A user's balance (the sum) and their newest entries first, paged.
        Index(None, "user_id", "id"),
        # A payment credits the wallet once: a retried approval cannot add a second row.
        Index(None, "payment_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # In the shop's smallest currency unit, like plans.price_cents: positive in, zero or negative out.
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(16))
    # The admin's words for an admin_credit / admin_debit; NULL otherwise.
    note: Mapped[str | None] = mapped_column(Text)
    # Who caused it (actors.Principal): kind, id as the audit log writes it ("tg:<id>" for a Telegram
    # admin), and name.
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(100))
    # The top-up payment it credits, or the config a purchase paid for.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    config_id: Mapped[int | None] = mapped_column(ForeignKey("user_configs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
