from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.dashboard import SalesOut, SalesQuery, StatsOut
from ..security import require
from ..services import dashboard as dashboard_service
from ..services import reports
from .common import API_PREFIX, BEARER

bp = APIBlueprint("dashboard", __name__, url_prefix=f"{API_PREFIX}/dashboard", tag="Dashboard")


@bp.get("/stats")
@require("admin")
@bp.output(StatsOut)
@bp.doc(summary="Headline numbers for the admin dashboard", security=BEARER)
def stats() -> dict:
    return dashboard_service.stats(db_session())


@bp.get("/sales")
@require("admin")
@bp.input(SalesQuery, location="query", arg_name="query")
@bp.output(SalesOut)
@bp.doc(
    summary="Sales figures of a time window",
    description="Money received by purpose, plans sold, new customers, trials and conversions in [from, to); "
    "pending payments and alerting nodes as of now. The daily report in the admin channel has the same figures.",
    security=BEARER,
    responses={422: "`from` not before `to`, or a window over 366 days (invalid_window)"},
)
def sales(query: dict) -> dict:
    span = reports.window(query.get("start"), query.get("end"))
    return reports.sales_report(db_session(), span)
