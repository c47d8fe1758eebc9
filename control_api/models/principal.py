"""Credentials of the API's non-node principals: admins (password) and bot services (client secret)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Admin(Base):
    __tablename__ = "admins"
    __table_args__ = (
        CheckConstraint("totp_enabled_at IS NULL OR totp_secret IS NOT NULL", name="totp_enabled_has_secret"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # The admin's own Telegram account, so bot-side admin actions can act under this identity.
    telegram_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Tokens issued before this moment are refused (rotating a leaked secret ends its sessions).
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Console two-factor (services/console_auth.py): the secret is set when the admin starts enabling it,
    # and a console login needs a code only once totp_enabled_at is set (the admin confirmed a code).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BotClient(Base):
    __tablename__ = "bot_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Tokens issued before this moment are refused (rotating a leaked secret ends its sessions).
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
