"""referrals: invite codes, who invited whom, and the referrer's credit at the first paid purchase

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07

Users gain referral_code (unique; NULL until the user first asks for their invite link, so existing
users need no backfill). The referrals table holds one row per referred customer (the referred user is
the primary key: recorded once, never changed), decided once at their first paid purchase: the outcome,
the price and percent it was computed from, the credit, and the referrer's ledger row (reason
"referral", which wallet_entries already allows since 0007). Notifications gain the kind
"referral_credited".

Downgrading drops the referrals (the referrers' ledger rows stay: deleting a credit would lower a
balance that may have been spent), the codes, and the referral_credited notifications.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited', 'renewed', 'data_added'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'referral_credited')"
OUTCOMES = "('credited', 'disabled', 'too_small', 'referrer_banned')"


def _replace_kinds(expression: str) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {expression}")


def upgrade() -> None:
    op.add_column("users", sa.Column("referral_code", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_users_referral_code"), "users", ["referral_code"], unique=True)
    op.create_table(
        "referrals",
        sa.Column("referred_user_id", sa.Integer(), nullable=False),
        sa.Column("referrer_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("price_cents", sa.BigInteger(), nullable=True),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("referrer_user_id <> referred_user_id", name=op.f("ck_referrals_not_self")),
        sa.CheckConstraint(f"outcome IS NULL OR outcome IN {OUTCOMES}", name=op.f("ck_referrals_outcome")),
        sa.CheckConstraint(
            "(outcome IS NULL) = (decided_at IS NULL) AND (outcome IS NULL) = (amount_cents IS NULL)"
            " AND (outcome IS NULL) = (price_cents IS NULL) AND (outcome IS NULL) = (percent IS NULL)",
            name=op.f("ck_referrals_decided_at_once"),
        ),
        sa.CheckConstraint("amount_cents IS NULL OR amount_cents >= 0", name=op.f("ck_referrals_amount_not_negative")),
        sa.CheckConstraint(
            "(outcome = 'credited') = (amount_cents > 0)", name=op.f("ck_referrals_credited_amount_positive")
        ),
        sa.CheckConstraint(
            "entry_id IS NULL OR outcome = 'credited'", name=op.f("ck_referrals_entry_only_when_credited")
        ),
        sa.ForeignKeyConstraint(
            ["referred_user_id"], ["users.id"], name=op.f("fk_referrals_referred_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["referrer_user_id"], ["users.id"], name=op.f("fk_referrals_referrer_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_referrals_payment_id_payments"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["config_id"], ["user_configs.id"], name=op.f("fk_referrals_config_id_user_configs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["wallet_entries.id"], name=op.f("fk_referrals_entry_id_wallet_entries"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("referred_user_id", name=op.f("pk_referrals")),
    )
    op.create_index(op.f("ix_referrals_referrer_user_id_outcome"), "referrals", ["referrer_user_id", "outcome"])
    op.create_index(op.f("ix_referrals_entry_id"), "referrals", ["entry_id"], unique=True)
    _replace_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'referral_credited'")
    _replace_kinds(OLD_KINDS)
    op.drop_index(op.f("ix_referrals_entry_id"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_referrer_user_id_outcome"), table_name="referrals")
    op.drop_table("referrals")
    op.drop_index(op.f("ix_users_referral_code"), table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("referral_code")
