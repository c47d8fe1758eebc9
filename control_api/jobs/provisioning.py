"""The worker's side of provisioning a node: fresh agent credentials before the run, activation after it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from ..actors import SYSTEM
from ..models import Node, utcnow
from ..services import audit
from ..services.credentials import hash_secret, new_secret


def rotate_agent_secret(session_factory: Callable[[], Session], node_id: int) -> tuple[str, str]:
    """Give NODE_ID's agent a new secret (only its hash is stored); return (client_id, secret)."""
    secret = new_secret()
    with session_factory() as session, session.begin():
        node = session.get(Node, node_id)
        if node is None:
            raise LookupError(f"node {node_id} does not exist")
        node.secret_hash = hash_secret(secret)
        node.secret_rotated_at = utcnow()  # the old agent's tokens end with its secret
        audit.record(session, SYSTEM, "node.agent_secret_rotated", node_id=node_id)
        return node.client_id, secret


def mark_provisioned(session_factory: Callable[[], Session], node_id: int) -> None:
    """A node that was provisioning (or offline) starts taking configs; draining/disabled stay as they are."""
    with session_factory() as session, session.begin():
        node = session.get(Node, node_id, with_for_update=True)
        if node is not None and node.status in ("provisioning", "offline"):
            audit.record(session, SYSTEM, "node.activated", node_id=node_id, was=node.status)
            node.status = "active"
