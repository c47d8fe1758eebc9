"""node inbounds and TLS name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

What clients need to reach a node (its inbounds and TLS name) is stored with the node, so the API
can build share links and the jobs can hand the same shape to the xray role.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column(
                "inbounds",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
        batch.add_column(sa.Column("tls_server_name", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("tls_self_signed", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("tls_self_signed")
        batch.drop_column("tls_server_name")
        batch.drop_column("inbounds")
