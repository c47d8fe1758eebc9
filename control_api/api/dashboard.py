from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.dashboard import StatsOut
from ..security import require
from ..services import dashboard as dashboard_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("dashboard", __name__, url_prefix=f"{API_PREFIX}/dashboard", tag="Dashboard")


@bp.get("/stats")
@require("admin")
@bp.output(StatsOut)
@bp.doc(summary="Headline numbers for the admin dashboard", security=BEARER)
def stats() -> dict:
    return dashboard_service.stats(db_session())
