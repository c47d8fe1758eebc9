"""The location catalog: names for location tags (services/locations.py). The bot reads it; admins edit it."""

from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.common import PageQuery
from ..schemas.locations import LocationIn, LocationList, LocationOut, LocationPatch
from ..security import current_principal, require
from ..services import locations as location_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("locations", __name__, url_prefix=f"{API_PREFIX}/locations", tag="Locations")


@bp.get("")
@require("admin", "bot")
@bp.input(PageQuery, location="query", arg_name="filters")
@bp.output(LocationList)
@bp.doc(summary="The location catalog, in the shop's order (sort_order, then tag)", security=BEARER)
def list_locations(filters: dict) -> dict:
    return location_service.list_locations(db_session(), filters)


@bp.post("")
@require("admin")
@bp.input(LocationIn, arg_name="data")
@bp.output(LocationOut, status_code=201)
@bp.doc(
    summary="Add a location tag's names to the catalog; audited",
    security=BEARER,
    responses={409: "The tag is in the catalog already (location_tag_taken)"},
)
def create_location(data: dict):
    return location_service.create_location(db_session(), current_principal(), data), 201


@bp.get("/<int:location_id>")
@require("admin", "bot")
@bp.output(LocationOut)
@bp.doc(summary="One catalog entry", security=BEARER)
def get_location(location_id: int) -> dict:
    return location_service.get_location(db_session(), location_id)


@bp.patch("/<int:location_id>")
@require("admin")
@bp.input(LocationPatch, arg_name="changes")
@bp.output(LocationOut)
@bp.doc(summary="Change a location's names or order (not its tag); audited", security=BEARER)
def update_location(location_id: int, changes: dict) -> dict:
    return location_service.update_location(db_session(), current_principal(), location_id, changes)


@bp.delete("/<int:location_id>")
@require("admin")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete a catalog entry no plan or node uses; audited",
    security=BEARER,
    responses={409: "A plan (archived ones too) or a node carries the tag (location_in_use)"},
)
def delete_location(location_id: int) -> tuple[str, int]:
    location_service.delete_location(db_session(), current_principal(), location_id)
    return "", 204
