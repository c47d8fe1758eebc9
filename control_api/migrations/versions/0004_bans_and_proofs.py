"""bans that stop service, proofs identified across users, configs waiting for a server

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

user_configs.suspend_reason says why a config is suspended (an admin, a ban, its quota), so that
unbanning can restore exactly what the ban took. payments.evidence_unique_id is Telegram's
file_unique_id of the proof: the same file is the same proof whoever sends it, so one receipt
cannot buy two customers a temporary config. A config that could not be placed waits with no node
(node_id NULL) until the sweep places it; notifications gain "config_ready" to tell its customer.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_KINDS = "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated')"
NEW_KINDS = "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready')"


def upgrade() -> None:
    with op.batch_alter_table("user_configs") as batch:
        batch.add_column(sa.Column("suspend_reason", sa.String(length=16), nullable=True))
        batch.create_check_constraint(
            op.f("ck_user_configs_suspend_reason"),
            "suspend_reason IS NULL OR suspend_reason IN ('admin', 'ban', 'quota')",
        )
    # Configs suspended before reasons existed were suspended by an admin or by their quota.
    op.execute("UPDATE user_configs SET suspend_reason = 'admin' WHERE status = 'suspended' AND suspend_reason IS NULL")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("evidence_unique_id", sa.String(length=255), nullable=True))
        batch.create_index(op.f("ix_payments_evidence_unique_id"), ["evidence_unique_id"], unique=True)
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {NEW_KINDS}")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'config_ready'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {OLD_KINDS}")
    with op.batch_alter_table("payments") as batch:
        batch.drop_index(op.f("ix_payments_evidence_unique_id"))
        batch.drop_column("evidence_unique_id")
    with op.batch_alter_table("user_configs") as batch:
        batch.drop_constraint(op.f("ck_user_configs_suspend_reason"), type_="check")
        batch.drop_column("suspend_reason")
