"""warm identity pool: pre-added identities each node serves before a sale adopts one

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-14

identity_pool holds, per node, random UUIDs the node serves under the email pool-<id> while no customer has
them (services/identity_pool.py): ready_revision is the node revision whose sync first served one, a sale on
the node adopts a ready one (adopted_config_id, adopted_at), and traffic before adoption retires it
(retired_at).

Downgrading drops the table: configs that adopted an identity keep their UUID and stay served as cfg-<id>.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_pool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_revision", sa.BigInteger(), nullable=True),
        sa.Column("adopted_config_id", sa.Integer(), nullable=True),
        sa.Column("adopted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("protocol IN ('vless', 'vmess')", name=op.f("ck_identity_pool_protocol")),
        sa.CheckConstraint(
            "(adopted_config_id IS NULL) OR (adopted_at IS NOT NULL)", name=op.f("ck_identity_pool_adopted_when")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_identity_pool_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["adopted_config_id"],
            ["user_configs.id"],
            name=op.f("fk_identity_pool_adopted_config_id_user_configs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_pool")),
        sa.UniqueConstraint("uuid", name=op.f("uq_identity_pool_uuid")),
    )
    op.create_index(op.f("ix_identity_pool_node_id_protocol"), "identity_pool", ["node_id", "protocol"])


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_pool_node_id_protocol"), table_name="identity_pool")
    op.drop_table("identity_pool")
