"""renewals and extra data: payments that extend a paid config in place

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Plans gain renewal_data_rule ("reset", the default for every existing plan, or "carry"). Payments gain
the purposes "renewal" (a plan, and the config it renews) and "extra_data" (the config and a number of
MB): extends_config_id and extra_data_mb, and the config's values before a renewal's temporary
extension (previous_status, previous_suspend_reason, previous_expires_at, previous_data_limit_mb), which
a rejection restores. Both are accepted automatically like a purchase, so the purpose checks now say
"everything but a top-up" where they said "a purchase". Ledger entries gain the reason "extra_data";
notifications the kinds "renewed" and "data_added".

Downgrading deletes every renewal and extra-data payment and those notifications (a pre-0008 schema
has no place for them), and books extra_data ledger rows as "purchase" (deleting a debit would raise a
balance).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'renewed', 'data_added')"
CREDIT_REASONS = "('topup', 'admin_credit', 'referral')"
OLD_REASONS = "('topup', 'admin_credit', 'referral', 'purchase', 'renewal', 'admin_debit')"
NEW_REASONS = "('topup', 'admin_credit', 'referral', 'purchase', 'renewal', 'extra_data', 'admin_debit')"
CONFIG_STATUSES = "('pending', 'active', 'suspended', 'expired', 'revoked')"
SUSPEND_REASONS = "('admin', 'ban', 'quota')"

# name -> (0007's expression, 0008's expression)
PURPOSE_CHECKS = {
    "purpose": ("purpose IN ('purchase', 'topup')", "purpose IN ('purchase', 'topup', 'renewal', 'extra_data')"),
    "plan_matches_purpose": (
        "(purpose = 'purchase') = (plan_id IS NOT NULL)",
        "(purpose IN ('purchase', 'renewal')) = (plan_id IS NOT NULL)",
    ),
    "auto_accept_matches_purpose": (
        "(purpose = 'purchase') = (auto_accept_at IS NOT NULL)",
        "(purpose <> 'topup') = (auto_accept_at IS NOT NULL)",
    ),
    "topup_amount_positive": ("purpose = 'purchase' OR amount_cents > 0", "purpose <> 'topup' OR amount_cents > 0"),
}
NEW_CHECKS = {
    "config_matches_purpose": "(purpose IN ('renewal', 'extra_data')) = (extends_config_id IS NOT NULL)",
    "extra_data_matches_purpose": "(purpose = 'extra_data') = (extra_data_mb IS NOT NULL)",
    "extra_data_positive": "extra_data_mb IS NULL OR extra_data_mb > 0",
    "previous_state_of_renewal": (
        "previous_status IS NULL OR (purpose = 'renewal' AND previous_expires_at IS NOT NULL)"
    ),
    "previous_status": f"previous_status IS NULL OR previous_status IN {CONFIG_STATUSES}",
    "previous_suspend_reason": f"previous_suspend_reason IS NULL OR previous_suspend_reason IN {SUSPEND_REASONS}",
}


def _replace_check(batch, table: str, name: str, expression: str) -> None:
    batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
    batch.create_check_constraint(op.f(f"ck_{table}_{name}"), expression)


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(
            sa.Column("renewal_data_rule", sa.String(length=8), server_default=sa.text("'reset'"), nullable=False)
        )
        batch.create_check_constraint(op.f("ck_plans_renewal_data_rule"), "renewal_data_rule IN ('reset', 'carry')")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("extends_config_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("extra_data_mb", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("previous_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("previous_suspend_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("previous_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_data_limit_mb", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_payments_extends_config_id_user_configs"),
            "user_configs",
            ["extends_config_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_payments_extends_config_id_status"), ["extends_config_id", "status"])
        for name, (_old, new) in PURPOSE_CHECKS.items():
            _replace_check(batch, "payments", name, new)
        for name, expression in NEW_CHECKS.items():
            batch.create_check_constraint(op.f(f"ck_payments_{name}"), expression)
    with op.batch_alter_table("wallet_entries") as batch:
        _replace_check(batch, "wallet_entries", "reason", f"reason IN {NEW_REASONS}")
    with op.batch_alter_table("notifications") as batch:
        _replace_check(batch, "notifications", "kind", f"kind IN {NEW_KINDS}")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind IN ('renewed', 'data_added')")
    with op.batch_alter_table("notifications") as batch:
        _replace_check(batch, "notifications", "kind", f"kind IN {OLD_KINDS}")
    op.execute("UPDATE wallet_entries SET reason = 'purchase' WHERE reason = 'extra_data'")
    with op.batch_alter_table("wallet_entries") as batch:
        _replace_check(batch, "wallet_entries", "reason", f"reason IN {OLD_REASONS}")
    op.execute("DELETE FROM payments WHERE purpose IN ('renewal', 'extra_data')")
    with op.batch_alter_table("payments") as batch:
        for name in reversed(NEW_CHECKS):
            batch.drop_constraint(op.f(f"ck_payments_{name}"), type_="check")
        for name, (old, _new) in PURPOSE_CHECKS.items():
            _replace_check(batch, "payments", name, old)
        batch.drop_index(op.f("ix_payments_extends_config_id_status"))
        batch.drop_constraint(op.f("fk_payments_extends_config_id_user_configs"), type_="foreignkey")
        batch.drop_column("previous_data_limit_mb")
        batch.drop_column("previous_expires_at")
        batch.drop_column("previous_suspend_reason")
        batch.drop_column("previous_status")
        batch.drop_column("extra_data_mb")
        batch.drop_column("extends_config_id")
    with op.batch_alter_table("plans") as batch:
        batch.drop_constraint(op.f("ck_plans_renewal_data_rule"), type_="check")
        batch.drop_column("renewal_data_rule")
