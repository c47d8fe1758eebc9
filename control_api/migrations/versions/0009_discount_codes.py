"""discount codes: codes a customer types at checkout, and each use of one

Revision ID: 0009
Revises: 0011
Create Date: 2026-12-07

discount_codes holds the codes (upper-case and unique, a percent or a fixed amount off, one plan or all,
an optional expiry, total and per-customer limits, an active flag); discount_redemptions each use of one
(code, customer, the payment or the balance purchase's ledger row, the price and the amount off, and
when a rejected payment released it). A payment that a code made free waits for an admin: the payments
check on auto_accept_at now also admits a purchase or renewal of amount 0 without one.

Downgrading drops both tables (the amounts the payments and ledger rows recorded stay as they are) and
gives a free order still waiting for an admin an auto-acceptance in the year 9999 (a pre-0009 schema
makes every non-top-up payment name one); decided ones get their creation time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD_AUTO_ACCEPT = "(purpose <> 'topup') = (auto_accept_at IS NOT NULL)"
NEW_AUTO_ACCEPT = (
    "(purpose = 'topup' AND auto_accept_at IS NULL) "
    "OR (purpose <> 'topup' AND (auto_accept_at IS NOT NULL OR amount_cents = 0))"
)


def _replace_auto_accept_check(expression: str) -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_auto_accept_matches_purpose"), type_="check")
        batch.create_check_constraint(op.f("ck_payments_auto_accept_matches_purpose"), expression)


def upgrade() -> None:
    op.create_table(
        "discount_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("percent_off", sa.Integer(), nullable=True),
        sa.Column("amount_off_cents", sa.BigInteger(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("max_uses_per_user", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("code = UPPER(code)", name=op.f("ck_discount_codes_code_upper_case")),
        sa.CheckConstraint(
            "(percent_off IS NULL) <> (amount_off_cents IS NULL)", name=op.f("ck_discount_codes_one_kind_of_discount")
        ),
        sa.CheckConstraint(
            "percent_off IS NULL OR (percent_off >= 1 AND percent_off <= 100)",
            name=op.f("ck_discount_codes_percent_range"),
        ),
        sa.CheckConstraint(
            "amount_off_cents IS NULL OR amount_off_cents > 0", name=op.f("ck_discount_codes_amount_positive")
        ),
        sa.CheckConstraint("max_uses IS NULL OR max_uses > 0", name=op.f("ck_discount_codes_max_uses_positive")),
        sa.CheckConstraint(
            "max_uses_per_user IS NULL OR max_uses_per_user > 0",
            name=op.f("ck_discount_codes_max_uses_per_user_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_discount_codes_plan_id_plans"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discount_codes")),
    )
    op.create_index(op.f("ix_discount_codes_code"), "discount_codes", ["code"], unique=True)
    op.create_index(op.f("ix_discount_codes_plan_id"), "discount_codes", ["plan_id"])
    op.create_table(
        "discount_redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("wallet_entry_id", sa.Integer(), nullable=True),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_off_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount_off_cents >= 0 AND amount_off_cents <= price_cents",
            name=op.f("ck_discount_redemptions_amount_off_in_price"),
        ),
        sa.CheckConstraint(
            "payment_id IS NULL OR wallet_entry_id IS NULL", name=op.f("ck_discount_redemptions_one_order")
        ),
        sa.ForeignKeyConstraint(
            ["code_id"],
            ["discount_codes.id"],
            name=op.f("fk_discount_redemptions_code_id_discount_codes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_discount_redemptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_discount_redemptions_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["wallet_entry_id"],
            ["wallet_entries.id"],
            name=op.f("fk_discount_redemptions_wallet_entry_id_wallet_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discount_redemptions")),
    )
    op.create_index(op.f("ix_discount_redemptions_code_id_user_id"), "discount_redemptions", ["code_id", "user_id"])
    op.create_index(op.f("ix_discount_redemptions_payment_id"), "discount_redemptions", ["payment_id"], unique=True)
    op.create_index(
        op.f("ix_discount_redemptions_wallet_entry_id"), "discount_redemptions", ["wallet_entry_id"], unique=True
    )
    _replace_auto_accept_check(NEW_AUTO_ACCEPT)


def downgrade() -> None:
    far = sa.bindparam("far", value=datetime(9999, 12, 31, tzinfo=UTC), type_=sa.DateTime(timezone=True))
    op.execute(
        sa.text(
            "UPDATE payments SET auto_accept_at = :far"
            " WHERE auto_accept_at IS NULL AND purpose <> 'topup' AND status = 'pending'"
        ).bindparams(far)
    )
    op.execute("UPDATE payments SET auto_accept_at = created_at WHERE auto_accept_at IS NULL AND purpose <> 'topup'")
    _replace_auto_accept_check(OLD_AUTO_ACCEPT)
    op.drop_index(op.f("ix_discount_redemptions_wallet_entry_id"), table_name="discount_redemptions")
    op.drop_index(op.f("ix_discount_redemptions_payment_id"), table_name="discount_redemptions")
    op.drop_index(op.f("ix_discount_redemptions_code_id_user_id"), table_name="discount_redemptions")
    op.drop_table("discount_redemptions")
    op.drop_index(op.f("ix_discount_codes_plan_id"), table_name="discount_codes")
    op.drop_index(op.f("ix_discount_codes_code"), table_name="discount_codes")
    op.drop_table("discount_codes")
