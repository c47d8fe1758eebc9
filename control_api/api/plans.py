from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.common import PageQuery
from ..schemas.plans import PlanIn, PlanList, PlanOut, PlanPatch, PlanQuery
from ..security import current_principal, require
from ..services import plans as plan_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("plans", __name__, url_prefix=f"{API_PREFIX}/plans", tag="Plans")


class PlanListQuery(PlanQuery, PageQuery):
    pass


@bp.post("")
@require("admin")
@bp.input(PlanIn, arg_name="data")
@bp.output(PlanOut, status_code=201)
@bp.doc(summary="Create a plan", security=BEARER, responses={409: "A plan with that name exists (plan_name_taken)"})
def create_plan(data: dict):
    return plan_service.create_plan(db_session(), current_principal(), data)


@bp.get("/<int:plan_id>")
@require("admin", "bot")
@bp.output(PlanOut)
@bp.doc(summary="One plan", security=BEARER)
def get_plan(plan_id: int):
    return plan_service.get_plan(db_session(), plan_id)


@bp.patch("/<int:plan_id>")
@require("admin")
@bp.input(PlanPatch, arg_name="changes")
@bp.output(PlanOut)
@bp.doc(summary="Change a plan", security=BEARER, responses={409: "A plan with that name exists (plan_name_taken)"})
def update_plan(plan_id: int, changes: dict):
    return plan_service.update_plan(db_session(), current_principal(), plan_id, changes)


@bp.delete("/<int:plan_id>")
@require("admin")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete an unused plan", security=BEARER, responses={409: "The plan is in use; archive it (plan_in_use)"}
)
def delete_plan(plan_id: int) -> tuple[str, int]:
    plan_service.delete_plan(db_session(), current_principal(), plan_id)
    return "", 204


@bp.get("")
@require("admin", "bot")
@bp.input(PlanListQuery, location="query", arg_name="filters")
@bp.output(PlanList)
@bp.doc(summary="List plans for sale", security=BEARER)
def list_plans(filters: dict) -> dict:
    return plan_service.list_plans(db_session(), current_principal(), filters)
