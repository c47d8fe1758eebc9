"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Every table of the original design plus what the sync path needs: admins, bot_clients,
sync_runs, usage_reports, node revisions, config kind and data limit, subscription tokens.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("actor_type IN ('admin', 'bot', 'node', 'system')", name=op.f("ck_audit_logs_actor_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    op.create_index(op.f("ix_audit_logs_actor_type_actor_id"), "audit_logs", ["actor_type", "actor_id"])
    op.create_index(op.f("ix_audit_logs_created_at"), "audit_logs", ["created_at"])

    op.create_table(
        "bot_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_bot_clients_client_id")),
        sa.UniqueConstraint("name", name=op.f("uq_bot_clients_name")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_ip", sa.String(length=45), nullable=True),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("location_tag", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("core", sa.String(length=8), nullable=False),
        sa.Column("capacity_score", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("jwt_secret", sa.String(length=255), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("desired_revision", sa.BigInteger(), nullable=False),
        sa.Column("applied_revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("core IN ('xray', 'v2ray')", name=op.f("ck_nodes_core")),
        sa.CheckConstraint(
            "status IN ('provisioning', 'active', 'draining', 'offline', 'disabled')", name=op.f("ck_nodes_status")
        ),
        sa.CheckConstraint("applied_revision <= desired_revision", name=op.f("ck_nodes_applied_not_ahead")),
        sa.CheckConstraint("capacity_score >= 0", name=op.f("ck_nodes_capacity_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("client_id", name=op.f("uq_nodes_client_id")),
        sa.UniqueConstraint("name", name=op.f("uq_nodes_name")),
    )
    op.create_index(op.f("ix_nodes_status_location_tag"), "nodes", ["status", "location_tag"])

    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("location_tag", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("max_devices", sa.Integer(), nullable=False),
        sa.Column("data_limit_mb", sa.BigInteger(), nullable=False),
        sa.Column("is_constant_ip", sa.Boolean(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("data_limit_mb > 0", name=op.f("ck_plans_data_limit_positive")),
        sa.CheckConstraint("duration_days > 0", name=op.f("ck_plans_duration_positive")),
        sa.CheckConstraint("max_devices > 0", name=op.f("ck_plans_devices_positive")),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_plans_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("name", name=op.f("uq_plans_name")),
    )
    op.create_index(
        op.f("ix_plans_is_active_location_tag_is_constant_ip"), "plans", ["is_active", "location_tag", "is_constant_ip"]
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("ban_reason", sa.Text(), nullable=True),
        sa.Column("banned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subscription_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("language IN ('en', 'fa')", name=op.f("ck_users_language")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("subscription_token", name=op.f("uq_users_subscription_token")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_users_telegram_id")),
    )
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("telegram_user_id", sa.Integer(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["telegram_user_id"], ["users.id"], name=op.f("fk_admins_telegram_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("username", name=op.f("uq_admins_username")),
    )
    op.create_table(
        "node_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.Float(), nullable=False),
        sa.Column("bandwidth_in", sa.BigInteger(), nullable=False),
        sa.Column("bandwidth_out", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_metrics_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_metrics")),
    )
    op.create_index(op.f("ix_node_metrics_node_id_timestamp"), "node_metrics", ["node_id", "timestamp"])

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rc", sa.Integer(), nullable=True),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f("ck_sync_runs_status")),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_sync_runs_node_id_nodes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(op.f("ix_sync_runs_node_id_started_at"), "sync_runs", ["node_id", "started_at"])

    op.create_table(
        "usage_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_usage_reports_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reports")),
        sa.UniqueConstraint("node_id", "report_id", name=op.f("uq_usage_reports_node_id_report_id")),
    )
    op.create_table(
        "user_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("alter_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data_limit_mb", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('trial', 'temporary', 'full')", name=op.f("ck_user_configs_kind")),
        sa.CheckConstraint("protocol IN ('vless', 'vmess')", name=op.f("ck_user_configs_protocol")),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended', 'expired', 'revoked')", name=op.f("ck_user_configs_status")
        ),
        sa.CheckConstraint("alter_id >= 0", name=op.f("ck_user_configs_alter_id_not_negative")),
        sa.CheckConstraint(
            "data_limit_mb IS NULL OR data_limit_mb > 0", name=op.f("ck_user_configs_data_limit_positive")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_user_configs_node_id_nodes"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_user_configs_plan_id_plans"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_configs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_configs")),
        sa.UniqueConstraint("uuid", name=op.f("uq_user_configs_uuid")),
    )
    op.create_index(op.f("ix_user_configs_node_id_status"), "user_configs", ["node_id", "status"])
    op.create_index(op.f("ix_user_configs_status_expires_at"), "user_configs", ["status", "expires_at"])
    op.create_index(op.f("ix_user_configs_user_id_status"), "user_configs", ["user_id", "status"])

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence_file_id", sa.String(length=255), nullable=False),
        sa.Column("auto_accept_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')", name=op.f("ck_payments_status")),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_payments_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["config_id"], ["user_configs.id"], name=op.f("fk_payments_config_id_user_configs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_payments_plan_id_plans"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["admins.id"], name=op.f("fk_payments_reviewed_by_admins"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_status_auto_accept_at"), "payments", ["status", "auto_accept_at"])
    op.create_index(op.f("ix_payments_user_id"), "payments", ["user_id"])

    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("bytes_in >= 0 AND bytes_out >= 0", name=op.f("ck_usage_bytes_not_negative")),
        sa.CheckConstraint("period_end >= period_start", name=op.f("ck_usage_period_ordered")),
        sa.ForeignKeyConstraint(
            ["config_id"], ["user_configs.id"], name=op.f("fk_usage_config_id_user_configs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["usage_reports.id"], name=op.f("fk_usage_report_id_usage_reports"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_usage_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage")),
    )
    op.create_index(op.f("ix_usage_config_id_period_start"), "usage", ["config_id", "period_start"])
    op.create_index(op.f("ix_usage_user_id_period_start"), "usage", ["user_id", "period_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_user_id_period_start"), table_name="usage")
    op.drop_index(op.f("ix_usage_config_id_period_start"), table_name="usage")

    op.drop_table("usage")
    op.drop_index(op.f("ix_payments_user_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_status_auto_accept_at"), table_name="payments")

    op.drop_table("payments")
    op.drop_index(op.f("ix_user_configs_user_id_status"), table_name="user_configs")
    op.drop_index(op.f("ix_user_configs_status_expires_at"), table_name="user_configs")
    op.drop_index(op.f("ix_user_configs_node_id_status"), table_name="user_configs")

    op.drop_table("user_configs")
    op.drop_table("usage_reports")
    op.drop_index(op.f("ix_sync_runs_node_id_started_at"), table_name="sync_runs")

    op.drop_table("sync_runs")
    op.drop_index(op.f("ix_node_metrics_node_id_timestamp"), table_name="node_metrics")

    op.drop_table("node_metrics")
    op.drop_table("admins")
    op.drop_table("users")
    op.drop_index(op.f("ix_plans_is_active_location_tag_is_constant_ip"), table_name="plans")

    op.drop_table("plans")
    op.drop_index(op.f("ix_nodes_status_location_tag"), table_name="nodes")

    op.drop_table("nodes")
    op.drop_table("bot_clients")
    op.drop_index(op.f("ix_audit_logs_created_at"), table_name="audit_logs")
    op.drop_index(op.f("ix_audit_logs_actor_type_actor_id"), table_name="audit_logs")

    op.drop_table("audit_logs")
