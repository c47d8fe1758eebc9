"""Audit rows, added to the caller's transaction so they commit (or roll back) with the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..actors import Principal
from ..models import AuditLog


def record(session: Session, actor: Principal, action: str, **details: Any) -> None:
    """Record ACTION by ACTOR. Callers pass ids, names and changed fields only, never secrets."""
    session.add(AuditLog(actor_type=actor.kind, actor_id=actor.actor_id, action=action, details=details))
