from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, kv_store
from ..jobs.dispatch import sweep_status
from ..schemas.dashboard import HealthOut
from ..services import health as health_service
from .common import API_PREFIX, settings

bp = APIBlueprint("health", __name__, url_prefix=API_PREFIX, tag="Health")


@bp.get("/health")
@bp.output(HealthOut)
@bp.doc(summary="Liveness and dependency check", responses={503: "A dependency is down"})
def health():
    body, ok = health_service.check(db_session(), kv_store(), settings().embedded, sweep_status())
    return body, 200 if ok else 503
