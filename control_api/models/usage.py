"""Traffic accounting: one row per config and period, each from one idempotent agent report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class UsageReport(Base):
    """A report id the agent sent; stored once so a retried heartbeat never double counts."""

    __tablename__ = "usage_reports"
    __table_args__ = (UniqueConstraint("node_id", "report_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    report_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Usage(Base):
    __tablename__ = "usage"
    __table_args__ = (
        CheckConstraint("bytes_in >= 0 AND bytes_out >= 0", name="bytes_not_negative"),
        CheckConstraint("period_end >= period_start", name="period_ordered"),
        Index(None, "config_id", "period_start"),
        Index(None, "user_id", "period_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    config_id: Mapped[int] = mapped_column(ForeignKey("user_configs.id", ondelete="CASCADE"))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("usage_reports.id", ondelete="SET NULL"))
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
