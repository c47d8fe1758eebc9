"""indexes on node_metrics (node_id, id) and sync_runs (node_id, id): each node's newest row in one probe

Revision ID: 0020
Revises: 0022
Create Date: 2026-12-05

GET /nodes (and the monitoring views) show each node's last heartbeat and last sync run, the row with the
highest id per node. Without these indexes PostgreSQL reads every retained heartbeat of every node to find
them (NODE_METRICS_RETENTION_DAYS of them: 100 ms at 1,000 nodes and 12 hours of heartbeats, growing with
retention); with them it reads one index entry per node.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_node_metrics_node_id_id", "node_metrics", ["node_id", "id"])
    op.create_index("ix_sync_runs_node_id_id", "sync_runs", ["node_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_runs_node_id_id", table_name="sync_runs")
    op.drop_index("ix_node_metrics_node_id_id", table_name="node_metrics")
