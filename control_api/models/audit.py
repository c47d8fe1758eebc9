"""Who changed what: one row per state change by an admin, the bot, a node or the system."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONDocument, UTCDateTime, enum_check, utcnow

ACTOR_TYPES = ("admin", "bot", "node", "system")


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        CheckConstraint(enum_check("actor_type", ACTOR_TYPES), name="actor_type"),
        Index(None, "created_at"),
        Index(None, "actor_type", "actor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    # Free of secrets by construction: services pass only ids, names and changed fields.
    details: Mapped[dict[str, object]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
