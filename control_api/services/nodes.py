"""Node records and their agent credentials (creation here; sync and heartbeats come with jobs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, Forbidden
from ..models import Node, UserConfig
from ..security import Principal
from . import audit
from .credentials import hash_secret, new_client_id, new_secret
from .lookup import get_or_404
from .sync import desired_users


def create_node(session: Session, actor: Principal, data: dict[str, Any]) -> tuple[Node, str]:
    """Create a node and return it with its one-time agent secret."""
    if session.scalar(select(Node.id).where(Node.name == data["name"])) is not None:
        raise Conflict(f"A node named {data['name']!r} already exists.", code="node_name_taken")
    secret = new_secret()
    public_ip = data.get("public_ip")
    node = Node(
        **{**data, "public_ip": str(public_ip) if public_ip else None},
        client_id=new_client_id("node"),
        secret_hash=hash_secret(secret),
    )
    session.add(node)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"A node named {data['name']!r} already exists.", code="node_name_taken") from exc
    audit.record(session, actor, "node.create", node_id=node.id, name=node.name, region=node.region)
    session.commit()
    return node, secret


def list_nodes(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.id)))


def get_node_for(session: Session, principal: Principal, node_id: int) -> Node:
    """A node as seen by PRINCIPAL: admins see any node, a node agent only its own."""
    if principal.kind == "node" and principal.id != node_id:
        raise Forbidden("A node may only read its own record.")
    return get_or_404(session, Node, node_id, "Node")


def served_configs(session: Session, principal: Principal, node_id: int) -> dict[str, Any]:
    """What the node must serve now, with the revision it corresponds to (the node's own view)."""
    node = get_node_for(session, principal, node_id)
    revision, users = desired_users(session, node.id)
    session.commit()  # ends the read transaction and its row lock
    return {"node_id": node.id, "revision": revision, "applied_revision": node.applied_revision, "users": users}


def acknowledge_revision(session: Session, principal: Principal, node_id: int, revision: int) -> Node:
    """The node reports it serves REVISION. Applied only moves forward; at the desired revision, every
    pending config of the node is live."""
    node = get_node_for(session, principal, node_id)
    session.refresh(node, with_for_update=True)
    if revision > node.desired_revision:
        raise Conflict(
            f"Revision {revision} is ahead of the desired revision {node.desired_revision}.", code="revision_ahead"
        )
    if revision > node.applied_revision:
        node.applied_revision = revision
        if revision == node.desired_revision:
            session.execute(
                update(UserConfig)
                .where(UserConfig.node_id == node.id, UserConfig.status == "pending")
                .values(status="active")
            )
        audit.record(session, principal, "node.revision_applied", node_id=node.id, revision=revision)
    session.commit()
    return node
