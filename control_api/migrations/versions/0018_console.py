"""web console: optional TOTP two-factor per admin

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-12

Admins gain totp_secret (a base32 secret, set when an admin starts enabling two-factor on the console) and
totp_enabled_at (set once the admin confirmed a code from it; from then on a console login needs a code).

Downgrading drops both columns: every admin logs in with the password alone again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admins") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            op.f("ck_admins_totp_enabled_has_secret"), "totp_enabled_at IS NULL OR totp_secret IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("admins") as batch:
        batch.drop_constraint(op.f("ck_admins_totp_enabled_has_secret"), type_="check")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_secret")
