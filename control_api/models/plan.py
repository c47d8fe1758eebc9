"""What the shop sells."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("duration_days > 0", name="duration_positive"),
        CheckConstraint("max_devices > 0", name="devices_positive"),
        CheckConstraint("data_limit_mb > 0", name="data_limit_positive"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        Index(None, "is_active", "location_tag", "is_constant_ip"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Where the service is delivered, e.g. "local" or "abroad"; nodes carry the same tag.
    location_tag: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    duration_days: Mapped[int] = mapped_column(Integer)
    max_devices: Mapped[int] = mapped_column(Integer)
    data_limit_mb: Mapped[int] = mapped_column(BigInteger)
    is_constant_ip: Mapped[bool] = mapped_column(Boolean, default=False)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    # Archived plans stay for the payments that reference them but are no longer sold.
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
