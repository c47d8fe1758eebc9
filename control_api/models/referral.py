"""Referrals: a customer who came to the shop through another customer's invite link (/start ref_<code>).

Recorded once, when the customer first reaches the shop, and never changed (the referred user is the key).
Decided once, at the customer's first paid purchase (services/referrals.py): the row's single-shot claim
(`... WHERE decided_at IS NULL`) is what makes a retried or racing approval credit the referrer at most once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow

# How a referral was decided at the referred customer's first paid purchase: the referrer's wallet was
# credited; REFERRAL_PERCENT was 0; the percent of the price rounded down to nothing; the referrer was banned.
REFERRAL_OUTCOMES = ("credited", "disabled", "too_small", "referrer_banned")


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referrer_user_id <> referred_user_id", name="not_self"),
        CheckConstraint(f"outcome IS NULL OR {enum_check('outcome', REFERRAL_OUTCOMES)}", name="outcome"),
        # Decided all at once: when, how, on what price and percent, for how much.
        CheckConstraint(
            "(outcome IS NULL) = (decided_at IS NULL) AND (outcome IS NULL) = (amount_cents IS NULL)"
            " AND (outcome IS NULL) = (price_cents IS NULL) AND (outcome IS NULL) = (percent IS NULL)",
            name="decided_at_once",
        ),
        CheckConstraint("amount_cents IS NULL OR amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint("(outcome = 'credited') = (amount_cents > 0)", name="credited_amount_positive"),
        CheckConstraint("entry_id IS NULL OR outcome = 'credited'", name="entry_only_when_credited"),
        # A referrer's invited customers, and their credits (GET /users/{id}/referral).
        Index(None, "referrer_user_id", "outcome"),
        # A ledger row pays one referral.
        Index(None, "entry_id", unique=True),
    )

    # The customer who came through the link: one referral per customer, ever.
    referred_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # The customer whose link it was.
    referrer_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set together at the referred customer's first paid purchase; NULL until then.
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    # The purchase: its payment (NULL when paid from the balance) and its config.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    config_id: Mapped[int | None] = mapped_column(ForeignKey("user_configs.id", ondelete="SET NULL"))
    # What the customer paid, REFERRAL_PERCENT then, and the credit: price * percent // 100 (0 unless credited).
    price_cents: Mapped[int | None] = mapped_column(BigInteger)
    percent: Mapped[int | None] = mapped_column(Integer)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    # The referrer's ledger row (reason "referral") when credited.
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_entries.id", ondelete="CASCADE"))
