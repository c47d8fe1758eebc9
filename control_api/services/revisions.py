"""Revisions: how a change to what a node serves reaches the node (DESIGN.md §2, the heart of the system).

1. A change to a node's users (a config created, upgraded, suspended, expired, moved, revoked) is
   written in one transaction that also bumps nodes.desired_revision (bump).
2. After the commit, the caller's DISPATCH (the job queue's enqueue_node_sync) is called once per
   node touched (commit_and_dispatch); a burst of changes coalesces into one or two sync jobs.
3. The sync job reads the node's users at revision R (desired_users) and applies them, with the client
   addresses refused for one config each (desired_device_blocks, services/devices.py).

Consistency with concurrent writers: desired_users() reads the node row FOR SHARE before the
configs, so it waits for a writer that already bumped and keeps a later writer from bumping until
the read ends: the user list is exactly the set at revision R. The job raises applied_revision to R
only (never to whatever desired is by then): a bump to R+1 during the run leaves applied < desired,
so the next sync picks it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select, update
from sqlalchemy.orm import Session

from ..models import DeviceBlock, Node, User, UserConfig
from .identity_pool import desired_pool_users

# A config in one of these statuses is on its node (pending: waiting for the next sync).
SERVED_STATUSES = ("pending", "active")

Dispatch = Callable[[int], Any]


def bump(session: Session, node_ids: Iterable[int | None]) -> list[int]:
    """Bump the nodes' desired revisions atomically in SQL (concurrent bumps never collapse)."""
    touched = sorted({node_id for node_id in node_ids if node_id is not None})
    if touched:
        session.execute(
            update(Node).where(Node.id.in_(touched)).values(desired_revision=Node.desired_revision + 1),
            execution_options={"synchronize_session": False},
        )
    return touched


def serving_nodes(configs: Iterable[UserConfig]) -> list[int | None]:
    """Every node that serves one of CONFIGS: its own, and the source of one still moving. A change
    to a config bumps them all, so the source drops a suspended config as the target does."""
    return [node_id for config in configs for node_id in (config.node_id, config.previous_node_id)]


def commit_and_dispatch(session: Session, touched: list[int], dispatch: Dispatch) -> None:
    """Commit the change, then queue a sync of every node it touched: one batched run for several when
    DISPATCH is a job queue's enqueue_node_sync (its queue's enqueue_node_syncs), else one call per node."""
    session.commit()
    batch = getattr(getattr(dispatch, "__self__", None), "enqueue_node_syncs", None)
    if len(touched) > 1 and batch is not None:
        batch(touched)
        return
    for node_id in touched:
        dispatch(node_id)


def served_by(node_id: int) -> list[ColumnElement[bool]]:
    """The conditions of a config NODE_ID serves (with users joined on user_configs.user_id)."""
    return [
        # A moving config is served by its target and, until its grace ends, its source (migration.py).
        or_(UserConfig.node_id == node_id, UserConfig.previous_node_id == node_id),
        UserConfig.status.in_(SERVED_STATUSES),
        # A banned user's config is never served, whatever its status (bans.py).
        User.ban_reason.is_(None),
    ]


def desired_users(session: Session, node_id: int, pool: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """(desired_revision, the users the node must serve), read consistently (see the module doc). POOL False
    leaves out the node's warm pool identities (what an API answer shows: they are never shown)."""
    revision = lock_desired_revision(session, node_id)
    return revision, desired_user_list(session, node_id, pool)


def lock_desired_revision(session: Session, node_id: int) -> int:
    """NODE_ID's desired revision, its row held FOR SHARE until the transaction ends: what the transaction reads
    of the node's users from now on is exactly the set at that revision (module doc)."""
    revision = session.scalar(select(Node.desired_revision).where(Node.id == node_id).with_for_update(read=True))
    if revision is None:
        raise LookupError(f"node {node_id} does not exist")
    return int(revision)


def desired_configs(node_id: int) -> Select[tuple[int, str, str]]:
    """The (id, uuid, protocol) of every config NODE_ID serves, by id: its node users cfg-<id>."""
    return (
        select(UserConfig.id, UserConfig.uuid, UserConfig.protocol)
        .join(User, User.id == UserConfig.user_id)
        .where(*served_by(node_id))
        .order_by(UserConfig.id)
    )


def desired_user_list(session: Session, node_id: int, pool: bool = True) -> list[dict[str, Any]]:
    """The users NODE_ID must serve (after lock_desired_revision in the same transaction): its configs, then
    unless POOL is False its warm pool identities."""
    configs = session.execute(desired_configs(node_id))
    users = [{"email": f"cfg-{id_}", "id": uuid, "protocol": protocol, "level": 0} for id_, uuid, protocol in configs]
    if pool:
        users += desired_pool_users(session, node_id)  # the warm pool (identity_pool.py), after the configs
    return users


def pending_served_configs(session: Session, node_id: int) -> list[int]:
    """The ids of the configs NODE_ID serves that wait for it (pending on it): what its sync makes live."""
    return list(
        session.scalars(
            select(UserConfig.id)
            .join(User, User.id == UserConfig.user_id)
            .where(*served_by(node_id), UserConfig.node_id == node_id, UserConfig.status == "pending")
            .order_by(UserConfig.id)
        )
    )


def desired_device_blocks(session: Session, node_id: int, now: datetime) -> list[dict[str, Any]]:
    """The client addresses the node must refuse for one config each (services/devices.py): the blocks still
    active at NOW of the configs it serves, by config and address. Read after desired_users in its transaction,
    so they belong to the same revision (a new block bumps the revision too)."""
    # Most fleets have no block in force: asked first, so the join below never runs on a node's whole set (with
    # stale statistics PostgreSQL may start it from the configs, 100 ms at 100,000).
    if not session.scalar(select(exists().where(DeviceBlock.until > now))):
        return []
    blocks = session.execute(
        select(DeviceBlock.config_id, DeviceBlock.address, DeviceBlock.until)
        .join(UserConfig, UserConfig.id == DeviceBlock.config_id)
        .join(User, User.id == UserConfig.user_id)
        .where(*served_by(node_id), DeviceBlock.until > now)
        .order_by(DeviceBlock.config_id, DeviceBlock.address)
    )
    return [
        {"email": f"cfg-{config_id}", "address": address, "until": math.ceil(until.timestamp())}
        for config_id, address, until in blocks
    ]
