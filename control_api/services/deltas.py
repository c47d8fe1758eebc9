"""Delta syncs: a sync sends a node the change since the revision it applied last, not its whole user set.

    payload = plan_sync(session, node, users)        # in the sync's read transaction
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
    users: list[dict[str, Any]]  # the whole desired set (always kept: a resync sends it)
    add: list[dict[str, Any]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    base_revision: int | None = None
    reason: str = ""  # why a full set (for the log)
    # With a full set: the emails the last snapshot had the node serve that are no longer wanted. The
    # node removes them from the running core too, even if its config file (restored from an old copy)
    # does not list them.
    also_remove: list[str] = field(default_factory=list)

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

    def as_full(self, reason: str) -> SyncPayload:
        return SyncPayload(full=True, users=self.users, reason=reason, also_remove=self.gone())

    def gone(self) -> list[str]:
        return self.also_remove if self.full else self.remove

    @property
    def size(self) -> int:
        """Users this run moves to the node."""
        return len(self.users) if self.full else len(self.add) + len(self.remove)


def plan_sync(session: Session, node: Node, users: list[dict[str, Any]], full: bool = False) -> SyncPayload:
    """The payload that brings NODE from what it served after its last sync to USERS (desired_users)."""
    rows = session.execute(select(NodeServedUser.email, NodeServedUser.digest).where(NodeServedUser.node_id == node.id))
    served = {email: digest for email, digest in rows}
    wanted = {user["email"] for user in users}
    remove = sorted(email for email in served if email not in wanted)
    if full:
        return SyncPayload(full=True, users=users, reason="asked for", also_remove=remove)
    if node.served_snapshot_revision is None or node.served_snapshot_revision != node.applied_revision:
        return SyncPayload(full=True, users=users, reason="what the node serves is not known", also_remove=remove)
    add = [user for user in users if served.get(user["email"]) != user_digest(user)]
    if len(add) + len(remove) > len(users):
        return SyncPayload(full=True, users=users, reason="the change is larger than the set", also_remove=remove)
    return SyncPayload(full=False, users=users, add=add, remove=remove, base_revision=node.applied_revision)


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
