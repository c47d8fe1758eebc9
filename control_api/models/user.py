"""Telegram customers (and Telegram-side admins) of the shop."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow

LANGUAGES = ("en", "fa")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(enum_check("language", LANGUAGES), name="language"),
        Index(None, "referral_code", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A user is banned exactly when ban_reason is set.
    ban_reason: Mapped[str | None] = mapped_column(Text)
    banned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Secret path component of the user's subscription URL; rotating it revokes old links.
    subscription_token: Mapped[str] = mapped_column(String(64), unique=True)
    # Set when the user took their one free trial; never cleared.
    trial_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The code in the user's invite link (/start ref_<code>): random, given the first time they ask for it
    # (services/referrals.py), then never changed. NULL until then.
    referral_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_banned(self) -> bool:
        return self.ban_reason is not None
