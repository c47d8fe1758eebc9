"""What the shop sells."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow

# What a renewal does with the data of the period it follows: "reset" gives the new plan's cap from zero,
# "carry" adds what was left unused (when renewed before it expired) to the new plan's cap.
RENEWAL_DATA_RULES = ("reset", "carry")


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("duration_days > 0", name="duration_positive"),
        CheckConstraint("max_devices > 0", name="devices_positive"),
        CheckConstraint("data_limit_mb > 0", name="data_limit_positive"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint(enum_check("renewal_data_rule", RENEWAL_DATA_RULES), name="renewal_data_rule"),
        Index(None, "is_active", "location_tag", "is_constant_ip"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The name Persian-speaking customers read; NULL: they read `name`.
    name_fa: Mapped[str | None] = mapped_column(String(100))
    # Where the service is delivered, e.g. "local" or "abroad"; nodes carry the same tag.
    location_tag: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    duration_days: Mapped[int] = mapped_column(Integer)
    max_devices: Mapped[int] = mapped_column(Integer)
    data_limit_mb: Mapped[int] = mapped_column(BigInteger)
    is_constant_ip: Mapped[bool] = mapped_column(Boolean, default=False)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    renewal_data_rule: Mapped[str] = mapped_column(String(8), default="reset", server_default=text("'reset'"))
    # Archived plans stay for the payments that reference them but are no longer sold.
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
