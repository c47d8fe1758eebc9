from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.notifications import AckIn, AckOut, NotificationList, NotificationQuery
from ..security import require
from ..services import notifications as notification_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("notifications", __name__, url_prefix=f"{API_PREFIX}/notifications", tag="Notifications")


@bp.get("")
@require("bot")
@bp.input(NotificationQuery, location="query", arg_name="query")
@bp.output(NotificationList)
@bp.doc(
    summary="What the bot must tell users, oldest first, until acknowledged",
    description="Kinds: approved, rejected, expiring (a paid config, EXPIRY_WARNING_DAYS before its expiry: "
    "payload days_left, once per threshold and period), quota_80, quota_100, expired, migrated, config_ready, "
    "wallet_credited, renewed, data_added. Each fact appears once; acknowledge after delivery.",
    security=BEARER,
)
def list_notifications(query: dict) -> dict:
    return {"items": notification_service.pending(db_session(), query["limit"])}


@bp.post("/ack")
@require("bot")
@bp.input(AckIn, arg_name="data")
@bp.output(AckOut)
@bp.doc(summary="Mark notifications delivered (acknowledging twice is harmless)", security=BEARER)
def acknowledge(data: dict) -> dict:
    return {"acknowledged": notification_service.acknowledge(db_session(), data["ids"])}
