"""Where the shop sells service: the names customers read for a location tag (services/locations.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Location(Base):
    """A catalog entry for a location tag (plans.location_tag, nodes.location_tag): its English and Persian
    names and its place in lists. Plans and nodes name a location by its tag; a tag still used by one is not
    deleted. A tag with no entry is shown as the tag itself."""

    __tablename__ = "locations"
    __table_args__ = (Index(None, "tag", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    name_fa: Mapped[str | None] = mapped_column(String(64))
    # Lists are ordered by sort_order, then tag.
    sort_order: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
