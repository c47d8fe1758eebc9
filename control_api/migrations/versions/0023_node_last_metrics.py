"""the last heartbeat's metrics on the node row

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-06

nodes.last_metrics_at, last_cpu, last_mem, last_bandwidth_in, last_bandwidth_out and last_latency_ms hold the
node's newest heartbeat (the heartbeat writes them in the UPDATE that marks the node seen), so GET /nodes and
the metrics exporter read no metric history. The upgrade fills them from each node's newest node_metrics row,
then drops the index 0020 made for finding that row (node_metrics (node_id, id)): nothing reads it any more, and
every heartbeat's INSERT paid for it.

Downgrading drops the columns and makes the index again; node_metrics still holds every heartbeat.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None

COLUMNS = {
    "last_cpu": ("cpu", sa.Float()),
    "last_mem": ("mem", sa.Float()),
    "last_bandwidth_in": ("bandwidth_in", sa.BigInteger()),
    "last_bandwidth_out": ("bandwidth_out", sa.BigInteger()),
    "last_latency_ms": ("latency_ms", sa.Float()),
    "last_metrics_at": ("timestamp", sa.DateTime(timezone=True)),
}


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        for name, (_, kind) in COLUMNS.items():
            batch.add_column(sa.Column(name, kind, nullable=True))
    # Correlated subqueries, not UPDATE ... FROM: the same statement on PostgreSQL and SQLite.
    newest = "(SELECT max(n.id) FROM node_metrics n WHERE n.node_id = nodes.id)"
    assignments = ", ".join(
        f"{name} = (SELECT m.{source} FROM node_metrics m WHERE m.id = {newest})"  # noqa: S608 - names from COLUMNS
        for name, (source, _) in COLUMNS.items()
    )
    op.execute(f"UPDATE nodes SET {assignments}")  # noqa: S608
    op.drop_index("ix_node_metrics_node_id_id", table_name="node_metrics")


def downgrade() -> None:
    op.create_index("ix_node_metrics_node_id_id", "node_metrics", ["node_id", "id"])
    with op.batch_alter_table("nodes") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
