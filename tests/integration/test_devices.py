"""Device limits on the API's side, on real PostgreSQL (issue 17, item 3): the heartbeat's device counts held
against the plan's max_devices, the newest addresses refused for a cool-down and carried by the sync, the
customer told once per cool-down, an admin's view and reset; a node speaks only for the configs it serves."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from control_api.jobs.sync import sync_node
from control_api.models import AuditLog, DeviceBlock, Notification, utcnow
from control_api.runners.ansible import PlaybookResult
from control_api.services.revisions import desired_device_blocks
from tests.integration import test_payments as sales
from tests.integration.test_enforcement import config_of
from tests.integration.test_health_and_migration import RecordingQueue
from tests.integration.test_payments import PLAN, db, notes, revision
from tests.integration.test_payments import heartbeat as beat

shop = sales.shop  # the fixture: an active node, a plan (2 devices), a customer

pytestmark = pytest.mark.postgres

# Three devices, the oldest first; the agent sends them newest first_seen first.
OLD, MIDDLE, NEW = "198.51.100.21", "198.51.100.22", "2001:db8:0:0::23"
NEW_NORMALISED = "2001:db8::23"


def entry(config_id: int, *addresses: tuple[str, float, float]) -> dict[str, Any]:
    """A heartbeat's devices entry for CONFIG_ID: its count, and the (address, first_seen, last_seen) given."""
    body: dict[str, Any] = {"email": f"cfg-{config_id}", "count": len(addresses)}
    if len(addresses) >= 2:
        newest_first = sorted(addresses, key=lambda item: item[1], reverse=True)
        body["addresses"] = [{"address": a, "first_seen": first, "last_seen": last} for a, first, last in newest_first]
    return body


def three_devices(config_id: int, last_seen: float | None = None) -> dict[str, Any]:
    now = time.time() if last_seen is None else last_seen
    return entry(config_id, (NEW, now - 100, now), (OLD, now - 300, now), (MIDDLE, now - 200, now))


@pytest.fixture
def queue(app) -> RecordingQueue:
    """The app's job queue, recording the syncs the API queues."""
    recording = RecordingQueue()
    app.extensions["rayfleet.jobs"] = recording
    return recording


@pytest.fixture
def one_device(app, client, principals, shop) -> int:
    """A config of a one-device plan on the shop's node (an admin's assignment); its id."""
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json={**PLAN, "name": "One device", "max_devices": 1}, headers=admin).json
    body = {"plan_id": plan["id"], "node_id": principals.node.principal_id}
    created = client.post(f"/api/v1/users/{shop.user_id}/configs", json=body, headers=admin)
    assert created.status_code == 201, created.json
    return created.json["id"]


def blocks(app, config_id: int) -> dict[str, Any]:
    with app.app_context():
        rows = db(app).execute(select(DeviceBlock.address, DeviceBlock.until).where(DeviceBlock.config_id == config_id))
        return dict(rows.all())


def age(app, seconds: int, *, blocks_only: bool = False) -> None:
    """Move the clock forward by SECONDS for the stored blocks (and the notifications, unless BLOCKS_ONLY)."""
    with app.app_context():
        session = db(app)
        shift = timedelta(seconds=seconds)
        for block in session.scalars(select(DeviceBlock)):
            block.until, block.created_at = block.until - shift, block.created_at - shift
        for note in session.scalars(select(Notification)) if not blocks_only else []:
            note.created_at -= shift
        session.commit()


def test_three_devices_on_a_one_device_plan_refuse_the_two_newest_once_per_cool_down(
    app, client, principals, one_device, queue
):
    node = principals.node
    before = revision(app, node.principal_id)
    queue.synced.clear()

    answer = beat(client, node, devices=[three_devices(one_device)])
    refused = blocks(app, one_device)
    assert sorted(refused) == sorted([MIDDLE, NEW_NORMALISED])  # the oldest device keeps its service
    cooldown = timedelta(seconds=600)  # DEVICE_BLOCK_COOLDOWN_SECONDS' default
    assert all(timedelta(0) < until - utcnow() <= cooldown for until in refused.values())
    assert answer["desired_revision"] == before + 1 == revision(app, node.principal_id)
    assert queue.synced == [node.principal_id] and answer["ignored_devices"] == 0
    # The limit goes back to the agent, which sends a config's addresses only when it is over it.
    assert answer["device_limits"] == [{"email": f"cfg-{one_device}", "max_devices": 1}]
    config = config_of(app, one_device)
    assert config.devices_seen == 3 and utcnow() - config.devices_seen_at < timedelta(minutes=1)
    (told,) = notes(app, "device_limit")
    assert told.payload == {
        "config_id": one_device,
        "plan": "One device",
        "max_devices": 1,
        "devices": 3,
        "cooldown_minutes": 10,
        "window_minutes": 10,
    }
    with app.app_context():  # counts only: no address reaches a notification or the audit log
        stored = json.dumps([row.payload for row in db(app).scalars(select(Notification))])
        stored += json.dumps([row.details for row in db(app).scalars(select(AuditLog))])
    assert not any(address in stored for address in (OLD, MIDDLE, NEW, NEW_NORMALISED))

    # The same report again: the refused addresses stay refused; nothing new, nobody bumped or told.
    answer = beat(client, node, devices=[three_devices(one_device)])
    assert blocks(app, one_device) == refused
    assert answer["desired_revision"] == before + 1 and queue.synced == [node.principal_id]
    assert len(notes(app, "device_limit")) == 1

    # The blocks ran out but the customer was told within the cool-down: refused again, not told again.
    age(app, 601, blocks_only=True)
    beat(client, node, devices=[three_devices(one_device)])
    again = blocks(app, one_device)
    assert sorted(again) == sorted(refused) and all(until > utcnow() for until in again.values())
    assert revision(app, node.principal_id) == before + 2 and queue.synced == [node.principal_id] * 2
    assert len(notes(app, "device_limit")) == 1

    # A whole cool-down later: refused and told again.
    age(app, 601)
    beat(client, node, devices=[three_devices(one_device)])
    assert sorted(blocks(app, one_device)) == sorted(refused)
    assert revision(app, node.principal_id) == before + 3 and len(notes(app, "device_limit")) == 2


def test_a_config_within_its_limit_is_counted_and_nothing_is_refused(app, client, principals, shop, queue):
    config_id = sales.pay(client, principals, shop).json["config"]["id"]  # the shop's plan: 2 devices
    node = principals.node
    before = revision(app, node.principal_id)
    queue.synced.clear()
    now = time.time()
    beat(client, node, devices=[entry(config_id, (OLD, now - 60, now), (MIDDLE, now - 30, now))])
    assert config_of(app, config_id).devices_seen == 2
    assert blocks(app, config_id) == {} and notes(app, "device_limit") == []
    assert revision(app, node.principal_id) == before and queue.synced == []
    beat(client, node, devices=[{"email": f"cfg-{config_id}", "count": 1}])  # one device: the count alone
    assert config_of(app, config_id).devices_seen == 1


def test_a_node_speaks_only_for_the_configs_it_serves(app, client, principals, shop, one_device, queue):
    """Another node's report of the config, a config that does not exist and a banned customer's are ignored."""
    before = revision(app, principals.node.principal_id)
    queue.synced.clear()
    answer = beat(
        client, principals.other_node, devices=[three_devices(one_device), {"email": "cfg-999999", "count": 4}]
    )
    assert answer["ignored_devices"] == 2
    assert config_of(app, one_device).devices_seen is None and blocks(app, one_device) == {}
    assert notes(app, "device_limit") == [] and queue.synced == []

    banned = client.post(
        f"/api/v1/users/{shop.user_id}/ban", json={"reason": "abuse"}, headers=principals.admin.headers
    )
    assert banned.status_code == 200, banned.json
    answer = beat(client, principals.node, devices=[three_devices(one_device)])
    assert answer["ignored_devices"] == 1 and blocks(app, one_device) == {}
    assert revision(app, principals.node.principal_id) == before + 1  # the ban's own bump, nothing more


def test_the_sync_carries_the_active_blocks_of_the_configs_the_node_serves(app, client, principals, one_device):
    node_id = principals.node.principal_id
    beat(client, principals.node, devices=[three_devices(one_device)])
    with app.app_context():
        session = db(app)
        session.add(DeviceBlock(config_id=one_device, address="203.0.113.99", until=utcnow() - timedelta(seconds=1)))
        session.commit()
        active = desired_device_blocks(session, node_id, utcnow())
        assert desired_device_blocks(session, principals.other_node.principal_id, utcnow()) == []
        session.rollback()
    assert [(block["email"], block["address"]) for block in active] == [
        (f"cfg-{one_device}", MIDDLE),
        (f"cfg-{one_device}", NEW_NORMALISED),
    ]  # the expired one is not sent
    assert all(0 < block["until"] - time.time() <= 601 for block in active)

    sent: list[dict] = []

    def runner(playbook: str, inventory: dict, extravars: dict, **kwargs: Any) -> PlaybookResult:
        sent.append(extravars)
        return PlaybookResult(rc=0, status="successful", duration_ms=1)

    engine = app.extensions["rayfleet.db"].engine
    run = sync_node(sessionmaker(engine, expire_on_commit=False), node_id, runner=runner)
    assert run.status == "succeeded"
    assert sent[0]["xray_device_blocks"] == active
    assert [user["email"] for user in json.loads(sent[0]["xray_users_json"])] == [f"cfg-{one_device}"]


def test_admins_see_and_reset_a_configs_devices_and_the_bot_sees_counts_only(
    app, client, principals, shop, one_device, queue
):
    node_id = principals.node.principal_id
    reported_at = time.time()
    beat(client, principals.node, devices=[three_devices(one_device, reported_at)])
    admin, bot = principals.admin.headers, principals.bot.headers

    seen = client.get(f"/api/v1/configs/{one_device}", headers=admin).json
    assert seen["devices_seen"] == 3 and seen["devices_seen_at"] is not None
    assert sorted(block["address"] for block in seen["device_blocks"]) == sorted([MIDDLE, NEW_NORMALISED])
    (mine,) = client.get(f"/api/v1/users/{shop.user_id}/configs", headers=bot).json["items"]
    assert mine["devices_seen"] == 3 and "device_blocks" not in mine
    (theirs,) = client.get(f"/api/v1/users/{shop.user_id}/configs", headers=admin).json["items"]
    assert len(theirs["device_blocks"]) == 2

    before = revision(app, node_id)
    queue.synced.clear()
    refused = client.post(f"/api/v1/configs/{one_device}/devices/reset", headers=bot)
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    assert client.post("/api/v1/configs/999999/devices/reset", headers=admin).status_code == 404
    assert blocks(app, one_device) != {} and revision(app, node_id) == before

    reset = client.post(f"/api/v1/configs/{one_device}/devices/reset", headers=admin)
    assert reset.status_code == 200, reset.json
    assert (reset.json["devices_seen"], reset.json["device_blocks"]) == (0, [])
    assert blocks(app, one_device) == {}
    assert revision(app, node_id) == before + 1 and queue.synced == [node_id]
    with app.app_context():
        audited = db(app).scalars(select(AuditLog.details).where(AuditLog.action == "config.devices_reset")).all()
    assert audited == [{"config_id": one_device, "blocks_removed": 2}]

    # The devices reported before the reset no longer count; one seen since does.
    beat(client, principals.node, devices=[three_devices(one_device, reported_at)])
    assert config_of(app, one_device).devices_seen == 0 and blocks(app, one_device) == {}
    now = time.time() + 1
    stale = entry(one_device, (OLD, reported_at - 300, reported_at), (MIDDLE, now - 1, now))
    beat(client, principals.node, devices=[stale])
    assert config_of(app, one_device).devices_seen == 1 and blocks(app, one_device) == {}
    assert revision(app, node_id) == before + 1 and len(notes(app, "device_limit")) == 1


@pytest.mark.parametrize(
    "devices",
    [
        [{"email": "cfg-1", "count": 2, "addresses": [{"address": "not-an-ip", "first_seen": 1, "last_seen": 2}]}],
        [{"email": "cfg-1", "count": 2, "addresses": [{"address": "fe80::1%eth0", "first_seen": 1, "last_seen": 2}]}],
        [{"email": "cfg-1", "count": 1}] * 5001,
        [{"email": "cfg-1", "count": 2, "addresses": [{"address": OLD, "first_seen": 1, "last_seen": 2}] * 65}],
        [{"email": "cfg-1", "count": 1, "port": 443}],
        [{"email": "cfg-1", "count": 2, "addresses": [{"address": OLD, "first_seen": 1, "last_seen": 2, "x": 1}]}],
        [{"email": "cfg-1", "count": 2, "addresses": [{"address": OLD, "first_seen": 1}]}],
        [{"email": "user-1", "count": 1}],
        [{"email": "cfg-1", "count": -1}],
        [{"email": "cfg-1", "count": 100_001}],
    ],
    ids=[
        "bad address",
        "zone id",
        "too many entries",
        "too many addresses",
        "unknown field",
        "unknown address field",
        "no last_seen",
        "not a config",
        "negative count",
        "count too large",
    ],
)
def test_bad_device_reports_are_refused(client, principals, devices):
    body = {"cpu": 1.0, "mem": 1.0, "bandwidth_in": 0, "bandwidth_out": 0, "core_active": True, "devices": devices}
    response = client.post("/api/v1/nodes/heartbeat", json=body, headers=principals.node.headers)
    assert response.status_code == 422, response.json
    assert response.json["error"] == "validation_error" and "devices" in response.json["details"]["json"]
