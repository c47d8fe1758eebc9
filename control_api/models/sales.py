"""What a customer bought and what they were given: payments and user configs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, enum_check, utcnow

PAYMENT_STATUSES = ("pending", "approved", "rejected")
# What a payment pays for: a plan (with a temporary config at once), money into the wallet (models/wallet.py),
# another period of a paid config (renewal: its plan, the same config), or more data for its current period.
PAYMENT_PURPOSES = ("purchase", "topup", "renewal", "extra_data")
# The purposes that extend an existing config in place (services/renewals.py).
EXTENSION_PURPOSES = ("renewal", "extra_data")
CONFIG_STATUSES = ("pending", "active", "suspended", "expired", "revoked")
CONFIG_KINDS = ("trial", "temporary", "full")
# Why a suspended config is suspended: an admin did it, its user was banned, or it used its data.
SUSPEND_REASONS = ("admin", "ban", "quota")
PROTOCOLS = ("vless", "vmess")
# Which payments the sweep may accept when nobody decides (payments.auto_accept_at set): never a top-up; every
# other one, but one of amount 0 may wait for an admin (a discount code made it free).
AUTO_ACCEPT_RULE = (
    "(purpose = 'topup' AND auto_accept_at IS NULL) "
    "OR (purpose <> 'topup' AND (auto_accept_at IS NOT NULL OR amount_cents = 0))"
)
# Why an admin rejected a payment, as a stable code the bot words in each customer's language (a reason typed
# by the admin is kept as review_note, shown as typed).
REJECT_REASON_CODES = ("fake_receipt", "wrong_amount", "unreadable", "already_used")
# The kinds of proof file the API stores (services/proofs.py tells them by their first bytes).
PROOF_MIME_TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf")


class UserConfig(Base):
    """One client identity (UUID) served on one node."""

    __tablename__ = "user_configs"
    __table_args__ = (
        CheckConstraint(enum_check("status", CONFIG_STATUSES), name="status"),
        CheckConstraint(enum_check("kind", CONFIG_KINDS), name="kind"),
        CheckConstraint(enum_check("protocol", PROTOCOLS), name="protocol"),
        CheckConstraint("alter_id >= 0", name="alter_id_not_negative"),
        CheckConstraint("data_limit_mb IS NULL OR data_limit_mb > 0", name="data_limit_positive"),
        CheckConstraint("used_bytes >= 0", name="used_bytes_not_negative"),
        CheckConstraint(
            "suspend_reason IS NULL OR " + enum_check("suspend_reason", SUSPEND_REASONS), name="suspend_reason"
        ),
        Index(None, "node_id", "status"),
        Index(None, "user_id", "status"),
        Index(None, "status", "expires_at"),
        Index(None, "previous_node_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # NULL while the config waits for placement on a node.
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    # NULL for trials, which belong to no plan.
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    alter_id: Mapped[int] = mapped_column(Integer, default=0)
    protocol: Mapped[str] = mapped_column(String(8), default="vless")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    kind: Mapped[str] = mapped_column(String(16))
    data_limit_mb: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Running total of usage rows (uplink + downlink), kept by the heartbeat for quota checks.
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # Set with status "suspended" (one of SUSPEND_REASONS), cleared when the config comes back.
    suspend_reason: Mapped[str | None] = mapped_column(String(16))
    # Migration (services/migration.py), make-before-break: node_id is the target, previous_node_id
    # the source, which keeps serving the config until the target is live (the target's applied
    # revision reached moved_at_revision, recorded in migration_live_at) and then for
    # migration_grace_seconds more (previous_until). All NULL when the config is not moving.
    previous_node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    moved_at_revision: Mapped[int | None] = mapped_column(BigInteger)
    migration_grace_seconds: Mapped[int | None] = mapped_column(Integer)
    migration_live_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Auto-renewal (services/auto_renewal.py), opted into by the customer: the sweep renews the config from
    # the balance before it expires, with auto_renew_plan_id, or its plan at the time when that is NULL.
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    auto_renew_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    # Device limits (services/devices.py): the distinct client addresses its node last reported it used from,
    # and when; NULL until a node reports it. Addresses last seen before devices_reset_at (an admin's reset) do
    # not count.
    devices_seen: Mapped[int | None] = mapped_column(Integer)
    devices_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    devices_reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def link_node_id(self) -> int | None:
        """The node customers are told to use: the source while a move is not live on the target yet."""
        if self.previous_node_id is not None and self.migration_live_at is None:
            return self.previous_node_id
        return self.node_id

    @property
    def email(self) -> str:
        """The unique, non-empty client email the core uses for stats and removal."""
        return f"cfg-{self.id}"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(enum_check("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint(enum_check("purpose", PAYMENT_PURPOSES), name="purpose"),
        # A purchase or a renewal names its plan; a renewal or extra data names the config it extends, extra
        # data its megabytes. A top-up credits a positive amount, and only an admin's approval credits it.
        # Everything else is accepted automatically when nobody decides, except an order a discount code made
        # free (amount 0, services/discounts.py): nothing was paid, so only an admin approves it.
        CheckConstraint("(purpose IN ('purchase', 'renewal')) = (plan_id IS NOT NULL)", name="plan_matches_purpose"),
        CheckConstraint(AUTO_ACCEPT_RULE, name="auto_accept_matches_purpose"),
        CheckConstraint("purpose <> 'topup' OR amount_cents > 0", name="topup_amount_positive"),
        CheckConstraint(
            "(purpose IN ('renewal', 'extra_data')) = (extends_config_id IS NOT NULL)", name="config_matches_purpose"
        ),
        CheckConstraint("(purpose = 'extra_data') = (extra_data_mb IS NOT NULL)", name="extra_data_matches_purpose"),
        CheckConstraint("extra_data_mb IS NULL OR extra_data_mb > 0", name="extra_data_positive"),
        # What a renewal's temporary extension replaced, so a rejection restores exactly that (all or nothing).
        CheckConstraint(
            "previous_status IS NULL OR (purpose = 'renewal' AND previous_expires_at IS NOT NULL)",
            name="previous_state_of_renewal",
        ),
        CheckConstraint(
            "previous_status IS NULL OR " + enum_check("previous_status", CONFIG_STATUSES), name="previous_status"
        ),
        CheckConstraint(
            "previous_suspend_reason IS NULL OR " + enum_check("previous_suspend_reason", SUSPEND_REASONS),
            name="previous_suspend_reason",
        ),
        CheckConstraint(
            "review_reason_code IS NULL OR " + enum_check("review_reason_code", REJECT_REASON_CODES),
            name="review_reason_code",
        ),
        CheckConstraint("review_reason_code IS NULL OR status = 'rejected'", name="reason_code_of_rejection"),
        # A stored proof file has all its facts; its sha256 and upload time stay after the retention sweep deletes
        # the file (so an old receipt sent again is still recognised).
        CheckConstraint(
            "proof_path IS NULL OR (proof_sha256 IS NOT NULL AND proof_mime IS NOT NULL AND proof_size > 0)",
            name="proof_complete",
        ),
        CheckConstraint("(proof_sha256 IS NULL) = (proof_uploaded_at IS NULL)", name="proof_uploaded_when"),
        CheckConstraint("proof_mime IS NULL OR " + enum_check("proof_mime", PROOF_MIME_TYPES), name="proof_mime"),
        Index(None, "extends_config_id", "status"),
        Index(None, "status", "auto_accept_at"),
        Index(None, "user_id"),
        # A retried submission of the same proof is the same payment, never a second one.
        Index(None, "user_id", "evidence_file_id", unique=True),
        # One proof file pays for one order, whoever sends it.
        Index(None, "evidence_unique_id", unique=True),
        # The same proof file on another payment (an old receipt sent again) is found by its hash.
        Index(None, "proof_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # NULL for a top-up, which buys no plan.
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    purpose: Mapped[str] = mapped_column(String(16), default="purchase", server_default=text("'purchase'"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Telegram file id of the customer's proof; never logged.
    evidence_file_id: Mapped[str] = mapped_column(String(255))
    # Telegram's file_unique_id of the proof: the same file whoever sends it (unique). NULL before 0004.
    evidence_unique_id: Mapped[str | None] = mapped_column(String(255))
    # NULL for a top-up: money the customer names is credited by an admin only, never by the sweep. NULL too
    # for an order a discount code made free: only an admin approves it.
    auto_accept_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The admin who decided; NULL while pending or when the sweep auto-accepted.
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="SET NULL"))
    # Or the Telegram admin (users.is_admin) who decided through the bot.
    reviewed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_note: Mapped[str | None] = mapped_column(Text)
    # A rejection's quick reason (one of REJECT_REASON_CODES), beside or instead of review_note.
    review_reason_code: Mapped[str | None] = mapped_column(String(24))
    # The temporary config issued with the payment and upgraded in place on approval (NULL for a top-up).
    config_id: Mapped[int | None] = mapped_column(ForeignKey("user_configs.id", ondelete="SET NULL"))
    # A renewal's or extra data's config, extended in place on approval (same id, UUID and links).
    extends_config_id: Mapped[int | None] = mapped_column(ForeignKey("user_configs.id", ondelete="CASCADE"))
    # Extra data: how many MB the approval adds to the config's current period.
    extra_data_mb: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the renewal's proof put a temporary extension on the config (it was expired, out of data, or
    # would have stopped before a decision): the config's values before it, which a rejection restores and
    # from which an approval counts (services/renewals.py). NULL otherwise.
    previous_status: Mapped[str | None] = mapped_column(String(16))
    previous_suspend_reason: Mapped[str | None] = mapped_column(String(16))
    previous_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_data_limit_mb: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The proof file the bot uploaded (services/proofs.py): its name in PROOF_STORAGE_DIR (a random id, never
    # anything the customer chose; NULL when none was uploaded or the retention sweep deleted it), its SHA-256,
    # media type (told by its first bytes), size and upload time. Never logged.
    proof_path: Mapped[str | None] = mapped_column(String(64))
    proof_sha256: Mapped[str | None] = mapped_column(String(64))
    proof_mime: Mapped[str | None] = mapped_column(String(32))
    proof_size: Mapped[int | None] = mapped_column(BigInteger)
    proof_uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
