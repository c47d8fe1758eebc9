from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..jobs.dispatch import job_queue
from ..schemas.configs import AssignIn, ConfigOut
from ..security import current_principal, require
from ..services import configs as config_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("configs", __name__, url_prefix=API_PREFIX, tag="Configs")


@bp.post("/users/<int:user_id>/configs")
@require("admin")
@bp.input(AssignIn, arg_name="data")
@bp.output(ConfigOut, status_code=201, description="The config, created or moved; its node sync is queued")
@bp.doc(
    summary="Give a user a config on a node (placement by location and spare capacity), or move one",
    security=BEARER,
    responses={
        409: "No active node of the plan's location has room (no_node_available), a constant-IP config moved "
        "without a named node (constant_ip_pinned), a config without a plan moved without one (node_required), "
        "or a banned user (user_banned)",
    },
)
def assign_config(user_id: int, data: dict):
    return config_service.assign(db_session(), current_principal(), user_id, data, job_queue().enqueue_node_sync)


@bp.post("/configs/<int:config_id>/suspend")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(
    summary="Suspend a config; the next sync removes it from its node",
    security=BEARER,
    responses={409: "Not live (invalid_transition)"},
)
def suspend_config(config_id: int):
    return config_service.set_suspended(
        db_session(), current_principal(), config_id, True, job_queue().enqueue_node_sync
    )


@bp.post("/configs/<int:config_id>/resume")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(
    summary="Resume a suspended config",
    security=BEARER,
    responses={409: "Not suspended (invalid_transition), or the user is banned (user_banned)"},
)
def resume_config(config_id: int):
    return config_service.set_suspended(
        db_session(), current_principal(), config_id, False, job_queue().enqueue_node_sync
    )


@bp.get("/configs/<int:config_id>")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(summary="One config, with its status and share links", security=BEARER)
def get_config(config_id: int):
    return config_service.config_details(db_session(), config_id)
