"""A plan's promises enforced on the heartbeat, on real PostgreSQL (issue 17, item 1): the heartbeat whose
traffic brings a config to its cap suspends it in its own transaction and queues the node's sync at once;
the node's configs past their expiry end there too; a node cannot end another node's customers; two nodes
reporting one moving config at once never wait on each other."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from control_api.models import AuditLog, Node, Notification, UserConfig, utcnow
from tests.integration import test_payments as sales
from tests.integration.test_health_and_migration import RecordingQueue
from tests.integration.test_payments import MIB, db, notes, pay, revision
from tests.integration.test_payments import heartbeat as beat

shop = sales.shop  # the fixture: an active node, a plan, a customer

pytestmark = pytest.mark.postgres


@pytest.fixture
def queue(app) -> RecordingQueue:
    """The app's job queue, recording the syncs the API queues."""
    recording = RecordingQueue()
    app.extensions["rayfleet.jobs"] = recording
    return recording


def config_of(app, config_id: int) -> UserConfig:
    with app.app_context():
        session = db(app)
        config = session.get(UserConfig, config_id)
        session.expunge(config)
        return config


def change(app, config_id: int, **fields) -> None:
    with app.app_context():
        session = db(app)
        config = session.get(UserConfig, config_id)
        for name, value in fields.items():
            setattr(config, name, value)
        session.commit()


def test_the_heartbeat_that_reaches_the_cap_suspends_and_queues_the_sync(app, client, principals, shop, queue):
    config_id = pay(client, principals, shop).json["config"]["id"]  # temporary: 1000 MB
    node = principals.node
    before = revision(app, node.principal_id)
    queue.synced.clear()  # the payment's own sync

    answer = beat(client, node, (config_id, 999 * MIB), report_id="r1")
    assert config_of(app, config_id).status == "pending" and queue.synced == []
    assert [kind for kind, _ in notes(app)] == ["quota_80"]
    assert answer["desired_revision"] == before == revision(app, node.principal_id)

    answer = beat(client, node, (config_id, 1 * MIB + 5), report_id="r2")
    config = config_of(app, config_id)
    assert (config.status, config.suspend_reason) == ("suspended", "quota")
    assert queue.synced == [node.principal_id]
    assert answer["desired_revision"] == before + 1 == revision(app, node.principal_id)
    kinds = [kind for kind, _ in notes(app)]
    assert kinds == ["quota_80", "quota_100"]
    with app.app_context():
        audited = db(app).scalars(select(AuditLog.details).where(AuditLog.action == "config.quota_suspend")).all()
    assert audited == [{"config_id": config_id}]

    # Later traffic of the last interval (the agent's journal) is counted, but nothing is suspended twice.
    beat(client, node, (config_id, 3 * MIB), report_id="r3")
    assert queue.synced == [node.principal_id] and revision(app, node.principal_id) == before + 1
    assert [kind for kind, _ in notes(app)] == kinds


def test_the_heartbeat_names_the_configs_close_to_their_cap_so_the_agent_reports_at_once(
    app, client, principals, shop, queue
):
    """The answer's quota_watch: the node's served configs within QUOTA_WATCH_MB (1024 by default) of their
    cap with the bytes they have left, so the agent can start its next round the moment one reaches it."""
    config_id = pay(client, principals, shop).json["config"]["id"]  # temporary: 1000 MB
    node = principals.node
    assert beat(client, node)["quota_watch"] == [{"email": f"cfg-{config_id}", "remaining_bytes": 1000 * MIB}]
    assert beat(client, node, (config_id, 999 * MIB), report_id="w1")["quota_watch"] == [
        {"email": f"cfg-{config_id}", "remaining_bytes": MIB}
    ]
    # At its cap it is suspended, and no longer served: nothing left to watch.
    assert beat(client, node, (config_id, 2 * MIB), report_id="w2")["quota_watch"] == []
    assert config_of(app, config_id).status == "suspended"


def test_a_config_the_heartbeat_expires_is_not_in_its_quota_watch(app, client, principals, shop, queue):
    """Near its cap and past its expiry: the heartbeat expires it, and the watch it answers with (read after that,
    in the same transaction) no longer names it."""
    config_id = pay(client, principals, shop).json["config"]["id"]  # temporary: 1000 MB
    change(app, config_id, used_bytes=999 * MIB, expires_at=utcnow() - timedelta(seconds=5))
    assert beat(client, principals.node)["quota_watch"] == []
    assert config_of(app, config_id).status == "expired"


def test_a_heartbeat_expires_its_nodes_configs_past_their_expiry_and_nobody_elses(app, client, principals, shop, queue):
    mine = pay(client, principals, shop, evidence="a").json["config"]["id"]
    other_customer = client.put("/api/v1/users/telegram/7010", json={}, headers=principals.bot.headers).json["id"]
    theirs = pay(client, principals, shop, evidence="b", user_id=other_customer).json["config"]["id"]
    change(app, theirs, node_id=principals.other_node.principal_id)
    past = utcnow() - timedelta(seconds=5)
    change(app, mine, expires_at=past)
    change(app, theirs, expires_at=past)
    queue.synced.clear()

    beat(client, principals.node, report_id="quiet")  # no traffic at all: expiry is the clock's
    assert config_of(app, mine).status == "expired"
    assert config_of(app, theirs).status == "pending"  # another node's: its own heartbeat or the sweep ends it
    assert queue.synced == [principals.node.principal_id]
    assert [kind for kind, payload in notes(app) if payload.get("config_id") == mine] == ["expired"]

    beat(client, principals.other_node, report_id="quiet-2")
    assert config_of(app, theirs).status == "expired"
    assert queue.synced == [principals.node.principal_id, principals.other_node.principal_id]


def test_a_node_cannot_suspend_another_nodes_customer(app, client, principals, shop, queue):
    """A leaked node secret: traffic charged to another node's config is dropped, so its quota stays."""
    config_id = pay(client, principals, shop).json["config"]["id"]
    queue.synced.clear()
    answer = beat(client, principals.other_node, (config_id, 10**12), report_id="steal")
    assert answer["foreign_configs"] == 1
    config = config_of(app, config_id)
    assert (config.status, config.used_bytes) == ("pending", 0) and queue.synced == []


def test_a_moving_config_reported_by_both_nodes_at_once_is_suspended_once(app, client, principals, shop, queue):
    """Source and target both serve a moving config and both report it: the cap is reached by their sum, both
    nodes drop it, and two concurrent heartbeats never deadlock (each holds only its own node's lock)."""
    source, target = principals.node, principals.other_node
    config_id = pay(client, principals, shop).json["config"]["id"]
    change(app, config_id, node_id=target.principal_id, previous_node_id=source.principal_id)
    beat(client, source, (config_id, 900 * MIB), report_id="s0")
    queue.synced.clear()
    before = {node.principal_id: revision(app, node.principal_id) for node in (source, target)}

    answers, errors = [], []
    start = threading.Barrier(2)

    def report(node, report_id: str) -> None:
        try:
            start.wait()
            answers.append(beat(app.test_client(), node, (config_id, 60 * MIB), report_id=report_id))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(node, f"m-{node.principal_id}")) for node in (source, target)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(answers) == 2
    config = config_of(app, config_id)
    assert (config.status, config.suspend_reason, config.used_bytes) == ("suspended", "quota", 1020 * MIB)
    assert sorted(set(queue.synced)) == sorted((source.principal_id, target.principal_id))
    with app.app_context():
        session = db(app)
        suspended = session.scalars(select(AuditLog).where(AuditLog.action == "config.quota_suspend")).all()
        assert len(suspended) == 1
        quota_100 = session.scalars(select(Notification).where(Notification.kind == "quota_100")).all()
        assert len(quota_100) == 1
        bumped = {node.principal_id: session.get(Node, node.principal_id).desired_revision for node in (source, target)}
    assert all(bumped[node] > before[node] for node in before), (before, bumped)
