"""node health, alerts and make-before-break migration

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Nodes gain the uplink size for the bandwidth ratio, per-node threshold overrides, the open alert
(breached thresholds and since when) and whether a drain skips the grace window. A moving config
records its source node, the target revision that serves it, when it went live there and until
when the source keeps serving it. Notifications gain an audience: "admins" ones (node alerts) have
no user. node_metrics gains an index on timestamp for the retention sweep.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD_KINDS = "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready')"
NEW_KINDS = (
    "('approved', 'rejected', 'expiring', 'quota_80', 'quota_100', 'expired', 'migrated', 'config_ready', "
    "'node_alert', 'node_alert_cleared')"
)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("bandwidth_capacity_mbps", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("thresholds", JSON, server_default=sa.text("'{}'"), nullable=False))
        batch.add_column(sa.Column("alert_breached", JSON, server_default=sa.text("'{}'"), nullable=False))
        batch.add_column(sa.Column("alert_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("drain_immediate", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.create_check_constraint(
            op.f("ck_nodes_bandwidth_capacity_positive"),
            "bandwidth_capacity_mbps IS NULL OR bandwidth_capacity_mbps > 0",
        )
    with op.batch_alter_table("user_configs") as batch:
        batch.add_column(sa.Column("previous_node_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("moved_at_revision", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("migration_grace_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("migration_live_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_user_configs_previous_node_id_nodes"), "nodes", ["previous_node_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index(op.f("ix_user_configs_previous_node_id"), ["previous_node_id"])
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("audience", sa.String(length=8), server_default=sa.text("'user'"), nullable=False))
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("kind", existing_type=sa.String(length=16), type_=sa.String(length=24))
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {NEW_KINDS}")
        batch.create_check_constraint(op.f("ck_notifications_audience"), "audience IN ('user', 'admins')")
        batch.create_check_constraint(
            op.f("ck_notifications_audience_has_user"), "(audience = 'user') = (user_id IS NOT NULL)"
        )
    with op.batch_alter_table("node_metrics") as batch:
        batch.create_index(op.f("ix_node_metrics_timestamp"), ["timestamp"])


def downgrade() -> None:
    with op.batch_alter_table("node_metrics") as batch:
        batch.drop_index(op.f("ix_node_metrics_timestamp"))
    op.execute("DELETE FROM notifications WHERE audience = 'admins' OR kind IN ('node_alert', 'node_alert_cleared')")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_audience_has_user"), type_="check")
        batch.drop_constraint(op.f("ck_notifications_audience"), type_="check")
        batch.drop_constraint(op.f("ck_notifications_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_kind"), f"kind IN {OLD_KINDS}")
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("kind", existing_type=sa.String(length=24), type_=sa.String(length=16))
        batch.drop_column("audience")
    # A config still moving stays where it is being moved to; the source stops serving it.
    with op.batch_alter_table("user_configs") as batch:
        batch.drop_index(op.f("ix_user_configs_previous_node_id"))
        batch.drop_constraint(op.f("fk_user_configs_previous_node_id_nodes"), type_="foreignkey")
        for column in (
            "previous_until",
            "migration_live_at",
            "migration_grace_seconds",
            "moved_at_revision",
            "previous_node_id",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("nodes") as batch:
        batch.drop_constraint(op.f("ck_nodes_bandwidth_capacity_positive"), type_="check")
        for column in ("drain_immediate", "alert_since", "alert_breached", "thresholds", "bandwidth_capacity_mbps"):
            batch.drop_column(column)
