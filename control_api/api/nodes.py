from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, kv_store
from ..jobs.dispatch import job_queue
from ..schemas.auth import TokenOut
from ..schemas.nodes import (
    HeartbeatIn,
    HeartbeatOut,
    NodeCreatedOut,
    NodeIn,
    NodeList,
    NodeOut,
    NodeQuery,
    NodeRegisterIn,
    ProvisionOut,
    RevisionIn,
    ServedConfigsOut,
)
from ..security import access_token, current_principal, require
from ..services import auth as auth_service
from ..services import heartbeat as heartbeat_service
from ..services import nodes as node_service
from .common import ACTING_ADMIN_422, API_PREFIX, BEARER, client_ip, settings

bp = APIBlueprint("nodes", __name__, url_prefix=f"{API_PREFIX}/nodes", tag="Nodes")


@bp.post("")
@require("admin")
@bp.input(NodeIn, arg_name="data")
@bp.output(NodeCreatedOut, status_code=201)
@bp.doc(
    summary="Create a node and its agent credentials",
    description="The response carries client_secret once; store it in the node's agent config.",
    security=BEARER,
    responses={
        409: "A node with that name exists (node_name_taken)",
        422: "The body does not match the schema (validation_error), or two inbounds share a port (details on "
        "inbounds: JSON Schema cannot say that a property is unique across array items)",
    },
)
def create_node(data: dict):
    return node_service.create_node(db_session(), current_principal(), data, settings().node_stale_after_seconds)


@bp.post("/register")
@bp.input(NodeRegisterIn, arg_name="credentials")
@bp.output(TokenOut)
@bp.doc(
    summary="A node agent logs in: client id + secret for a JWT",
    description="The same rules as POST /auth/token with kind=node (rate limits per address and per account).",
    responses={401: "Invalid credentials", 429: "Too many attempts (rate_limited); see Retry-After"},
)
def register(credentials: dict) -> dict:
    principal = auth_service.log_in(db_session(), kv_store(), settings(), {"kind": "node", **credentials}, client_ip())
    return access_token(principal, settings().access_token_ttl_seconds)


@bp.post("/<int:node_id>/provision")
@require("admin")
@bp.output(ProvisionOut, status_code=202)
@bp.doc(
    summary="Provision a node: base system, core, users and agent (fresh agent credentials)",
    description="Runs playbooks/provision_node.yml through a job. queued is false when a provisioning job "
    "for the node is already waiting (the two are coalesced). Follow the result in GET /nodes/{id} (last_sync).",
    security=BEARER,
    responses={
        409: "The node is disabled (node_disabled), or RAYFLEET_NODE_API_URL is unset or http:// without "
        "RAYFLEET_NODE_API_ALLOW_INSECURE_HTTP (node_api_url_unusable)",
        503: "The job queue (Redis) is unavailable; try again",
    },
)
def provision(node_id: int) -> dict:
    queued = node_service.request_provisioning(
        db_session(), current_principal(), node_id, job_queue().enqueue_provision, settings()
    )
    return {"node_id": node_id, "queued": queued}


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
    return node_service.get_node(db_session(), current_principal(), node_id, settings().node_stale_after_seconds)


@bp.get("")
@require("admin", "bot")
@bp.input(NodeQuery, location="query", arg_name="query")
@bp.output(NodeList)
@bp.doc(
    summary="List nodes with health, the last heartbeat and the last sync",
    description="The bot may list them for a Telegram admin (is_admin) named by acting_telegram_id.",
    security=BEARER,
    responses={403: "The bot acted for someone who is not an admin (not_an_admin)", 422: ACTING_ADMIN_422},
)
def list_nodes(query: dict) -> dict:
    items = node_service.list_nodes(
        db_session(), current_principal(), query.get("acting_telegram_id"), settings().node_stale_after_seconds
    )
    return {"items": items}


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
    responses={409: "The revision is ahead of the desired one (revision_ahead)"},
)
def acknowledge_revision(node_id: int, data: dict):
    return node_service.acknowledge_revision(
        db_session(), current_principal(), node_id, data["revision"], settings().node_stale_after_seconds
    )
