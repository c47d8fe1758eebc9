"""Nodes that serve the VPN, their metrics and their sync history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONDocument, UTCDateTime, enum_check, utcnow

NODE_STATUSES = ("provisioning", "active", "draining", "offline", "disabled")
CORES = ("xray", "v2ray")
SYNC_STATUSES = ("running", "succeeded", "failed")
# Derived for admins (services/nodes.py), not stored.
NODE_HEALTH = ("never_seen", "healthy", "stale")
SYNC_STATES = ("in_sync", "syncing", "failing")
# What a node's health is judged on; Node.thresholds may override the fleet's limit of each.
THRESHOLDS = ("latency", "cpu", "bandwidth", "dark")
THRESHOLD_KEYS = {
    "latency": "latency_ms",
    "cpu": "cpu_percent",
    "bandwidth": "bandwidth_percent",
    "dark": "dark_after_seconds",
}


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (
        CheckConstraint(enum_check("status", NODE_STATUSES), name="status"),
        CheckConstraint(enum_check("core", CORES), name="core"),
        CheckConstraint("capacity_score >= 0", name="capacity_not_negative"),
        CheckConstraint(
            "bandwidth_capacity_mbps IS NULL OR bandwidth_capacity_mbps > 0", name="bandwidth_capacity_positive"
        ),
        CheckConstraint("applied_revision <= desired_revision", name="applied_not_ahead"),
        Index(None, "status", "location_tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    public_ip: Mapped[str | None] = mapped_column(String(45))
    region: Mapped[str] = mapped_column(String(32))
    location_tag: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="provisioning")
    core: Mapped[str] = mapped_column(String(8), default="xray")
    # How many configs the node may carry; placement prefers the most spare capacity.
    capacity_score: Mapped[int] = mapped_column(Integer, default=100)
    # The agent logs in with client_id + a secret; only the secret's slow hash is stored.
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column("jwt_secret", String(255))
    # Tokens issued before this moment are refused (rotating a leaked secret ends its sessions).
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every change to what the node must serve bumps desired_revision; a successful sync
    # records the revision it applied. applied < desired means the node lags.
    desired_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What clients need to reach the node, and what the jobs hand to the xray role: a list of
    # {"profile", "port", "path"} (control_api.links.PROFILES) and the TLS certificate's name.
    inbounds: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    tls_server_name: Mapped[str | None] = mapped_column(String(253))
    # A self-signed certificate (labs and tests): links then ask clients to skip verification.
    tls_self_signed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Health (services/node_health.py): the uplink's size for the bandwidth ratio (no bandwidth
    # threshold without it), and per-node overrides of the fleet's thresholds (THRESHOLD_KEYS).
    bandwidth_capacity_mbps: Mapped[int | None] = mapped_column(Integer)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict, server_default=text("'{}'"))
    # The open alert: {threshold: {"value", "limit", "since"}} for every breached threshold ({} = none),
    # and since when the node has been alerting.
    alert_breached: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict, server_default=text("'{}'"))
    alert_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Drained with "now": configs moved off it get no grace window on it.
    drain_immediate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The revision node_served_users describes (what the node serves since its last successful sync);
    # NULL or unlike applied_revision: unknown, so the next sync sends the full set (services/deltas.py).
    served_snapshot_revision: Mapped[int | None] = mapped_column(BigInteger)
    # The last heartbeat's metrics, also kept in node_metrics: written by the heartbeat's own UPDATE of this row,
    # so listing the fleet reads no metric history (services/nodes.py). NULL until the first heartbeat.
    last_metrics_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_cpu: Mapped[float | None] = mapped_column(Float)
    last_mem: Mapped[float | None] = mapped_column(Float)
    last_bandwidth_in: Mapped[int | None] = mapped_column(BigInteger)
    last_bandwidth_out: Mapped[int | None] = mapped_column(BigInteger)
    last_latency_ms: Mapped[float | None] = mapped_column(Float)


# Each heartbeat metric (a NodeMetric column) and the Node column that keeps the last heartbeat's value.
LAST_METRIC_COLUMNS = {
    "cpu": "last_cpu",
    "mem": "last_mem",
    "bandwidth_in": "last_bandwidth_in",
    "bandwidth_out": "last_bandwidth_out",
    "latency_ms": "last_latency_ms",
}


class NodeServedUser(Base):
    """One user a node serves as of its last successful sync: the base the next delta is computed from.

    A digest of the user's identity (UUID, protocol, level), not the UUID: the UUIDs live in
    user_configs only."""

    __tablename__ = "node_served_users"

    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32))


class NodeMetric(Base):
    __tablename__ = "node_metrics"
    # (node_id, timestamp): the health window's "last N heartbeats of a node"; timestamp: retention. The newest
    # row's values are kept on the node (Node.last_metrics_at, ...), so no index finds it.
    __table_args__ = (Index(None, "node_id", "timestamp"), Index(None, "timestamp"))

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    cpu: Mapped[float] = mapped_column(Float)
    mem: Mapped[float] = mapped_column(Float)
    bandwidth_in: Mapped[int] = mapped_column(BigInteger)
    bandwidth_out: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncRun(Base):
    """One playbook run that brought a node to a revision (or failed to)."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(enum_check("status", SYNC_STATUSES), name="status"),
        Index(None, "node_id", "started_at"),
        Index(None, "node_id", "id"),  # each node's newest run in one index probe (nodes.latest_rows_by_node)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running")
    rc: Mapped[int | None] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
