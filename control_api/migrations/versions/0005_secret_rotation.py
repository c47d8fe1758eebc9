"""credentials can be rotated: tokens minted before the rotation stop working

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Each principal (admin, bot client, node) records when its secret last changed. Tokens carry the
version of the secret they were minted with (that moment, in microseconds), and one minted with an
older secret is refused on its next request: rotating a leaked secret also ends its sessions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("admins", "bot_clients", "nodes")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("secret_rotated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("secret_rotated_at")
