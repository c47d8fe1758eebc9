"""Figures over time for the console's charts: sales per day, traffic per node per day, node CPU and bandwidth.

Days are UTC days. Each function is one or two grouped queries, whatever the number of nodes or customers.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..models import CONFIG_STATUSES, Node, NodeMetric, Payment, Usage, UsageReport, UserConfig, utcnow


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """COLUMN's UTC day, as the database groups it."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _days(days: int, now: datetime) -> list[date]:
    today = now.date()
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def daily_sales(session: Session, days: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per day of the last DAYS: payments approved that day and the money they brought (as reports.py counts
    money received: approved proofs, by an admin or the auto-accept sweep)."""
    now = now or utcnow()
    since = datetime.combine(_days(days, now)[0], datetime.min.time(), tzinfo=now.tzinfo)
    day = _day(session, Payment.reviewed_at)
    rows = session.execute(
        select(day, func.count(), func.coalesce(func.sum(Payment.amount_cents), 0))
        .where(Payment.status == "approved", Payment.reviewed_at >= since)
        .group_by(day)
    ).all()
    found = {str(row[0]): (row[1], int(row[2])) for row in rows}
    return [
        {"day": d, "count": found.get(d.isoformat(), (0, 0))[0], "revenue_cents": found.get(d.isoformat(), (0, 0))[1]}
        for d in _days(days, now)
    ]


def traffic_per_node(session: Session, days: int = 14, now: datetime | None = None) -> dict[str, Any]:
    """Bytes the nodes reported per day of the last DAYS (up and down together), per node name."""
    now = now or utcnow()
    span = _days(days, now)
    since = datetime.combine(span[0], datetime.min.time(), tzinfo=now.tzinfo)
    day = _day(session, UsageReport.received_at)
    rows = session.execute(
        select(Node.name, day, func.sum(Usage.bytes_in + Usage.bytes_out))
        .join(UsageReport, UsageReport.id == Usage.report_id)
        .join(Node, Node.id == UsageReport.node_id)
        .where(UsageReport.received_at >= since)
        .group_by(Node.name, day)
    ).all()
    per_node: dict[str, dict[str, int]] = defaultdict(dict)
    for name, row_day, total in rows:
        per_node[name][str(row_day)] = int(total or 0)
    return {
        "days": span,
        "series": {name: [by_day.get(d.isoformat(), 0) for d in span] for name, by_day in sorted(per_node.items())},
    }


def node_metrics(
    session: Session, hours: int = 24, points: int = 48, now: datetime | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Per node, its heartbeats of the last HOURS averaged into at most POINTS buckets: CPU percent and the
    busier bandwidth direction in bytes per second (as health judges it)."""
    now = now or utcnow()
    since = now - timedelta(hours=hours)
    bucket = hours * 3600 / points
    rows = session.execute(
        select(
            NodeMetric.node_id, NodeMetric.timestamp, NodeMetric.cpu, NodeMetric.bandwidth_in, NodeMetric.bandwidth_out
        )
        .where(NodeMetric.timestamp >= since)
        .order_by(NodeMetric.node_id, NodeMetric.timestamp)
    ).all()
    buckets: dict[int, dict[int, list[tuple[float, int]]]] = defaultdict(lambda: defaultdict(list))
    for node_id, at, cpu, bw_in, bw_out in rows:
        index = min(int((at - since).total_seconds() // bucket), points - 1)
        buckets[node_id][index].append((cpu, max(bw_in, bw_out)))
    return {
        node_id: [
            {
                "at": since + timedelta(seconds=index * bucket),
                "cpu": sum(cpu for cpu, _ in values) / len(values),
                "bandwidth_bps": sum(bw for _, bw in values) / len(values),
            }
            for index, values in sorted(by_index.items())
        ]
        for node_id, by_index in buckets.items()
    }


def configs_by_status(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(CONFIG_STATUSES, 0)
    for status, count in session.execute(select(UserConfig.status, func.count()).group_by(UserConfig.status)):
        counts[status] = count
    return counts
