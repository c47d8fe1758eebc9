from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.nodes import (
    HeartbeatIn,
    HeartbeatOut,
    NodeCreatedOut,
    NodeIn,
    NodeList,
    NodeOut,
    RevisionIn,
    ServedConfigsOut,
)
from ..security import current_principal, require
from ..services import heartbeat as heartbeat_service
from ..services import nodes as node_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("nodes", __name__, url_prefix=f"{API_PREFIX}/nodes", tag="Nodes")


@bp.post("")
@require("admin")
@bp.input(NodeIn, arg_name="data")
@bp.output(NodeCreatedOut, status_code=201)
@bp.doc(
    summary="Create a node and its agent credentials",
    description="The response carries client_secret once; store it in the node's agent config.",
    security=BEARER,
    responses={409: "A node with that name exists"},
)
def create_node(data: dict):
    node, secret = node_service.create_node(db_session(), current_principal(), data)
    return {**{name: getattr(node, name) for name in NodeOut().fields}, "client_secret": secret}


@bp.post("/heartbeat")
@require("node")
@bp.input(HeartbeatIn, arg_name="data")
@bp.output(HeartbeatOut)
@bp.doc(
    summary="A node agent's heartbeat: health, incidents and per-config traffic reports",
    description="Each traffic report is stored once per report_id: a retried report comes back under duplicates, "
    "and the agent may drop it from its journal either way.",
    security=BEARER,
)
def heartbeat(data: dict) -> dict:
    return heartbeat_service.record_heartbeat(db_session(), current_principal(), data)


@bp.get("/<int:node_id>")
@require("admin", "node")
@bp.output(NodeOut)
@bp.doc(summary="One node (a node agent may read only its own)", security=BEARER)
def get_node(node_id: int):
    return node_service.get_node_for(db_session(), current_principal(), node_id)


@bp.get("")
@require("admin")
@bp.output(NodeList)
@bp.doc(summary="List nodes", security=BEARER)
def list_nodes() -> dict:
    return {"items": node_service.list_nodes(db_session())}


@bp.get("/<int:node_id>/configs")
@require("admin", "node")
@bp.output(ServedConfigsOut)
@bp.doc(summary="The users a node must serve, at its desired revision (a node may read only its own)", security=BEARER)
def served_configs(node_id: int) -> dict:
    return node_service.served_configs(db_session(), current_principal(), node_id)


@bp.post("/<int:node_id>/configs/sync")
@require("node")
@bp.input(RevisionIn, arg_name="data")
@bp.output(NodeOut)
@bp.doc(
    summary="A node acknowledges the revision it now serves",
    security=BEARER,
    responses={409: "The revision is ahead of the desired one"},
)
def acknowledge_revision(node_id: int, data: dict):
    return node_service.acknowledge_revision(db_session(), current_principal(), node_id, data["revision"])
