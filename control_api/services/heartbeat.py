"""Node heartbeats: health metrics, incidents, and traffic reports stored exactly once."""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..models import Node, NodeMetric, Usage, UsageReport, UserConfig, utcnow
from . import audit

log = logging.getLogger(__name__)
CONFIG_EMAIL = re.compile(r"^cfg-([0-9]+)$")


def record_heartbeat(session: Session, node_principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    node = session.get_one(Node, node_principal.id)
    node.last_seen_at = utcnow()
    if node.status == "offline":
        node.status = "active"
    session.add(
        NodeMetric(
            node_id=node.id,
            cpu=data["cpu"],
            mem=data["mem"],
            bandwidth_in=data["bandwidth_in"],
            bandwidth_out=data["bandwidth_out"],
            latency_ms=data["latency_ms"],
        )
    )
    for incident in data["incidents"]:
        audit.record(
            session,
            node_principal,
            "node.incident",
            kind=incident["kind"],
            at=incident["at"].isoformat(),
            detail=incident["detail"],
            core_active=data["core_active"],
        )
    accepted, duplicates, unknown = [], [], 0
    for report in data["reports"]:
        stored = _store_report(session, node.id, report)
        if stored is None:
            duplicates.append(report["report_id"])
        else:
            accepted.append(report["report_id"])
            unknown += stored
    session.commit()
    if unknown:
        log.info("node %s reported traffic for %d configs that no longer exist", node.id, unknown)
    return {
        "accepted": accepted,
        "duplicates": duplicates,
        "unknown_configs": unknown,
        "desired_revision": node.desired_revision,
    }


def _store_report(session: Session, node_id: int, report: dict[str, Any]) -> int | None:
    """Store one report's usage rows; None when the report id was stored before (a retry).

    A savepoint per report: a concurrent or repeated delivery of the same id loses the race on the
    unique (node_id, report_id) constraint and is counted as a duplicate, never twice.
    """
    ids = {int(match.group(1)) for entry in report["usage"] if (match := CONFIG_EMAIL.match(entry["email"]))}
    owners = dict(session.execute(select(UserConfig.id, UserConfig.user_id).where(UserConfig.id.in_(ids))).all())
    try:
        with session.begin_nested():
            row = UsageReport(node_id=node_id, report_id=report["report_id"])
            session.add(row)
            session.flush()
            unknown = 0
            moved: dict[int, int] = {}
            for entry in report["usage"]:
                config_id = int(CONFIG_EMAIL.match(entry["email"]).group(1))
                if config_id not in owners:
                    unknown += 1
                    continue
                session.add(
                    Usage(
                        user_id=owners[config_id],
                        config_id=config_id,
                        report_id=row.id,
                        bytes_in=entry["uplink"],
                        bytes_out=entry["downlink"],
                        period_start=report["period_start"],
                        period_end=report["period_end"],
                    )
                )
                moved[config_id] = moved.get(config_id, 0) + entry["uplink"] + entry["downlink"]
            session.flush()
            totals = [{"config": config_id, "moved": n} for config_id, n in moved.items() if n]
            if totals:
                # One executemany, in SQL: concurrent reports for one config add up instead of overwriting.
                configs = UserConfig.__table__
                session.execute(
                    update(configs)
                    .where(configs.c.id == bindparam("config"))
                    .values(used_bytes=configs.c.used_bytes + bindparam("moved")),
                    totals,
                )
    except IntegrityError:
        return None
    return unknown
