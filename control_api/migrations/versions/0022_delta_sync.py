"""delta syncs: what each node serves as of its last successful sync

Revision ID: 0022
Revises: 0018
Create Date: 2026-12-05

node_served_users holds, per node, the users (email and a digest of UUID, protocol and level) its last
successful sync left it serving; nodes.served_snapshot_revision says which revision that is. A sync then
sends the node only the difference (services/deltas.py). Both start empty: every node's first sync after
the upgrade is a full one.

Downgrading drops both: syncs send the full set again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("served_snapshot_revision", sa.BigInteger(), nullable=True))
    op.create_table(
        "node_served_users",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_served_users_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("node_id", "email", name=op.f("pk_node_served_users")),
    )


def downgrade() -> None:
    op.drop_table("node_served_users")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("served_snapshot_revision")
