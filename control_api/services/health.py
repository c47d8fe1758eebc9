"""Liveness: can we reach the database and the key-value store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..kvstore import KeyValueStore


def check(session: Session, store: KeyValueStore, embedded: bool, sweep: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the health document, whether everything is up). Failures say only "down": details go to logs.
    SWEEP says where the 5-minute sweep runs (and, in-process, when it last ran)."""
    database = store_state = "ok"
    try:
        session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "down"
        database = "down"
    try:
        store.ping()
    except Exception:  # noqa: BLE001
        store_state = "down"
    status = "ok" if database == store_state == "ok" else "degraded"
    body = {
        "status": status,
        "database": database,
        "store": f"{store_state} ({'memory' if embedded else 'redis'})",
        "sweep": sweep,
    }
    return body, status == "ok"
