"""daily sales report: the admin notification kind "daily_report"

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05

The sweep queues yesterday's sales figures for the admin channel once per shop day (dedupe key
"daily_report:<date>"). Downgrading deletes those notifications.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited', 'renewed', 'data_added', 'referral_credited'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'daily_report')"


def _replace_kinds(expression: str) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), expression)


def upgrade() -> None:
    _replace_kinds(f"kind IN {NEW_KINDS}")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'daily_report'")
    _replace_kinds(f"kind IN {OLD_KINDS}")
