"""The warm identity pool (issue 19, item 4): a link that works at the moment of purchase.

Each active node keeps IDENTITY_POOL_SIZE identities per protocol its inbounds sell (0: none): random UUIDs
the node already serves under the email `pool-<id>` (models/identity_pool.py), known to no customer and
carrying no plan.

- refill: the sync job, before it reads the desired users, adds the missing identities (and retires surplus
  ones) in its own transaction, bumping the node when anything changed; that same sync serves them.
- mark_ready: a successful sync records the revision that served each pool identity it carried.
- take: a sale on the node (configs.new_config) adopts one that is ready (served by a revision the node
  applied), under SELECT ... FOR UPDATE SKIP LOCKED, so two concurrent sales never get the same one. The config
  carries its UUID, so the link is live before the API answers; the sale's own revision bump lets the next sync
  rename `pool-<id>` to `cfg-<id>` (the core_users module keeps open connections across the rename) and refill.
  Nothing ready (empty pool, another protocol, a node without pool): the config gets a fresh UUID and waits for
  the sync, as before.
- settle_usage: the heartbeat's traffic for `pool-<id>`. On an identity nobody adopted it retires the
  identity (it is never handed out; the node drops it at the next sync) and is billed to nobody; on an
  adopted one it is the customer's when its period started at or after the adoption, else dropped.

Pool identities are never in an API answer, a link, a webhook, an audit row or a log line: only
revisions.desired_users hands them to the sync job (the playbook's users, a no_log value).
"""

from __future__ import annotations

import logging
import re
import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..links import PROFILES
from ..models import Node, PoolIdentity, utcnow

log = logging.getLogger(__name__)

POOL_EMAIL = re.compile(r"^pool-([0-9]{1,18})$")
DEFAULT_POOL_SIZE = 20
# A node keeps a pool while it is being provisioned (so the provision run serves it) and while active.
POOL_NODE_STATUSES = ("provisioning", "active")


def node_protocols(node: Node) -> list[str]:
    """The protocols NODE's inbounds sell (a pool of each)."""
    return sorted({PROFILES[inbound["profile"]].protocol for inbound in node.inbounds or [] if inbound.get("profile")})


def _available(node_id: int) -> list[Any]:
    return [PoolIdentity.node_id == node_id, PoolIdentity.adopted_at.is_(None), PoolIdentity.retired_at.is_(None)]


def has_pool(session: Session, node_id: int) -> bool:
    """Whether NODE_ID has unadopted pool identities (a pool to shrink when the size went down to 0)."""
    return session.scalar(select(PoolIdentity.id).where(*_available(node_id)).limit(1)) is not None


def refill(session: Session, node_id: int, size: int, now: datetime | None = None) -> int:
    """Bring NODE_ID's pool to SIZE identities per protocol it sells (only while the node is provisioning or active:
    a draining or disabled node keeps what it has, unused by placement; SIZE 0 retires
    every unadopted one), bumping the node's revision when anything changed. Returns how many identities were
    added or retired. The caller commits."""
    now = now or utcnow()
    node = session.scalar(select(Node).where(Node.id == node_id).with_for_update())
    if node is None:
        return 0
    if size > 0 and node.status not in POOL_NODE_STATUSES:
        return 0
    wanted = {protocol: max(size, 0) for protocol in node_protocols(node)}
    have: dict[str, list[PoolIdentity]] = {}
    # SKIP LOCKED: a row a concurrent sale is adopting (take) is no longer available; waiting for it while
    # holding the node's lock would deadlock with that sale's revision bump.
    available = select(PoolIdentity).where(*_available(node_id)).order_by(PoolIdentity.id)
    for identity in session.scalars(available.with_for_update(skip_locked=True)):
        have.setdefault(identity.protocol, []).append(identity)
    changed = 0
    for protocol, identities in have.items():
        for identity in identities[wanted.get(protocol, 0) :]:  # surplus, or a protocol no longer sold
            identity.retired_at = now
            changed += 1
    for protocol, count in wanted.items():
        for _ in range(count - len(have.get(protocol, []))):
            session.add(PoolIdentity(node_id=node_id, uuid=str(uuid_module.uuid4()), protocol=protocol, created_at=now))
            changed += 1
    if changed:
        node.desired_revision += 1
        session.flush()
    return changed


def take(session: Session, node_id: int, protocol: str, now: datetime) -> PoolIdentity | None:
    """Adopt one ready identity of NODE_ID for PROTOCOL (marked adopted at NOW; the caller sets
    adopted_config_id once the config has an id), or None when the pool has none. Concurrent callers skip each
    other's locked rows, so an identity is handed out once."""
    applied = select(Node.applied_revision).where(Node.id == node_id).scalar_subquery()
    identity = session.scalar(
        select(PoolIdentity)
        .where(
            *_available(node_id),
            PoolIdentity.protocol == protocol,
            PoolIdentity.ready_revision.is_not(None),
            PoolIdentity.ready_revision <= applied,
        )
        .order_by(PoolIdentity.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if identity is None:
        return None
    identity.adopted_at = now
    return identity


def desired_pool_users(session: Session, node_id: int) -> list[dict[str, Any]]:
    """The node users of NODE_ID's unadopted, unretired pool identities (email pool-<id>), by id."""
    rows = session.execute(
        select(PoolIdentity.id, PoolIdentity.uuid, PoolIdentity.protocol)
        .where(*_available(node_id))
        .order_by(PoolIdentity.id)
    )
    return [{"email": f"pool-{id_}", "id": uuid, "protocol": protocol, "level": 0} for id_, uuid, protocol in rows]


def pool_ids(emails: Iterable[str]) -> list[int]:
    """The pool identity ids among node user EMAILS."""
    return [int(match.group(1)) for email in emails if (match := POOL_EMAIL.match(email))]


def mark_ready(session: Session, node_id: int, revision: int, emails: Iterable[str]) -> None:
    """A sync at REVISION served EMAILS on NODE_ID: the pool identities among them are ready from then on."""
    ids = pool_ids(emails)
    if ids:
        session.execute(
            update(PoolIdentity)
            .where(PoolIdentity.id.in_(ids), PoolIdentity.node_id == node_id, PoolIdentity.ready_revision.is_(None))
            .values(ready_revision=revision),
            execution_options={"synchronize_session": False},
        )


@dataclass(frozen=True)
class SettledUsage:
    usage: list[dict[str, Any]]  # the report's usage, pool entries replaced by their adopting config's (cfg-<id>)
    retired: int  # unadopted identities that carried traffic: retired now (the node must drop them)
    unbilled: int  # pool entries billed to nobody (traffic before adoption, retired or unknown identities)


def settle_usage(
    session: Session, node_id: int, usage: list[dict[str, Any]], period_start: datetime, now: datetime
) -> SettledUsage:
    """USAGE of one traffic report with its `pool-<id>` entries settled (module docstring): traffic on an
    unadopted identity retires it; traffic on an adopted one whose report period started at or after the
    adoption becomes the adopting config's entry; everything else of the pool is billed to nobody."""
    ids = set(pool_ids(entry["email"] for entry in usage))
    if not ids:
        return SettledUsage(usage, 0, 0)
    identities = {
        identity.id: identity
        for identity in session.scalars(
            select(PoolIdentity)
            .where(PoolIdentity.id.in_(ids), PoolIdentity.node_id == node_id)
            # The heartbeat holds its node's lock: a row a concurrent sale is adopting is skipped (its traffic
            # billed to nobody) rather than waited for, which would deadlock with that sale's revision bump.
            .with_for_update(skip_locked=True)
        )
    }
    kept, retired, unbilled = [], 0, 0
    for entry in usage:
        match = POOL_EMAIL.match(entry["email"])
        if match is None:
            kept.append(entry)
            continue
        identity = identities.get(int(match.group(1)))
        moved = entry["uplink"] + entry["downlink"]
        if identity is None or identity.retired_at is not None:
            unbilled += moved > 0
        elif identity.adopted_at is None:
            if moved > 0:
                identity.retired_at = now  # a UUID nobody was given carried traffic: never hand it out
                retired += 1
        elif identity.adopted_config_id is not None and period_start >= identity.adopted_at:
            kept.append({**entry, "email": f"cfg-{identity.adopted_config_id}"})
        else:
            unbilled += moved > 0
    if retired or unbilled:
        log.warning(
            "node %s: traffic on %d unadopted pool identities (retired) and %d not billed", node_id, retired, unbilled
        )
    return SettledUsage(kept, retired, unbilled)
