"""admin review: rejection reason codes and the admin notification kind "payment_decided"

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-08

Payments gain review_reason_code: a rejection's quick reason as a stable code ('fake_receipt', 'wrong_amount',
'unreadable', 'already_used') that the bot words in each customer's language; only a rejected payment has
one. Notifications gain the kind "payment_decided" (audience "admins"): a payment was approved or rejected,
by anyone, so the bot updates the review cards it posted.

Downgrading deletes those notifications and drops the column (a code that was the only reason is kept as
the review note, so the rejection still says why).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited', 'renewed', 'data_added', 'referral_credited', "
    "'daily_report', 'auto_renewed', 'auto_renew_failed'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'payment_decided')"
REASON_CODES = "('fake_receipt', 'wrong_amount', 'unreadable', 'already_used')"
NEW_CHECKS = {
    "review_reason_code": f"review_reason_code IS NULL OR review_reason_code IN {REASON_CODES}",
    "reason_code_of_rejection": "review_reason_code IS NULL OR status = 'rejected'",
}


def _replace_kinds(expression: str) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), expression)


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("review_reason_code", sa.String(length=24), nullable=True))
        for name, expression in NEW_CHECKS.items():
            batch.create_check_constraint(op.f(f"ck_payments_{name}"), expression)
    _replace_kinds(f"kind IN {NEW_KINDS}")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'payment_decided'")
    _replace_kinds(f"kind IN {OLD_KINDS}")
    op.execute(
        "UPDATE payments SET review_note = review_reason_code"
        " WHERE review_note IS NULL AND review_reason_code IS NOT NULL"
    )
    with op.batch_alter_table("payments") as batch:
        for name in reversed(NEW_CHECKS):
            batch.drop_constraint(op.f(f"ck_payments_{name}"), type_="check")
        batch.drop_column("review_reason_code")
