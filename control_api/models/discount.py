"""Discount codes and their uses (services/discounts.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class DiscountCode(Base):
    """A code a customer types at checkout: a percent or a fixed amount off one plan's price, or any plan's."""

    __tablename__ = "discount_codes"
    __table_args__ = (
        # Stored upper-case, so the unique index makes codes unique whatever case they are typed in.
        CheckConstraint("code = UPPER(code)", name="code_upper_case"),
        CheckConstraint("(percent_off IS NULL) <> (amount_off_cents IS NULL)", name="one_kind_of_discount"),
        CheckConstraint("percent_off IS NULL OR (percent_off >= 1 AND percent_off <= 100)", name="percent_range"),
        CheckConstraint("amount_off_cents IS NULL OR amount_off_cents > 0", name="amount_positive"),
        CheckConstraint("max_uses IS NULL OR max_uses > 0", name="max_uses_positive"),
        CheckConstraint("max_uses_per_user IS NULL OR max_uses_per_user > 0", name="max_uses_per_user_positive"),
        Index(None, "code", unique=True),
        Index(None, "plan_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    # One of the two: a percent of the price (the amount off rounded down), or a fixed amount in the shop's
    # smallest currency unit (like plans.price_cents), at most the whole price.
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off_cents: Mapped[int | None] = mapped_column(BigInteger)
    # NULL: every plan. A plan with codes is not deleted (archive it, or delete the code first).
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # NULL: no limit. Uses are the code's redemptions that were not released (a rejected payment frees its use).
    max_uses: Mapped[int | None] = mapped_column(Integer)
    max_uses_per_user: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DiscountRedemption(Base):
    """One use of a code: by whom, for which payment (or balance purchase), and how much it took off."""

    __tablename__ = "discount_redemptions"
    __table_args__ = (
        CheckConstraint("amount_off_cents >= 0 AND amount_off_cents <= price_cents", name="amount_off_in_price"),
        CheckConstraint("payment_id IS NULL OR wallet_entry_id IS NULL", name="one_order"),
        # A code's uses, and one customer's uses of it, are counted under the code's row lock.
        Index(None, "code_id", "user_id"),
        # A payment or a balance purchase uses at most one code, once.
        Index(None, "payment_id", unique=True),
        Index(None, "wallet_entry_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: a code that was used is deactivated, never deleted.
    code_id: Mapped[int] = mapped_column(ForeignKey("discount_codes.id", ondelete="RESTRICT"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The payment in review (or decided) it discounted; or the ledger row of a purchase from the balance.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    wallet_entry_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_entries.id", ondelete="SET NULL"))
    # The price before the code and what it took off; the customer paid the difference.
    price_cents: Mapped[int] = mapped_column(BigInteger)
    amount_off_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when its payment was rejected (or its user banned): the use no longer counts.
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
