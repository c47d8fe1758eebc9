"""The notification outbox: what the bot must tell a user, each fact exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONDocument, UTCDateTime, enum_check, utcnow

NOTIFICATION_KINDS = (
    "approved",
    "rejected",
    "expiring",
    "quota_80",
    "quota_100",
    "expired",
    "migrated",
    "config_ready",
    "node_alert",
    "node_alert_cleared",
    "wallet_credited",
    "renewed",
    "data_added",
    "referral_credited",
    "daily_report",
    "auto_renewed",
    "auto_renew_failed",
    "payment_decided",
    "device_limit",
)
# "user": for one customer (user_id); "admins": for the admin channel (user_id NULL).
AUDIENCES = ("user", "admins")


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(enum_check("kind", NOTIFICATION_KINDS), name="kind"),
        CheckConstraint(enum_check("audience", AUDIENCES), name="audience"),
        CheckConstraint("(audience = 'user') = (user_id IS NOT NULL)", name="audience_has_user"),
        Index(None, "delivered_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    audience: Mapped[str] = mapped_column(String(8), default="user", server_default=text("'user'"))
    kind: Mapped[str] = mapped_column(String(24))
    # One row per fact ("quota_80:cfg-12"): a sweep that runs twice cannot notify twice.
    dedupe_key: Mapped[str] = mapped_column(String(96), unique=True)
    # What the bot needs to word the message (ids, names, numbers); never secrets of other users.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
