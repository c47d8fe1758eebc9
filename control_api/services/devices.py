"""Device limits (issue 17, item 3): a plan's max_devices held against the devices its configs are used from.

Each heartbeat may carry, per config the node serves, how many distinct client addresses the agent saw within
its window (and, from two on, the addresses with when each was first and last seen). record_devices, in the
heartbeat's transaction:

- stores the count on the config (devices_seen, devices_seen_at); addresses last seen before an admin's reset
  (devices_reset_at) do not count;
- over the plan's max_devices (only when the addresses came), refuses the newest: the addresses already refused
  are set aside, the oldest max_devices of the others (by first_seen) keep their service, and each newer one is
  refused for the config for DEVICE_BLOCK_COOLDOWN_SECONDS (a device_blocks row);
- a new refusal bumps the config's nodes (the sync carries the active blocks: revisions.desired_device_blocks)
  and tells the customer (notification device_limit), at most once per config per cool-down.

A node speaks only for the configs it serves (revisions.served_by): entries for other nodes' configs, configs
not live, or banned users' are ignored and counted. Addresses are personal data: they reach device_blocks and the
sync, never a log line, an audit row or a notification (those carry counts).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..models import DeviceBlock, Notification, Plan, User, UserConfig
from . import notifications
from .revisions import served_by

log = logging.getLogger(__name__)
KIND = "device_limit"


@dataclass(frozen=True)
class DevicePolicy:
    """DEVICE_BLOCK_COOLDOWN_SECONDS and DEVICE_WINDOW_SECONDS (config.py)."""

    cooldown_seconds: int = 600
    window_seconds: int = 600

    @classmethod
    def from_settings(cls, settings: Any) -> DevicePolicy:
        return cls(settings.device_block_cooldown_seconds, settings.device_window_seconds)


@dataclass(frozen=True)
class DevicesOutcome:
    ignored: int  # entries for configs the node does not serve
    nodes: frozenset[int]  # nodes serving a config with a new block: their revisions must go up
    # {email: max_devices} of the served configs reported from two devices or more: the agent sends a config's
    # addresses only once it knows the config is over its limit (addresses are personal data).
    limits: dict[str, int] = field(default_factory=dict)


def record_devices(
    session: Session, node_id: int, entries: list[dict[str, Any]], now: datetime, policy: DevicePolicy
) -> DevicesOutcome:
    """Apply the heartbeat's device ENTRIES of node NODE_ID (module docstring). Part of the caller's transaction;
    the caller bumps the returned nodes and queues their syncs."""
    reports = {int(entry["email"].removeprefix("cfg-")): entry for entry in entries}  # a repeated config: the last
    if not reports:
        return DevicesOutcome(0, frozenset(), {})
    # The rows locked in id order (as every writer here does): a concurrent reset or a second node reporting a
    # moving config waits, and then sees this one's blocks.
    rows = session.execute(
        select(
            UserConfig.id,
            UserConfig.user_id,
            UserConfig.node_id,
            UserConfig.previous_node_id,
            UserConfig.devices_reset_at,
            Plan,
        )
        .join(User, User.id == UserConfig.user_id)
        .outerjoin(Plan, Plan.id == UserConfig.plan_id)
        .where(UserConfig.id.in_(sorted(reports)), *served_by(node_id))
        .order_by(UserConfig.id)
        .with_for_update(of=UserConfig, key_share=True)  # lifecycle.NO_KEY_LOCKS
    ).all()
    seen, over, limits = [], [], {}
    for row in rows:
        count, addresses = _devices(reports[row.id], row.devices_reset_at)
        seen.append({"id": row.id, "devices_seen": count, "devices_seen_at": now})
        plan = row.Plan
        if plan is not None and reports[row.id]["count"] >= 2:
            limits[f"cfg-{row.id}"] = plan.max_devices
        if plan is not None and addresses and count > plan.max_devices:
            over.append((row, plan, count, addresses))
    if seen:
        session.execute(update(UserConfig), seen, execution_options={"synchronize_session": False})
    nodes: set[int] = set()
    for row, plan, count, addresses in over:
        refused = _refuse(session, row.id, addresses, plan.max_devices, now, policy)
        if not refused:
            continue
        nodes.update(node for node in (row.node_id, row.previous_node_id) if node is not None)
        log.info(
            "config %s: used from %d devices, %d allowed; %d more refused", row.id, count, plan.max_devices, refused
        )
        _tell(session, row, plan, count, now, policy)
    return DevicesOutcome(len(reports) - len(rows), frozenset(nodes), limits)


def _devices(entry: dict[str, Any], reset_at: datetime | None) -> tuple[int, list[tuple[float, str]]]:
    """The entry's device count and its addresses, oldest first_seen first, without those last seen before
    RESET_AT. Without addresses (fewer than two devices), the count as reported."""
    if not entry.get("addresses"):
        return entry["count"], []
    merged: dict[str, tuple[float, float]] = {}
    position: dict[str, int] = {}  # the agent lists newest first: between equal first_seen, later is older
    for index, item in enumerate(entry["addresses"]):
        address = str(item["address"])
        position.setdefault(address, index)
        first, last = merged.get(address, (item["first_seen"], item["last_seen"]))
        merged[address] = (min(first, item["first_seen"]), max(last, item["last_seen"]))
    since = reset_at.timestamp() if reset_at is not None else -math.inf
    counted = sorted(
        ((first, address) for address, (first, last) in merged.items() if last >= since),
        key=lambda item: (item[0], -position[item[1]]),
    )
    return len(counted), counted


def _refuse(
    session: Session,
    config_id: int,
    addresses: list[tuple[float, str]],
    allowed: int,
    now: datetime,
    policy: DevicePolicy,
) -> int:
    """Block the newest of ADDRESSES (oldest first) past ALLOWED, leaving those already blocked aside; how many
    new blocks were made."""
    session.execute(
        delete(DeviceBlock).where(DeviceBlock.config_id == config_id, DeviceBlock.until <= now),
        execution_options={"synchronize_session": False},
    )
    blocked = set(session.scalars(select(DeviceBlock.address).where(DeviceBlock.config_id == config_id)))
    free = [address for _first, address in addresses if address not in blocked]
    until = now + timedelta(seconds=policy.cooldown_seconds)
    refused = free[allowed:]
    session.add_all(
        DeviceBlock(config_id=config_id, address=address, created_at=now, until=until) for address in refused
    )
    session.flush()
    return len(refused)


def _tell(session: Session, row: Any, plan: Plan, count: int, now: datetime, policy: DevicePolicy) -> None:
    """Tell the customer, unless they were told of this config within the cool-down."""
    prefix = f"{KIND}:cfg-{row.id}:"
    told = session.scalar(
        select(Notification.id)
        .where(
            Notification.kind == KIND,
            Notification.dedupe_key.startswith(prefix, autoescape=True),
            Notification.created_at > now - timedelta(seconds=policy.cooldown_seconds),
        )
        .limit(1)
    )
    if told is not None:
        return
    notifications.notify(
        session,
        row.user_id,
        KIND,
        f"{prefix}{now:%Y%m%d%H%M%S%f}",
        config_id=row.id,
        **notifications.plan_names(plan),
        max_devices=plan.max_devices,
        devices=count,
        cooldown_minutes=math.ceil(policy.cooldown_seconds / 60),
        window_minutes=math.ceil(policy.window_seconds / 60),
    )


def active_blocks(session: Session, config_ids: list[int], now: datetime) -> dict[int, list[dict[str, Any]]]:
    """The addresses refused now for each of CONFIG_IDS (admins' view only), by address."""
    blocks: dict[int, list[dict[str, Any]]] = {config_id: [] for config_id in config_ids}
    rows = session.execute(
        select(DeviceBlock.config_id, DeviceBlock.address, DeviceBlock.until)
        .where(DeviceBlock.config_id.in_(config_ids), DeviceBlock.until > now)
        .order_by(DeviceBlock.config_id, DeviceBlock.address)
    )
    for config_id, address, until in rows:
        blocks[config_id].append({"address": address, "until": until})
    return blocks


def reset(session: Session, config: UserConfig, now: datetime) -> int:
    """Forget CONFIG's devices: its blocks go, and addresses last seen before NOW no longer count. Returns how
    many blocks there were. Part of the caller's transaction (which bumps the config's nodes)."""
    removed = session.execute(
        delete(DeviceBlock).where(DeviceBlock.config_id == config.id), execution_options={"synchronize_session": False}
    ).rowcount
    config.devices_reset_at, config.devices_seen = now, 0
    return int(removed or 0)
