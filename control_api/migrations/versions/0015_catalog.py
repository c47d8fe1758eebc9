"""catalog: Persian plan names and the location catalog

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09

Plans gain name_fa: the name Persian-speaking customers read (NULL: they read the plan's name). locations is
the catalog of location tags (the tags plans and nodes carry): each tag once, with an English name, an
optional Persian name and a sort order. Nothing is inserted here: `flask seed-demo` adds entries for the demo
catalogue's tags, and a tag with no entry reads as the tag.

Downgrading drops the catalog and the Persian names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("name_fa", sa.String(length=100), nullable=True))
    op.create_table(
        "locations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_fa", sa.String(length=64), nullable=True),
        sa.Column("sort_order", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    op.create_index(op.f("ix_locations_tag"), "locations", ["tag"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_locations_tag"), table_name="locations")
    op.drop_table("locations")
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("name_fa")
