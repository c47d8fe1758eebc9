"""The warm identity pool (issue 19, item 4): random UUIDs a node already serves, known to no customer, that a
sale on that node adopts so its link works before the API answers (services/identity_pool.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow
from .sales import PROTOCOLS


class PoolIdentity(Base):
    """One pre-added client identity of one node, served there under the email `pool-<id>` until a config
    adopts it (then the config's `cfg-<id>` carries the same UUID) or it is retired (its traffic before any
    adoption, a shrunk pool, a protocol the node no longer sells). Its UUID is a secret like a config's: never
    in an API answer, a link or a log line."""

    __tablename__ = "identity_pool"
    __table_args__ = (
        CheckConstraint(enum_check("protocol", PROTOCOLS), name="protocol"),
        CheckConstraint("(adopted_config_id IS NULL) OR (adopted_at IS NOT NULL)", name="adopted_when"),
        Index(None, "node_id", "protocol"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    protocol: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The node revision whose successful sync first served it; NULL while it is not on the node yet.
    ready_revision: Mapped[int | None] = mapped_column(BigInteger)
    # The config that took it (NULL again should that config be deleted; adopted_at stays), and when.
    adopted_config_id: Mapped[int | None] = mapped_column(ForeignKey("user_configs.id", ondelete="SET NULL"))
    adopted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def email(self) -> str:
        """The client email the node serves it under until a config adopts it."""
        return f"pool-{self.id}"
