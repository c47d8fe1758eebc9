from __future__ import annotations

from apiflask import APIBlueprint
from sqlalchemy import text

from ..extensions import db_session, kv_store
from ..schemas.dashboard import HealthOut
from .common import API_PREFIX, settings

bp = APIBlueprint("health", __name__, url_prefix=API_PREFIX, tag="Health")


@bp.get("/health")
@bp.output(HealthOut)
@bp.doc(summary="Liveness and dependency check", responses={503: "A dependency is down"})
def health():
    database = store = "ok"
    try:
        db_session().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "down"; details go to logs, not to callers
        database = "down"
    try:
        kv_store().ping()
    except Exception:  # noqa: BLE001
        store = "down"
    status = "ok" if database == store == "ok" else "degraded"
    body = {
        "status": status,
        "database": database,
        "store": f"{store} ({'memory' if settings().embedded else 'redis'})",
    }
    return body, 200 if status == "ok" else 503
