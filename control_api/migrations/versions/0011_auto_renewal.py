"""auto-renewal: a config's opt-in and plan, and one attempt row per config and period

Revision ID: 0011
Revises: 0012
Create Date: 2026-12-08

user_configs gain auto_renew (false for every existing config: auto-renewal is opt-in) and
auto_renew_plan_id (the plan to renew with; NULL = the config's plan at the time). auto_renewals holds
what became of each config's renewal from the balance for one period (the expiry it was to follow),
unique per config and period, so that sweeps running at once charge a period once. Notifications gain
the kinds "auto_renewed" and "auto_renew_failed".

Downgrading drops the attempts and the opt-ins, and deletes those notifications (a pre-0011 schema has
no place for them). The renewals themselves stay: they are ledger rows and config periods like any other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0012"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited', 'renewed', 'data_added', 'referral_credited', "
    "'daily_report'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'auto_renewed', 'auto_renew_failed')"


def _replace_kinds(kinds: str) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {kinds}")


def upgrade() -> None:
    with op.batch_alter_table("user_configs") as batch:
        batch.add_column(sa.Column("auto_renew", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("auto_renew_plan_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_user_configs_auto_renew_plan_id_plans"),
            "plans",
            ["auto_renew_plan_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    op.create_table(
        "auto_renewals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("period_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('renewed', 'failed')", name=op.f("ck_auto_renewals_outcome")),
        sa.CheckConstraint(
            "(outcome = 'failed') = (reason IS NOT NULL)", name=op.f("ck_auto_renewals_reason_of_failure")
        ),
        sa.CheckConstraint("attempts >= 1", name=op.f("ck_auto_renewals_attempts_positive")),
        sa.ForeignKeyConstraint(
            ["config_id"], ["user_configs.id"], name=op.f("fk_auto_renewals_config_id_user_configs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["wallet_entries.id"],
            name=op.f("fk_auto_renewals_entry_id_wallet_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_renewals")),
    )
    op.create_index(
        op.f("ix_auto_renewals_config_id_period_expires_at"),
        "auto_renewals",
        ["config_id", "period_expires_at"],
        unique=True,
    )
    _replace_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind IN ('auto_renewed', 'auto_renew_failed')")
    _replace_kinds(OLD_KINDS)
    op.drop_index(op.f("ix_auto_renewals_config_id_period_expires_at"), table_name="auto_renewals")
    op.drop_table("auto_renewals")
    with op.batch_alter_table("user_configs") as batch:
        batch.drop_constraint(op.f("fk_user_configs_auto_renew_plan_id_plans"), type_="foreignkey")
        batch.drop_column("auto_renew_plan_id")
        batch.drop_column("auto_renew")
