"""Threshold windows and hysteresis (services/node_health.py) with a controllable clock, placement
that never picks a sick, draining or full node, and the migration's per-target budget.

The database is an in-memory SQLite with the real schema; the clock is a parameter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session

from control_api.errors import Conflict
from control_api.models import Base, Node, NodeMetric, Plan, User, UserConfig
from control_api.services import migration
from control_api.services.node_health import HealthPolicy, evaluate, judge
from control_api.services.placement import place_in

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POLICY = HealthPolicy(window=3, migration_batch_per_node=2)


# --- the window rule alone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "breached", "expected"),
    [
        ([300, 100, 100], False, False),  # one spike raises nothing
        ([300, 300, 100], False, False),  # two of three neither
        ([300, 300, 300], False, True),  # three in a row raise
        ([300, 300], False, False),  # too few heartbeats to judge: unchanged
        ([100, 300, 300], True, True),  # once breached, one good heartbeat clears nothing
        ([100, 100, 300], True, True),
        ([100, 100, 100], True, False),  # three at or under the limit clear it
        ([200, 200, 200], True, False),  # at the limit is not over it
        ([None, 300, 300], False, False),  # a heartbeat without the value keeps the state
        ([None, 100, 100], True, True),
    ],
)
def test_a_threshold_needs_a_whole_window_to_raise_and_to_clear(values, breached, expected):
    assert judge(values, 200.0, breached, window=3) is expected


# --- evaluate() on stored heartbeats ---------------------------------------------------------------


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def add_node(session: Session, name: str, **fields) -> Node:
    values = {
        "region": "eu",
        "location_tag": "abroad",
        "status": "active",
        "capacity_score": 10,
        "client_id": f"client-{name}",
        "secret_hash": "x",
        "last_seen_at": T0,
        **fields,
    }
    node = Node(name=name, **values)
    session.add(node)
    session.flush()
    return node


def beat(session: Session, node: Node, at: datetime, cpu=10.0, latency=20.0, mbytes_per_s=0.0):
    node.last_seen_at = at
    rate = int(mbytes_per_s * 1_000_000)
    session.add(
        NodeMetric(
            node_id=node.id, cpu=cpu, mem=10.0, bandwidth_in=rate, bandwidth_out=0, latency_ms=latency, timestamp=at
        )
    )
    session.flush()
    return evaluate(session, node, POLICY, at, heartbeat=True)


def test_cpu_is_raised_after_three_hot_heartbeats_and_cleared_after_three_cool_ones(session):
    node = add_node(session, "n1")
    clock = iter(T0 + timedelta(seconds=60 * i) for i in range(100))
    assert not beat(session, node, next(clock), cpu=99).changed
    assert not beat(session, node, next(clock), cpu=99).changed
    raised_at = next(clock)
    change = beat(session, node, raised_at, cpu=99)
    assert change.raised == {"cpu"}
    assert node.alert_since == raised_at
    assert node.alert_breached["cpu"] == {"value": 99, "limit": 85.0, "since": raised_at.isoformat()}
    for _ in range(2):  # flapping below for less than a window changes nothing
        assert not beat(session, node, next(clock), cpu=5).changed
    assert not beat(session, node, next(clock), cpu=99).changed
    for _ in range(2):
        beat(session, node, next(clock), cpu=5)
    assert node.alert_since is not None
    change = beat(session, node, next(clock), cpu=5)
    assert change.cleared == {"cpu"} and not change.breached
    assert node.alert_since is None and node.alert_breached == {}


def test_a_node_override_wins_over_the_fleet_limit_and_bandwidth_needs_a_capacity(session):
    node = add_node(session, "n1", thresholds={"latency_ms": 0})
    for i in range(3):
        change = beat(session, node, T0 + timedelta(seconds=i), latency=0.4, mbytes_per_s=500)
    assert change.raised == {"latency"}  # 500 MB/s, yet no bandwidth alert: no capacity set
    node.bandwidth_capacity_mbps = 1000  # 500 MB/s = 4000 Mbit/s = 400 %
    change = beat(session, node, T0 + timedelta(seconds=4), latency=0.4, mbytes_per_s=500)
    assert change.raised == {"bandwidth"}
    assert node.alert_breached["bandwidth"]["value"] == 400.0


def test_dark_is_raised_by_the_fleet_check_and_cleared_by_a_window_of_heartbeats(session):
    node = add_node(session, "n1", last_seen_at=T0)
    assert not evaluate(session, node, POLICY, T0 + timedelta(seconds=179), heartbeat=False).changed
    later = T0 + timedelta(seconds=181)
    assert evaluate(session, node, POLICY, later, heartbeat=False).raised == {"dark"}
    assert not beat(session, node, later + timedelta(seconds=1)).changed
    assert not beat(session, node, later + timedelta(seconds=2)).changed
    assert beat(session, node, later + timedelta(seconds=3)).cleared == {"dark"}
    never_seen = add_node(session, "n2", last_seen_at=None)
    assert not evaluate(session, never_seen, POLICY, later, heartbeat=False).changed


# --- placement and the migration's choice of targets -----------------------------------------------


def test_placement_never_picks_a_sick_draining_or_full_node(session):
    add_node(session, "sick", capacity_score=100, alert_since=T0, alert_breached={"cpu": {}})
    add_node(session, "draining", capacity_score=100, status="draining")
    full = add_node(session, "full", capacity_score=1)
    user = User(telegram_id=1, subscription_token="t" * 32)
    session.add(user)
    session.flush()
    session.add(UserConfig(user_id=user.id, node_id=full.id, uuid="u-1", kind="full", status="active"))
    session.flush()
    with pytest.raises(Conflict) as refused:
        place_in(session, "abroad")
    assert refused.value.code == "no_node_available"
    fine = add_node(session, "fine", capacity_score=3)
    assert place_in(session, "abroad").id == fine.id


def test_migration_moves_dynamic_configs_within_the_budget_and_leaves_constant_ip_ones(session):
    source = add_node(session, "source", alert_since=T0, alert_breached={"cpu": {"since": T0.isoformat()}})
    roomy = add_node(session, "roomy", capacity_score=100)
    tight = add_node(session, "tight", capacity_score=1)
    add_node(session, "sick", capacity_score=100, alert_since=T0, alert_breached={"cpu": {}})
    add_node(session, "draining", capacity_score=100, status="draining")
    add_node(session, "silent", capacity_score=100, last_seen_at=T0 - timedelta(hours=1))
    add_node(session, "elsewhere", capacity_score=100, location_tag="local")
    dynamic = Plan(name="d", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=1, price_cents=1)
    pinned = Plan(name="c", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=1, price_cents=1)
    pinned.is_constant_ip = True
    user = User(telegram_id=1, subscription_token="t" * 32)
    session.add_all([dynamic, pinned, user])
    session.flush()
    configs = [
        UserConfig(user_id=user.id, node_id=source.id, plan_id=plan.id, uuid=f"u-{i}", kind="full", status="active")
        for i, plan in enumerate([dynamic] * 5 + [pinned])
    ]
    session.add_all(configs)
    session.flush()

    run = migration.migrate_off(session, source.id, POLICY, T0)
    # Budget 2 per target per run: 2 to the roomiest, 1 to the one with room for 1; never to the
    # sick, draining, silent or other-location nodes.
    assert sorted(target for _, target in run.moved) == sorted([roomy.id, roomy.id, tight.id])
    assert (run.stranded, run.pinned) == (2, 1)
    moved = session.scalars(select(UserConfig).where(UserConfig.previous_node_id == source.id)).all()
    assert len(moved) == 3
    session.expire_all()  # bump() updates revisions in SQL, behind the identity map
    assert all(config.moved_at_revision == session.get(Node, config.node_id).desired_revision for config in moved)
    assert all(config.link_node_id == source.id for config in moved)  # not live on the target yet

    # The target applies the revision: live (links switch), grace starts; then the source lets go.
    for node in (roomy, tight):
        node.applied_revision = node.desired_revision
    source_revision = source.desired_revision
    assert migration.advance(session, POLICY, T0) == []
    assert all(config.migration_live_at == T0 and config.link_node_id == config.node_id for config in moved)
    assert migration.advance(session, POLICY, T0 + timedelta(seconds=POLICY.migration_grace_seconds - 1)) == []
    assert migration.advance(session, POLICY, T0 + timedelta(seconds=POLICY.migration_grace_seconds)) == [source.id]
    session.refresh(source)
    assert source.desired_revision == source_revision + 1
    assert all(config.previous_node_id is None for config in moved)


def test_a_move_whose_target_goes_bad_before_it_serves_rolls_back(session):
    source = add_node(session, "source", status="draining")
    target = add_node(session, "target")
    user = User(telegram_id=1, subscription_token="t" * 32)
    session.add(user)
    session.flush()
    config = UserConfig(user_id=user.id, node_id=source.id, uuid="u-1", kind="trial", status="active")
    session.add(config)
    session.flush()
    assert migration.migrate_off(session, source.id, POLICY, T0).moved == [(config.id, target.id)]
    target.alert_since, target.alert_breached = T0, {"cpu": {}}
    assert migration.advance(session, POLICY, T0) == [target.id]
    assert (config.node_id, config.previous_node_id) == (source.id, None)


def test_a_heartbeat_judged_with_its_own_metrics_ends_as_one_judged_on_the_history(session):
    """evaluate(latest=...) skips the metric read for a quiet heartbeat of a node without an alert; the
    outcome after every heartbeat of a random run is the one judged on the stored history alone."""
    reads = []
    event.listen(
        session.get_bind(),
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_args: reads.append(statement) if "FROM node_metrics" in statement else None,
    )
    rng = random.Random(19)
    with_latest, on_history = add_node(session, "a"), add_node(session, "b", client_id="client-b2")
    for number in range(300):
        at = T0 + timedelta(seconds=30 * number)
        cpu = rng.choice([5.0, 50.0, 90.0, 99.0]) if number % 40 < 20 else 5.0
        latency = rng.choice([10.0, 20.0, 400.0, None])
        changes = []
        for node, latest in ((with_latest, True), (on_history, False)):
            node.last_seen_at = at
            metric = NodeMetric(
                node_id=node.id, cpu=cpu, mem=10.0, bandwidth_in=0, bandwidth_out=0, latency_ms=latency, timestamp=at
            )
            session.add(metric)
            session.flush()
            before = len(reads)
            changes.append(evaluate(session, node, POLICY, at, heartbeat=True, latest=metric if latest else None))
            quiet = (
                latest and not changes[-1].breached and not changes[-1].cleared and cpu <= 85 and (latency or 0) <= 300
            )
            assert (len(reads) == before) is quiet, (number, cpu, latency)
        assert changes[0] == changes[1], number
        assert with_latest.alert_since == on_history.alert_since
