from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response

from ..extensions import db_session, kv_store
from ..jobs.dispatch import job_queue
from ..schemas.auth import TokenOut
from ..schemas.nodes import (
    DrainIn,
    HeartbeatIn,
    HeartbeatOut,
    NodeAlertList,
    NodeCreatedOut,
    NodeIn,
    NodeList,
    NodeOut,
    NodePatchIn,
    NodeQuery,
    NodeRegisterIn,
    ProvisionOut,
    RevisionIn,
    ServedConfigsOut,
)
from ..security import access_token, current_principal, require
from ..services import alerts as alert_service
from ..services import auth as auth_service
from ..services import heartbeat as heartbeat_service
from ..services import nodes as node_service
from ..services.devices import DevicePolicy
from .common import ACTING_ADMIN_422, API_PREFIX, BEARER, client_ip, dumped, health_policy, settings

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
    "and the agent may drop it from its journal either way. A config the reports bring to its data cap is "
    "suspended (quota) and the node's configs past their expiry are expired in the same transaction; the "
    "node's sync is queued at once (desired_revision in the answer is the bumped one). devices: per config, the "
    "client addresses it was used from; over the plan's max_devices the newest are refused for "
    "DEVICE_BLOCK_COOLDOWN_SECONDS (the sync carries them) and the customer is told (device_limit). Entries for "
    "configs the node does not serve are ignored (ignored_devices).",
    security=BEARER,
)
def heartbeat(data: dict) -> dict:
    queue = job_queue()
    return heartbeat_service.record_heartbeat(
        db_session(),
        current_principal(),
        data,
        health_policy(),
        queue.enqueue_migration,
        queue.enqueue_node_sync,
        DevicePolicy.from_settings(settings()),
        settings().quota_watch_mb * 1024 * 1024,
    )


@bp.get("/alerts")
@require("admin", "bot")
@bp.input(NodeQuery, location="query", arg_name="query")
@bp.output(NodeAlertList)
@bp.doc(
    summary="Alerting and draining nodes: breached thresholds, configs served, and the action taken",
    description="A threshold is breached after HEALTH_WINDOW_HEARTBEATS heartbeats over its limit and clears after "
    "as many under it; dark = no heartbeat for HEALTH_DARK_AFTER_SECONDS. Actions: migrating (dynamic configs "
    "moving or about to), no_healthy_node (none of their tier can take them now), constant_ip_pinned (they stay; "
    "an admin decides). The bot may read them for a Telegram admin named by acting_telegram_id.",
    security=BEARER,
    responses={403: "The bot acted for someone who is not an admin (not_an_admin)", 422: ACTING_ADMIN_422},
)
def alerts(query: dict) -> dict:
    items = alert_service.list_alerts(
        db_session(), current_principal(), query.get("acting_telegram_id"), health_policy()
    )
    return {"items": items}


@bp.patch("/<int:node_id>")
@require("admin")
@bp.input(NodePatchIn, arg_name="data")
@bp.output(NodeOut)
@bp.doc(
    summary="Change a node's capacity, uplink size (bandwidth_capacity_mbps) or threshold overrides",
    security=BEARER,
)
def update_node(node_id: int, data: dict):
    return node_service.update_node(
        db_session(), current_principal(), node_id, data, settings().node_stale_after_seconds
    )


@bp.post("/<int:node_id>/drain")
@require("admin")
@bp.input(DrainIn, arg_name="data")
@bp.output(NodeOut)
@bp.doc(
    summary="Drain a node: no new sales on it, and its dynamic configs move away (make-before-break)",
    description="Each config is added to a healthy node of its tier first and its customer told the new links; "
    "the node keeps serving it for MIGRATION_GRACE_SECONDS (none with now=true). Constant-IP configs stay.",
    security=BEARER,
    responses={409: "The node is provisioning or disabled (node_not_drainable)"},
)
def drain(node_id: int, data: dict):
    return node_service.drain_node(
        db_session(),
        current_principal(),
        node_id,
        data["now"],
        job_queue().enqueue_migration,
        settings().node_stale_after_seconds,
    )


@bp.post("/<int:node_id>/undrain")
@require("admin")
@bp.output(NodeOut)
@bp.doc(
    summary="Take a drained node back into sales (configs already moved stay where they are)",
    security=BEARER,
    responses={409: "The node is not draining (node_not_draining)"},
)
def undrain(node_id: int):
    return node_service.undrain_node(db_session(), current_principal(), node_id, settings().node_stale_after_seconds)


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
def list_nodes(query: dict) -> Response:
    items = node_service.list_nodes(
        db_session(), current_principal(), query.get("acting_telegram_id"), settings().node_stale_after_seconds
    )
    return dumped(NodeList, {"items": items})


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
