"""sales lifecycle: trials once, usage totals, Telegram reviewers, the notification outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KINDS = "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated')"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("trial_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("user_configs") as batch:
        batch.add_column(sa.Column("used_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        batch.create_check_constraint(op.f("ck_user_configs_used_bytes_not_negative"), "used_bytes >= 0")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("reviewed_by_user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_payments_reviewed_by_user_id_users"), "users", ["reviewed_by_user_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index(op.f("ix_payments_user_id_evidence_file_id"), ["user_id", "evidence_file_id"], unique=True)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=96), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"kind IN {KINDS}", name=op.f("ck_notifications_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index(op.f("ix_notifications_delivered_at_id"), "notifications", ["delivered_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_delivered_at_id"), table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("payments") as batch:
        batch.drop_index(op.f("ix_payments_user_id_evidence_file_id"))
        batch.drop_constraint(op.f("fk_payments_reviewed_by_user_id_users"), type_="foreignkey")
        batch.drop_column("reviewed_by_user_id")
    with op.batch_alter_table("user_configs") as batch:
        batch.drop_constraint(op.f("ck_user_configs_used_bytes_not_negative"), type_="check")
        batch.drop_column("used_bytes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("trial_used_at")
