"""Device limits (issue 17): client addresses refused for one config for a cool-down, because the config was
used from more devices than its plan allows (services/devices.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class DeviceBlock(Base):
    """One client address refused for one config until `until`. The sync carries the active ones to the config's
    nodes (revisions.desired_device_blocks), where only that customer's connections from it are refused: another
    customer behind the same address (NAT) is untouched. An expired row is replaced when the address is refused
    again, and dropped when the config's devices are reset."""

    __tablename__ = "device_blocks"
    __table_args__ = (UniqueConstraint("config_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("user_configs.id", ondelete="CASCADE"))
    # Normalised text of an IPv4 or IPv6 address (personal data: never in logs, audit rows or notifications).
    address: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
