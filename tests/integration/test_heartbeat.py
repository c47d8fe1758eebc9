"""Node heartbeats on real PostgreSQL: metrics, incidents, and traffic stored exactly once per report id."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select

from control_api.models import AuditLog, Node, NodeMetric, Usage, UsageReport, User, UserConfig
from control_api.services.report_store import MAX_CACHED_USED_BYTES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_config(app, node_id: int) -> int:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        user = User(telegram_id=4000 + node_id, subscription_token=f"tok-{uuid.uuid4()}")
        session.add(user)
        session.flush()
        config = UserConfig(user_id=user.id, node_id=node_id, uuid=str(uuid.uuid4()), kind="full", status="active")
        session.add(config)
        session.commit()
        return config.id


def heartbeat(reports=(), **overrides):
    body = {
        "cpu": 12.5,
        "mem": 40.0,
        "bandwidth_in": 1000,
        "bandwidth_out": 5000,
        "latency_ms": 8.5,
        "core_active": True,
    }
    return {**body, "reports": list(reports), **overrides}


def report(report_id: str, *usage: tuple[str, int, int]) -> dict:
    return {
        "report_id": report_id,
        "period_start": (NOW - timedelta(seconds=30)).isoformat(),
        "period_end": NOW.isoformat(),
        "usage": [{"email": email, "uplink": up, "downlink": down} for email, up, down in usage],
    }


def usage_totals(app, config_id: int) -> tuple[int, int]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        row = session.execute(
            select(func.coalesce(func.sum(Usage.bytes_in), 0), func.coalesce(func.sum(Usage.bytes_out), 0)).where(
                Usage.config_id == config_id
            )
        ).one()
        # The config's running total (what quota checks read) always equals the stored rows.
        assert session.get(UserConfig, config_id).used_bytes == int(row[0]) + int(row[1])
        return int(row[0]), int(row[1])


def test_a_heartbeat_records_metrics_and_traffic(app, client, principals):
    node = principals.node
    config_id = make_config(app, node.principal_id)
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat([report("r-1", (f"cfg-{config_id}", 700, 5_243_085))]),
        headers=node.headers,
    )
    assert response.status_code == 200, response.json
    assert response.json == {
        "accepted": ["r-1"],
        "duplicates": [],
        "unknown_configs": 0,
        "foreign_configs": 0,
        "ignored_devices": 0,
        "device_limits": [],
        "desired_revision": 0,
        "quota_watch": [],
    }
    assert usage_totals(app, config_id) == (700, 5_243_085)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        metric = session.scalar(select(NodeMetric).where(NodeMetric.node_id == node.principal_id))
        assert (metric.cpu, metric.mem, metric.bandwidth_out, metric.latency_ms) == (12.5, 40.0, 5000, 8.5)
        assert session.get(Node, node.principal_id).last_seen_at is not None


def test_reports_of_any_size_add_each_configs_bytes(app, client, principals):
    """The used_bytes UPDATE is kept per number of configs up to MAX_CACHED_USED_BYTES and built for larger
    reports: both add each config's own bytes (a config named twice in a report adds both entries)."""
    node = principals.node
    count = MAX_CACHED_USED_BYTES + 36
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        users = [User(telegram_id=5_100_000 + n, subscription_token=f"tok-{uuid.uuid4()}") for n in range(count)]
        session.add_all(users)
        session.flush()
        configs = [
            UserConfig(user_id=user.id, node_id=node.principal_id, uuid=str(uuid.uuid4()), kind="full", status="active")
            for user in users
        ]
        session.add_all(configs)
        session.commit()
        ids = [config.id for config in configs]
    small = report("r-small", *[(f"cfg-{config_id}", 1, n + 1) for n, config_id in enumerate(ids[:3])])
    large = report("r-large", *[(f"cfg-{config_id}", 2, 1000 + n) for n, config_id in enumerate(ids)])
    large["usage"].append({"email": f"cfg-{ids[-1]}", "uplink": 5, "downlink": 7})
    for body in (heartbeat([small, large]), heartbeat([{**large, "report_id": "r-large-2"}])):
        response = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
        assert response.status_code == 200, response.json
    for n, config_id in enumerate(ids):
        uplink = 2 * 2 + (1 if n < 3 else 0) + (2 * 5 if n == count - 1 else 0)
        downlink = 2 * (1000 + n) + (n + 1 if n < 3 else 0) + (2 * 7 if n == count - 1 else 0)
        assert usage_totals(app, config_id) == (uplink, downlink), n


def test_a_retried_report_is_counted_once(app, client, principals):
    node = principals.node
    config_id = make_config(app, node.principal_id)
    body = heartbeat([report("r-9", (f"cfg-{config_id}", 10, 100))])
    first = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
    again = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
    assert first.json["accepted"] == ["r-9"]
    assert again.json["accepted"] == []
    assert again.json["duplicates"] == ["r-9"]
    assert usage_totals(app, config_id) == (10, 100)


def test_concurrent_deliveries_of_one_report_store_it_once(app, principals):
    node = principals.node
    config_id = make_config(app, node.principal_id)
    body = heartbeat([report("r-race", (f"cfg-{config_id}", 1, 1000))])

    def deliver(_):
        with app.test_client() as client:
            return client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers).json

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(deliver, range(12)))
    assert sum(len(result["accepted"]) for result in results) == 1
    assert usage_totals(app, config_id) == (1, 1000)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(func.count()).select_from(UsageReport)) == 1


def test_unknown_configs_are_counted_not_stored_and_incidents_are_audited(app, client, principals):
    node = principals.node
    incident = {"kind": "core_restarted", "at": NOW.isoformat(), "detail": "rayfleet-core was failed"}
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat([report("r-2", ("cfg-999999", 5, 5))], incidents=[incident], core_active=False),
        headers=node.headers,
    )
    assert response.json["unknown_configs"] == 1
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(func.count()).select_from(Usage)) == 0
        row = session.scalar(select(AuditLog).where(AuditLog.action == "node.incident"))
        assert (row.actor_type, row.actor_id) == ("node", str(node.principal_id))
        assert row.details["kind"] == "core_restarted"


def test_a_node_cannot_charge_traffic_to_another_nodes_customers(app, client, principals):
    """A leaked node token must not run every customer's quota down (issue 13, item 6)."""
    node, other = principals.node, principals.other_node
    mine = make_config(app, node.principal_id)
    theirs = make_config(app, other.principal_id)
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat([report("r-steal", (f"cfg-{mine}", 1, 2), (f"cfg-{theirs}", 10**12, 10**12))]),
        headers=node.headers,
    )
    assert response.status_code == 200
    assert (response.json["accepted"], response.json["foreign_configs"], response.json["unknown_configs"]) == (
        ["r-steal"],
        1,
        0,
    )
    assert usage_totals(app, mine) == (1, 2)
    assert usage_totals(app, theirs) == (0, 0)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        row = session.scalar(select(AuditLog).where(AuditLog.action == "node.foreign_usage_dropped"))
        assert (row.actor_type, row.actor_id) == ("node", str(node.principal_id))
        assert row.details == {"node_id": node.principal_id, "config_ids": [theirs]}
    # The owning node still reports its own traffic as usual.
    own = client.post(
        "/api/v1/nodes/heartbeat", json=heartbeat([report("r-own", (f"cfg-{theirs}", 3, 4))]), headers=other.headers
    )
    assert own.json["foreign_configs"] == 0 and usage_totals(app, theirs) == (3, 4)


def test_bad_heartbeats_are_refused_and_change_nothing(app, client, principals):
    node = principals.node
    bad_bodies = [
        heartbeat(cpu=101),
        heartbeat(core_active="yes"),
        heartbeat([report("r-3", ("someone@example.com", 1, 1))]),
        heartbeat([report("r-4", ("cfg-1", -1, 1))]),
        heartbeat([{**report("r-5"), "period_end": (NOW - timedelta(hours=1)).isoformat()}]),
        heartbeat([report("bad id with spaces")]),
    ]
    for body in bad_bodies:
        response = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)
        assert response.status_code == 422, (body, response.json)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(func.count()).select_from(NodeMetric)) == 0
        assert session.scalar(select(func.count()).select_from(UsageReport)) == 0


def test_only_nodes_send_heartbeats(client, principals):
    for kind in ("admin", "bot"):
        response = client.post("/api/v1/nodes/heartbeat", json=heartbeat(), headers=principals.of(kind).headers)
        assert response.status_code == 403


def test_a_node_with_an_open_alert_is_judged_by_its_heartbeats_and_a_quiet_one_leaves_it_alone(app, client, principals):
    """A heartbeat within every limit of a node without an alert skips the judging (the node is not even loaded);
    one of a node with an open alert is judged: a window of good heartbeats clears a dark alert the fleet check
    raised, and each answer names the node's desired revision."""
    node = principals.node
    since = datetime.now(UTC) - timedelta(hours=1)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        row = session.get(Node, node.principal_id)
        dark = {"dark": {"value": 300.0, "limit": 90.0, "since": since.isoformat()}}
        row.alert_breached, row.alert_since, row.desired_revision = dark, since, 7
        session.commit()

    def node_alert() -> tuple[dict | None, datetime | None]:
        with app.app_context():
            session = app.extensions["rayfleet.db"].session()
            row = session.get(Node, node.principal_id)
            return row.alert_breached, row.alert_since

    answers = []
    for _ in range(3):  # the window (HEALTH_WINDOW_HEARTBEATS): dark clears once a whole window came after it
        response = client.post("/api/v1/nodes/heartbeat", json=heartbeat(), headers=node.headers)
        assert response.status_code == 200, response.json
        answers.append(response.json["desired_revision"])
    assert node_alert() == ({}, None)
    assert answers == [7, 7, 7]
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert (
            session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "node.alert_cleared"))
            == 1
        )

    statements: list[str] = []

    def record(_conn, _cursor, _statement, _parameters, context, _executemany) -> None:
        statements.append(context.statement)  # the SQL as compiled (prepared_statements may send it as EXECUTE)

    engine = app.extensions["rayfleet.db"].engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        quiet = client.post("/api/v1/nodes/heartbeat", json=heartbeat(), headers=node.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert quiet.status_code == 200 and quiet.json["desired_revision"] == 7
    assert node_alert() == ({}, None)
    # Quiet: the node is not loaded for judging and no metrics are read; its one write is the Core UPDATE.
    reading_nodes = [statement for statement in statements if re.search(r"\bFROM nodes\b", statement)]
    assert len(reading_nodes) == 1 and "secret_rotated_at" in reading_nodes[0], statements  # the principal check
    assert not any(re.search(r"\bFROM node_metrics\b", statement) for statement in statements), statements
