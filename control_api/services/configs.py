"""User configs on nodes: assignment with placement, reassignment, suspend and resume, and their links.

Every change to what a node serves bumps that node's desired_revision in the same transaction, and
the caller's DISPATCH is called after the commit for each node touched (revisions.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict, InvalidInput, NotFound
from ..links import PROFILES, Client, Inbound, build_link
from ..models import Node, Plan, User, UserConfig, columns_of, utcnow
from . import audit, devices, identity_pool, notifications, webhooks
from .lookup import get_or_404
from .placement import place
from .revisions import Dispatch, bump, commit_and_dispatch, serving_nodes


def new_config(
    session: Session,
    user: User,
    node: Node | None,
    kind: str,
    data_limit_mb: int,
    days: int,
    plan: Plan | None = None,
    protocol: str = "vless",
) -> UserConfig:
    """A pending config on NODE (flushed, so it has an id); the caller bumps the node and commits.

    It adopts a ready identity of NODE's warm pool when there is one (identity_pool.take): the node serves its
    UUID already, so the link works before the caller answers, and the sync the caller's bump queues renames it
    to the config's email. Otherwise (no node, an empty pool) a fresh UUID waits for that sync.
    NODE None: the config waits unplaced (no node had room); the sweep places it (lifecycle.py)."""
    now = utcnow()
    pooled = identity_pool.take(session, node.id, protocol, now) if node is not None else None
    config = UserConfig(
        user_id=user.id,
        node_id=node.id if node is not None else None,
        plan_id=plan.id if plan is not None else None,
        uuid=pooled.uuid if pooled is not None else str(uuid.uuid4()),
        protocol=protocol,
        kind=kind,
        status="pending",
        data_limit_mb=data_limit_mb,
        expires_at=now + timedelta(days=days),
    )
    session.add(config)
    session.flush()
    if pooled is not None:
        pooled.adopted_config_id = config.id
    webhooks.emit(session, "config.created", webhooks.config_payload(config))  # every way a config is made
    return config


def assign(
    session: Session, actor: Principal, user_id: int, data: dict[str, Any], dispatch: Dispatch
) -> dict[str, Any]:
    """Create a config for the user (config_id absent) or move an existing one to another node; its view."""
    return config_view(session, _assign(session, actor, user_id, data, dispatch), admin=True)


def _assign(session: Session, actor: Principal, user_id: int, data: dict[str, Any], dispatch: Dispatch) -> UserConfig:
    if data.get("config_id") is None and data.get("plan_id") is None:
        raise InvalidInput("Send plan_id for a new config, or config_id to move one.", details={"json": {}})
    user = get_or_404(session, User, user_id, "User")
    if user.is_banned:
        raise Conflict(f"User {user_id} is banned: {user.ban_reason}", code="user_banned")
    if data.get("config_id") is not None:
        return _reassign(session, actor, user, data, dispatch)
    plan = get_or_404(session, Plan, data["plan_id"], "Plan")
    node = get_or_404(session, Node, data["node_id"], "Node") if data.get("node_id") else place(session, plan)
    config = new_config(
        session, user, node, "full", plan.data_limit_mb, plan.duration_days, plan=plan, protocol=data["protocol"]
    )
    touched = bump(session, [node.id])
    audit.record(session, actor, "config.create", config_id=config.id, user_id=user.id, node_id=node.id)
    commit_and_dispatch(session, touched, dispatch)
    return config


def _reassign(session: Session, actor: Principal, user: User, data: dict[str, Any], dispatch: Dispatch) -> UserConfig:
    config = session.get(UserConfig, data["config_id"], with_for_update=True)
    if config is None or config.user_id != user.id:
        raise NotFound(f"User {user.id} has no config {data['config_id']}.")
    plan = session.get(Plan, config.plan_id) if config.plan_id else None
    if data.get("node_id"):
        target = get_or_404(session, Node, data["node_id"], "Node")
    elif plan is not None and plan.is_constant_ip:
        raise Conflict(
            "A constant-IP config stays on its node; name the new node_id to move it.", code="constant_ip_pinned"
        )
    elif plan is not None:
        target = place(session, plan, exclude_node_id=config.node_id)
    else:
        raise Conflict("This config has no plan to place it by; name the node_id.", code="node_required")
    if target.id == config.node_id:
        return config
    old_nodes = serving_nodes([config])
    old_node_id, config.node_id = config.node_id, target.id
    # An admin's move ends any automatic one: the config is served by the named node only.
    config.previous_node_id = config.moved_at_revision = config.migration_grace_seconds = None
    config.migration_live_at = config.previous_until = None
    if config.status == "active":
        config.status = "pending"
    touched = bump(session, [*old_nodes, target.id])
    audit.record(session, actor, "config.move", config_id=config.id, from_node_id=old_node_id, to_node_id=target.id)
    # The customer's link names the node's address: tell them, with the new links.
    notifications.notify(
        session,
        user.id,
        "migrated",
        f"migrated:cfg-{config.id}:{utcnow():%Y%m%d%H%M%S%f}",
        config_id=config.id,
        node_name=target.name,
        location_tag=target.location_tag,
        links=share_links(target, config),
    )
    commit_and_dispatch(session, touched, dispatch)
    return config


def set_suspended(
    session: Session, actor: Principal, config_id: int, suspended: bool, dispatch: Dispatch
) -> dict[str, Any]:
    """Suspend (the next sync removes it from its node) or resume a config; its view."""
    config = session.get(UserConfig, config_id, with_for_update=True)
    if config is None:
        raise NotFound(f"Config {config_id} does not exist.")
    allowed_from = ("pending", "active") if suspended else ("suspended",)
    if config.status not in allowed_from:
        verb = "suspend" if suspended else "resume"
        raise Conflict(f"Cannot {verb} a config that is {config.status}.", code="invalid_transition")
    if not suspended:
        user = session.get_one(User, config.user_id)
        if user.is_banned:
            raise Conflict(f"User {user.id} is banned; unban them first.", code="user_banned")
    config.status, config.suspend_reason = ("suspended", "admin") if suspended else ("pending", None)
    touched = bump(session, serving_nodes([config]))
    audit.record(session, actor, "config.suspend" if suspended else "config.resume", config_id=config.id)
    if suspended:
        webhooks.emit(session, "config.suspended", webhooks.config_payload(config, reason="admin"))
    commit_and_dispatch(session, touched, dispatch)
    return config_view(session, config, admin=True)


def reset_devices(session: Session, actor: Principal, config_id: int, dispatch: Dispatch) -> dict[str, Any]:
    """An admin forgets a config's devices (devices.reset): its refused addresses are served again at the next
    sync, and addresses last seen before now no longer count. Its (admin) view."""
    config = session.get(UserConfig, config_id, with_for_update=True)
    if config is None:
        raise NotFound(f"Config {config_id} does not exist.")
    removed = devices.reset(session, config, utcnow())
    touched = bump(session, serving_nodes([config]))
    audit.record(session, actor, "config.devices_reset", config_id=config.id, blocks_removed=removed)
    commit_and_dispatch(session, touched, dispatch)
    return config_view(session, config, admin=True)


def get_config(session: Session, config_id: int) -> UserConfig:
    return get_or_404(session, UserConfig, config_id, "Config")


def config_details(session: Session, config_id: int) -> dict[str, Any]:
    return config_view(session, get_config(session, config_id), admin=True)


def config_view(
    session: Session, config: UserConfig, node: Node | None = None, *, admin: bool = False, blocks: Any = None
) -> dict[str, Any]:
    """CONFIG with what is left of it and its share links (one per inbound of its node with its protocol). ADMIN:
    with the client addresses refused for it now (device_blocks; BLOCKS when the caller read them already),
    which nobody else sees."""
    if node is None and config.link_node_id is not None:
        node = session.get(Node, config.link_node_id)
    view = columns_of(config)
    if admin:
        view["device_blocks"] = (
            blocks if blocks is not None else devices.active_blocks(session, [config.id], utcnow())[config.id]
        )
    limit = config.data_limit_mb * 1024 * 1024 if config.data_limit_mb is not None else None
    left = (config.expires_at - utcnow()).total_seconds() if config.expires_at is not None else None
    return {
        **view,
        "remaining_bytes": None if limit is None else max(limit - config.used_bytes, 0),
        "remaining_seconds": None if left is None else max(int(left), 0),
        "node_name": node.name if node is not None else None,
        "location_tag": node.location_tag if node is not None else None,
        "links": share_links(node, config) if node is not None else [],
        "migration": None
        if config.previous_node_id is None
        else {
            "from_node_id": config.previous_node_id,
            "to_node_id": config.node_id,
            "live_on_target": config.migration_live_at is not None,
            "source_until": config.previous_until,
        },
    }


def list_user_configs(session: Session, user_id: int, viewer: Principal | None = None) -> list[dict[str, Any]]:
    """Every config of the user, newest first, each with its links and what is left; for an admin VIEWER with
    the addresses refused for it (config_view), which the bot never sees."""
    get_or_404(session, User, user_id, "User")
    admin = viewer is not None and viewer.kind == "admin"
    configs = session.scalars(
        select(UserConfig).where(UserConfig.user_id == user_id).order_by(UserConfig.id.desc())
    ).all()
    node_ids = {config.link_node_id for config in configs if config.link_node_id is not None}
    nodes = {node.id: node for node in session.scalars(select(Node).where(Node.id.in_(node_ids)))}
    blocks = devices.active_blocks(session, [config.id for config in configs], utcnow()) if admin else {}
    return [
        config_view(session, config, nodes.get(config.link_node_id), admin=admin, blocks=blocks.get(config.id))
        for config in configs
    ]


def share_links(node: Node, config: UserConfig) -> list[str]:
    """vless:// or vmess:// links for CONFIG on NODE; none while the node has no address or inbounds."""
    if not node.public_ip:
        return []
    links = []
    for inbound in node.inbounds or []:
        if PROFILES[inbound["profile"]].protocol != config.protocol:
            continue
        shape = Inbound(
            profile=inbound["profile"],
            port=int(inbound["port"]),
            path=inbound.get("path") or "",
            server_name=node.tls_server_name or node.name,
            allow_insecure=node.tls_self_signed,
        )
        links.append(build_link(shape, Client(config.uuid, f"{node.name}-{config.id}"), node.public_ip, core=node.core))
    return links
