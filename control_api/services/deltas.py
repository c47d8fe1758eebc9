"""Delta syncs: a sync sends a node the change since the revision it applied last, not its whole user set.

    revision = lock_desired_revision(session, node_id)   # in the sync's read transaction
    payload = plan_sync(session, node)
    ... run the playbook with payload.extravars ...
    record_served(session, node_id, payload, revision) # after the node confirmed it

What the node served after its last successful sync is kept per user (node_served_users: email and a digest
of UUID, protocol and level) with the revision it belongs to (nodes.served_snapshot_revision). The delta
between that and the desired set is the users to add (new, or changed under the same email) and the emails
to remove, sent with that revision as its base. The users module applies a delta only onto exactly that
base: its own recorded state must be that revision, and the config and shape on disk the ones it wrote
(roles/xray/README.md, "Delta syncs"); otherwise it changes nothing and asks for the full set, which the
sync then sends at once (jobs/sync.py).

A full set is sent when the base is unknown: no snapshot, or one for another revision than applied_revision
(a node that acknowledged a revision itself, an upgrade from before delta syncs), when the caller asks for
one (provisioning, which may change the shape), or when the delta would be larger than the set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ..models import Node, NodeServedUser
from .identity_pool import desired_pool_users
from .revisions import desired_configs, desired_user_list

# Rows per INSERT when a full set replaces a snapshot (100,000 users: 20 statements).
_INSERT_BATCH = 5000


def user_digest(user: dict[str, Any]) -> str:
    """What identifies a served user besides its email: a change of any of these replaces it on the node."""
    material = f"{user['id'].lower()}|{user['protocol']}|{user.get('level', 0)}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass
class SyncPayload:
    """What one sync sends a node: the full set (full=True) or the change from base_revision."""

    full: bool
    users: list[dict[str, Any]]  # the whole desired set with full=True; empty for a delta (never built)
    add: list[dict[str, Any]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    base_revision: int | None = None
    reason: str = ""  # why a full set (for the log)
    # With a full set: the emails the last snapshot had the node serve that are no longer wanted. The
    # node removes them from the running core too, even if its config file (restored from an old copy)
    # does not list them.
    also_remove: list[str] = field(default_factory=list)
    # The warm pool identities (pool-<id>) the node serves once this payload is applied (identity_pool.mark_ready).
    pool_emails: list[str] = field(default_factory=list)

    def extravars(self) -> dict[str, Any]:
        """The playbook's variables, as JSON text: Ansible takes ~20 s to load a 100,000-element list variable
        (it wraps every value), and well under one to load the same as one string."""
        if self.full:
            return {
                "xray_users_json": json.dumps(self.users),
                "xray_users_also_remove_json": json.dumps(self.also_remove),
            }
        delta = {"base_revision": self.base_revision, "add": self.add, "remove": self.remove}
        return {"xray_users_delta_json": json.dumps(delta)}

    @property
    def size(self) -> int:
        """Users this run moves to the node."""
        return len(self.users) if self.full else len(self.add) + len(self.remove)


def plan_sync(session: Session, node: Node, full: bool = False) -> SyncPayload:
    """The payload that brings NODE from what it served after its last sync to what it must serve now, read in
    the caller's transaction after revisions.lock_desired_revision.

    A delta compares the configs' rows with the snapshot as plain tuples and builds a user only for what it
    sends: the whole set as users (a dict each) is built for a full payload alone."""
    if full:
        return full_payload(session, node.id, "asked for")
    if node.served_snapshot_revision is None or node.served_snapshot_revision != node.applied_revision:
        return full_payload(session, node.id, "what the node serves is not known")
    # Core rows, not the ORM's: at 100,000 users the ORM's row processing cost more than the comparison.
    connection = session.connection()
    snapshot = select(NodeServedUser.email, NodeServedUser.digest).where(NodeServedUser.node_id == node.id)
    served: dict[str, str] = {email: digest for email, digest in connection.execute(snapshot)}
    add, wanted, sha256 = [], 0, hashlib.sha256
    for id_, uuid, protocol in connection.execute(desired_configs(node.id)):
        email = f"cfg-{id_}"
        wanted += 1
        # user_digest of a config's user (level 0), inlined: it runs once per user the node serves.
        if served.pop(email, None) != sha256(f"{uuid.lower()}|{protocol}|0".encode()).hexdigest()[:32]:
            add.append({"email": email, "id": uuid, "protocol": protocol, "level": 0})
    pool = desired_pool_users(session, node.id)
    for user in pool:
        if served.pop(user["email"], None) != user_digest(user):
            add.append(user)
    remove = sorted(served)  # what is left of the snapshot is no longer wanted
    if len(add) + len(remove) > wanted + len(pool):
        return full_payload(session, node.id, "the change is larger than the set")
    return SyncPayload(
        full=False,
        users=[],
        add=add,
        remove=remove,
        base_revision=node.applied_revision,
        pool_emails=[user["email"] for user in pool],
    )


def full_payload(session: Session, node_id: int, reason: str) -> SyncPayload:
    """NODE_ID's whole desired set (after revisions.lock_desired_revision in the caller's transaction), with the
    emails its last snapshot had it serve that are no longer wanted."""
    users = desired_user_list(session, node_id)
    wanted = {user["email"] for user in users}
    served = session.scalars(select(NodeServedUser.email).where(NodeServedUser.node_id == node_id))
    return SyncPayload(
        full=True,
        users=users,
        reason=reason,
        also_remove=sorted(email for email in served if email not in wanted),
        pool_emails=[user["email"] for user in users if not user["email"].startswith("cfg-")],
    )


def record_served(session: Session, node_id: int, payload: SyncPayload, revision: int) -> None:
    """The node now serves PAYLOAD's result at REVISION: the snapshot the next delta starts from."""
    rows = NodeServedUser.__table__
    if payload.full:
        session.execute(delete(rows).where(rows.c.node_id == node_id))
        changed = payload.users
    else:
        gone = payload.remove + [user["email"] for user in payload.add]
        for start in range(0, len(gone), _INSERT_BATCH):
            session.execute(
                delete(rows).where(rows.c.node_id == node_id, rows.c.email.in_(gone[start : start + _INSERT_BATCH]))
            )
        changed = payload.add
    values = [{"node_id": node_id, "email": user["email"], "digest": user_digest(user)} for user in changed]
    for start in range(0, len(values), _INSERT_BATCH):
        session.execute(insert(rows), values[start : start + _INSERT_BATCH])
    session.execute(
        Node.__table__.update().where(Node.__table__.c.id == node_id).values(served_snapshot_revision=revision)
    )


def forget_served(session: Session, node_id: int) -> None:
    """What NODE_ID serves is unknown from now on (its next sync sends the full set)."""
    session.execute(Node.__table__.update().where(Node.__table__.c.id == node_id).values(served_snapshot_revision=None))
