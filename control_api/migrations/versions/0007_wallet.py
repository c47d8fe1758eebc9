"""wallet: an append-only ledger per user, and top-up payments

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

wallet_entries holds every credit and debit of a user's balance (the balance is their sum): amount,
reason code, an admin's note, who caused it, and the payment or config it concerns. Payments gain a
purpose: "purchase" (every existing row: a plan, auto-accepted when nobody decides) or "topup" (no
plan, no temporary config, a positive amount, credited by an admin's approval only, so plan_id and
auto_accept_at become nullable). Notifications gain the kind "wallet_credited".

Downgrading drops the ledger and deletes every top-up payment (a pre-0007 schema has no place for
either) and the wallet_credited notifications.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_KINDS = (
    "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared')"
)
NEW_KINDS = (
    "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited')"
)
CREDIT_REASONS = "('topup', 'admin_credit', 'referral')"
REASONS = "('topup', 'admin_credit', 'referral', 'purchase', 'renewal', 'admin_debit')"


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), server_default=sa.text("'purchase'"), nullable=False)
        )
        batch.alter_column("plan_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("auto_accept_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.create_check_constraint(op.f("ck_payments_purpose"), "purpose IN ('purchase', 'topup')")
        batch.create_check_constraint(
            op.f("ck_payments_plan_matches_purpose"), "(purpose = 'purchase') = (plan_id IS NOT NULL)"
        )
        batch.create_check_constraint(
            op.f("ck_payments_auto_accept_matches_purpose"), "(purpose = 'purchase') = (auto_accept_at IS NOT NULL)"
        )
        batch.create_check_constraint(
            op.f("ck_payments_topup_amount_positive"), "purpose = 'purchase' OR amount_cents > 0"
        )
    op.create_table(
        "wallet_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"reason IN {REASONS}", name=op.f("ck_wallet_entries_reason")),
        sa.CheckConstraint(
            "actor_type IN ('admin', 'bot', 'node', 'system')", name=op.f("ck_wallet_entries_actor_type")
        ),
        sa.CheckConstraint(
            f"(amount_cents > 0) = (reason IN {CREDIT_REASONS})", name=op.f("ck_wallet_entries_amount_sign")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_wallet_entries_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_wallet_entries_payment_id_payments"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["user_configs.id"],
            name=op.f("fk_wallet_entries_config_id_user_configs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_entries")),
    )
    op.create_index(op.f("ix_wallet_entries_user_id_id"), "wallet_entries", ["user_id", "id"])
    op.create_index(op.f("ix_wallet_entries_payment_id"), "wallet_entries", ["payment_id"], unique=True)
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {NEW_KINDS}")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'wallet_credited'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {OLD_KINDS}")
    op.drop_index(op.f("ix_wallet_entries_payment_id"), table_name="wallet_entries")
    op.drop_index(op.f("ix_wallet_entries_user_id_id"), table_name="wallet_entries")
    op.drop_table("wallet_entries")
    op.execute("DELETE FROM payments WHERE purpose = 'topup'")
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_topup_amount_positive"), type_="check")
        batch.drop_constraint(op.f("ck_payments_auto_accept_matches_purpose"), type_="check")
        batch.drop_constraint(op.f("ck_payments_plan_matches_purpose"), type_="check")
        batch.drop_constraint(op.f("ck_payments_purpose"), type_="check")
        batch.alter_column("auto_accept_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.alter_column("plan_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("purpose")
