"""device limits: devices seen per config, refused client addresses, and the notification kind "device_limit"

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10

User configs gain devices_seen and devices_seen_at (the distinct client addresses its node last reported, and
when) and devices_reset_at (an admin's reset: addresses last seen before it do not count). device_blocks holds
the client addresses refused for one config until a time (one row per config and address). Notifications gain
the kind "device_limit": a customer's config was used from more devices than the plan allows.

Downgrading deletes those notifications and drops the table and the columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_KINDS = (
    "'approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared', 'wallet_credited', 'renewed', 'data_added', 'referral_credited', "
    "'daily_report', 'auto_renewed', 'auto_renew_failed', 'payment_decided'"
)
OLD_KINDS = f"({_KINDS})"
NEW_KINDS = f"({_KINDS}, 'device_limit')"


def _replace_kinds(kinds: str) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {kinds}")


def upgrade() -> None:
    with op.batch_alter_table("user_configs") as batch:
        batch.add_column(sa.Column("devices_seen", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("devices_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("devices_reset_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "device_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"], ["user_configs.id"], name=op.f("fk_device_blocks_config_id_user_configs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_blocks")),
        sa.UniqueConstraint("config_id", "address", name=op.f("uq_device_blocks_config_id_address")),
    )
    _replace_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'device_limit'")
    _replace_kinds(OLD_KINDS)
    op.drop_table("device_blocks")
    with op.batch_alter_table("user_configs") as batch:
        batch.drop_column("devices_reset_at")
        batch.drop_column("devices_seen_at")
        batch.drop_column("devices_seen")
