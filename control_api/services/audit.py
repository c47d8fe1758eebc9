"""Audit rows, added to the caller's transaction so they commit (or roll back) with the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..models import AuditLog, columns_of


def record(session: Session, actor: Principal, action: str, **details: Any) -> None:
    """Record ACTION by ACTOR. Callers pass ids, names and changed fields only, never secrets."""
    session.add(AuditLog(actor_type=actor.kind, actor_id=actor.actor_id, action=action, details=details))


def search(
    session: Session,
    actor: str | None = None,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Audit rows, newest first. ACTOR is "type" or "type:id" (e.g. admin:3, tg:42 for a Telegram admin's id);
    ACTION matches a prefix ("node." finds every node action); [START, END) bounds created_at."""
    query = select(AuditLog)
    if actor:
        kind, _, actor_id = actor.partition(":")
        if kind == "tg":
            query = query.where(AuditLog.actor_type == "admin", AuditLog.actor_id == actor)
        else:
            query = query.where(AuditLog.actor_type == kind)
            if actor_id:
                query = query.where(AuditLog.actor_id == actor_id)
    if action:
        escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(AuditLog.action.like(f"{escaped}%", escape="\\"))
    if start is not None:
        query = query.where(AuditLog.created_at >= start)
    if end is not None:
        query = query.where(AuditLog.created_at < end)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditLog.id.desc()).limit(limit).offset(offset)).all()
    return {"items": [columns_of(row) for row in rows], "total": total, "limit": limit, "offset": offset}
