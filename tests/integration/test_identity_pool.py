"""The warm identity pool (issue 19, item 4; services/identity_pool.py) on real PostgreSQL and Redis.

The sync runs through jobs.sync.sync_node with an injected runner that succeeds (what the playbook does to a
real core is covered by tests/integration/test_core_users_module.py and tests/e2e/test_fleet.py): these tests
are about who gets which identity, what is billed, and what is shown.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from control_api.actors import Principal
from control_api.database import make_engine
from control_api.jobs.sync import sync_node
from control_api.models import AuditLog, Node, PoolIdentity, Usage, UserConfig, WebhookDelivery, utcnow
from control_api.runners.ansible import PlaybookResult
from control_api.services import configs
from control_api.services.revisions import desired_users

pytestmark = pytest.mark.postgres

PLAN = {"location_tag": "abroad", "duration_days": 30, "max_devices": 2, "data_limit_mb": 1000, "price_cents": 100}
INBOUNDS = [{"profile": "vless-tcp-tls", "port": 443}, {"profile": "vmess-ws-tls", "port": 8443, "path": "/vm"}]


class Runner:
    """Stands in for run_playbook: succeeds, and keeps the users the node serves after each run (a full set as
    sent, or the previous set with a delta applied, as the users module does)."""

    def __init__(self) -> None:
        self.users: list[list[dict[str, Any]]] = []

    def __call__(self, playbook: str, inventory: dict, extravars: dict, **kwargs: Any) -> PlaybookResult:
        if "xray_users_json" in extravars:
            served = json.loads(extravars["xray_users_json"])
        else:
            delta = json.loads(extravars["xray_users_delta_json"])
            gone = set(delta["remove"]) | {user["email"] for user in delta["add"]}
            served = [user for user in self.users[-1] if user["email"] not in gone] + delta["add"]
        self.users.append(served)
        return PlaybookResult(rc=0, status="successful", duration_ms=1)


@pytest.fixture
def engine(settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine):
    return sessionmaker(engine, expire_on_commit=False)


def activate(factory, node_id: int) -> None:
    with factory() as session, session.begin():
        node = session.get_one(Node, node_id)
        node.status, node.inbounds, node.public_ip = "active", INBOUNDS, "203.0.113.10"


def warm(factory, node_id: int, size: int) -> Runner:
    """A node with a pool of SIZE per protocol that a successful sync served."""
    activate(factory, node_id)
    runner = Runner()
    run = sync_node(factory, node_id, runner=runner, pool_size=size)
    assert run.status == "succeeded"
    return runner


def pool(factory, node_id: int) -> list[PoolIdentity]:
    with factory() as session:
        return list(session.scalars(select(PoolIdentity).where(PoolIdentity.node_id == node_id)))


def make_plan(client, admin) -> int:
    response = client.post("/api/v1/plans", json={**PLAN, "name": "Abroad"}, headers=admin.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def make_user(client, bot, telegram_id: int) -> int:
    return client.put(f"/api/v1/users/telegram/{telegram_id}", json={}, headers=bot.headers).json["id"]


def buy(client, admin, user_id: int, plan_id: int, node_id: int, protocol: str = "vless") -> dict[str, Any]:
    body = {"plan_id": plan_id, "node_id": node_id, "protocol": protocol}
    response = client.post(f"/api/v1/users/{user_id}/configs", json=body, headers=admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def test_a_sync_serves_the_pool_after_the_configs_and_a_sale_adopts_a_ready_identity(client, principals, factory):
    node_id = principals.node.principal_id
    runner = warm(factory, node_id, size=3)
    emails = [user["email"] for user in runner.users[-1]]
    assert len(emails) == 6 and all(email.startswith("pool-") for email in emails)  # 3 vless + 3 vmess
    identities = pool(factory, node_id)
    assert sorted(i.protocol for i in identities) == ["vless"] * 3 + ["vmess"] * 3
    assert all(i.ready_revision is not None for i in identities)

    plan_id = make_plan(client, principals.admin)
    config = buy(client, principals.admin, make_user(client, principals.bot, 601), plan_id, node_id)
    adopted = [i for i in pool(factory, node_id) if i.adopted_config_id == config["id"]]
    assert len(adopted) == 1 and adopted[0].protocol == "vless" and adopted[0].adopted_at is not None
    assert config["uuid"] == adopted[0].uuid and config["status"] == "pending"  # the API's shape is unchanged
    assert adopted[0].uuid in config["links"][0]

    # The next sync serves it as the config's (cfg-<id>), drops pool-<id> and refills the pool.
    run = sync_node(factory, node_id, runner=runner, pool_size=3)
    assert run.status == "succeeded"
    served = runner.users[-1]
    mine = [user for user in served if user["email"] == f"cfg-{config['id']}"]
    assert mine == [{"email": f"cfg-{config['id']}", "id": adopted[0].uuid, "protocol": "vless", "level": 0}]
    assert f"pool-{adopted[0].id}" not in {user["email"] for user in served}
    assert sum(user["email"].startswith("pool-") for user in served) == 6
    with factory() as session:
        assert session.get_one(UserConfig, config["id"]).status == "active"


def test_concurrent_sales_on_one_node_never_share_an_identity(settings, principals, factory):
    node_id = principals.node.principal_id
    warm(factory, node_id, size=8)
    with factory() as session, session.begin():
        from control_api.models import Plan, User

        plan = Plan(name="p", location_tag="abroad", duration_days=30, max_devices=1, data_limit_mb=100, price_cents=1)
        users = [User(telegram_id=7000 + n, subscription_token=f"race-{n}") for n in range(16)]
        session.add_all([plan, *users])
    admin = Principal("admin", principals.admin.principal_id, "alice")
    barrier = threading.Barrier(len(users))
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def sell(user_id: int) -> None:
        with Session(make_engine_for(settings), expire_on_commit=False) as session:
            barrier.wait()
            try:
                data = {"plan_id": plan.id, "node_id": node_id, "protocol": "vless"}
                results.append(configs.assign(session, admin, user_id, data, lambda _node: None))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=sell, args=(user.id,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 16 and len({result["uuid"] for result in results}) == 16
    identities = {i.uuid: i for i in pool(factory, node_id) if i.protocol == "vless"}
    pooled = [result for result in results if result["uuid"] in identities]
    assert len(pooled) == 8  # every ready vless identity went to exactly one sale; the rest fell back
    assert {identities[result["uuid"]].adopted_config_id for result in pooled} == {result["id"] for result in pooled}


_engines: dict[str, Any] = {}


def make_engine_for(settings):
    """One engine (a connection per thread) for the race."""
    if settings.database_url not in _engines:
        _engines[settings.database_url] = make_engine(settings.database_url)
    return _engines[settings.database_url]


@pytest.fixture(autouse=True)
def _dispose_engines():
    yield
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def test_a_pool_miss_falls_back_to_a_fresh_identity_that_waits_for_the_sync(client, principals, factory):
    node_id = principals.node.principal_id
    activate(factory, node_id)
    plan_id = make_plan(client, principals.admin)
    user_id = make_user(client, principals.bot, 602)
    # No pool at all.
    first = buy(client, principals.admin, user_id, plan_id, node_id)
    # A pool that no sync has served yet is not handed out either.
    with factory() as session, session.begin():
        from control_api.services import identity_pool

        identity_pool.refill(session, node_id, 2)
    second = buy(client, principals.admin, user_id, plan_id, node_id)
    uuids = {i.uuid for i in pool(factory, node_id)}
    assert first["uuid"] not in uuids and second["uuid"] not in uuids
    assert all(i.adopted_at is None for i in pool(factory, node_id))
    # Served, but only the vless pool was ready when the vmess sale came: wait, serve, then buy vmess.
    sync_node(factory, node_id, runner=Runner(), pool_size=2)
    vmess = buy(client, principals.admin, user_id, plan_id, node_id, protocol="vmess")
    adopted = {i.uuid: i for i in pool(factory, node_id) if i.adopted_at is not None}
    assert vmess["uuid"] in adopted and adopted[vmess["uuid"]].protocol == "vmess"


def heartbeat(*entries: tuple[str, int, int], report_id: str, period_start) -> dict[str, Any]:
    return {
        "cpu": 1.0,
        "mem": 1.0,
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "latency_ms": 1.0,
        "core_active": True,
        "reports": [
            {
                "report_id": report_id,
                "period_start": period_start.isoformat(),
                "period_end": utcnow().isoformat(),
                "usage": [{"email": email, "uplink": up, "downlink": down} for email, up, down in entries],
            }
        ],
    }


def billed(factory, config_id: int) -> int:
    with factory() as session:
        rows = session.scalar(
            select(func.coalesce(func.sum(Usage.bytes_in + Usage.bytes_out), 0)).where(Usage.config_id == config_id)
        )
        assert session.get_one(UserConfig, config_id).used_bytes == rows
        return int(rows)


def test_usage_before_adoption_is_billed_to_nobody_and_retires_the_identity(client, principals, factory):
    node_id = principals.node.principal_id
    warm(factory, node_id, size=2)
    node_headers = principals.node.headers
    leaked = next(i for i in pool(factory, node_id) if i.protocol == "vless")
    with factory() as session:
        revision = session.get_one(Node, node_id).desired_revision

    # Traffic on an identity nobody was given: retired, billed to nobody, dropped at the next sync.
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat((f"pool-{leaked.id}", 100, 900), report_id="r-1", period_start=utcnow() - timedelta(seconds=30)),
        headers=node_headers,
    )
    assert response.status_code == 200, response.json
    assert response.json["desired_revision"] == revision + 1 and response.json["unknown_configs"] == 0
    with factory() as session:
        assert session.get_one(PoolIdentity, leaked.id).retired_at is not None
        assert session.scalar(select(func.count()).select_from(Usage)) == 0
        assert f"pool-{leaked.id}" not in {user["email"] for user in desired_users(session, node_id)[1]}

    # It is never handed out: the sale takes the other ready vless identity.
    plan_id = make_plan(client, principals.admin)
    config = buy(client, principals.admin, make_user(client, principals.bot, 603), plan_id, node_id)
    assert config["uuid"] != leaked.uuid
    adopted = next(i for i in pool(factory, node_id) if i.adopted_config_id == config["id"])

    # Its traffic reported for a period that began before the adoption is not billed; after it, it is the
    # customer's (the node still serves it as pool-<id> until the next sync renames it).
    before = adopted.adopted_at - timedelta(seconds=5)
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat((f"pool-{adopted.id}", 10, 20), report_id="r-2", period_start=before),
        headers=node_headers,
    )
    assert response.status_code == 200, response.json
    assert billed(factory, config["id"]) == 0
    after = adopted.adopted_at + timedelta(milliseconds=1)
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat(
            (f"pool-{adopted.id}", 300, 700), (f"cfg-{config['id']}", 1, 2), report_id="r-3", period_start=after
        ),
        headers=node_headers,
    )
    assert response.status_code == 200, response.json
    assert billed(factory, config["id"]) == 1003
    with factory() as session:
        assert session.get_one(PoolIdentity, adopted.id).retired_at is None  # adopted: never retired by traffic
    # Another node's pool identity is nobody's business here.
    response = client.post(
        "/api/v1/nodes/heartbeat",
        json=heartbeat((f"pool-{adopted.id}", 5, 5), report_id="r-4", period_start=after),
        headers=principals.other_node.headers,
    )
    assert response.status_code == 200, response.json
    assert billed(factory, config["id"]) == 1003


def test_no_pool_identity_reaches_an_answer_a_payload_an_audit_row_or_a_log(app, client, principals, factory, caplog):
    caplog.set_level(logging.DEBUG)
    node_id = principals.node.principal_id
    warm(factory, node_id, size=3)
    plan_id = make_plan(client, principals.admin)
    user_id = make_user(client, principals.bot, 604)
    config = buy(client, principals.admin, user_id, plan_id, node_id)
    sync_node(factory, node_id, runner=Runner(), pool_size=3)  # renames the adopted one, refills
    hidden = {i.uuid for i in pool(factory, node_id) if i.adopted_config_id is None}
    assert len(hidden) == 6

    admin, bot, node = principals.admin.headers, principals.bot.headers, principals.node.headers
    answers = [
        client.get("/api/v1/nodes", headers=admin),
        client.get(f"/api/v1/nodes/{node_id}", headers=admin),
        client.get(f"/api/v1/nodes/{node_id}/configs", headers=admin),
        client.get(f"/api/v1/nodes/{node_id}/configs", headers=node),
        client.get(f"/api/v1/users/{user_id}/configs", headers=bot),
        client.get(f"/api/v1/users/{user_id}", headers=admin),
        client.get(f"/api/v1/configs/{config['id']}", headers=admin),
        client.get("/api/v1/dashboard/stats", headers=admin),
        client.get("/metrics"),
        client.post(
            "/api/v1/nodes/heartbeat",
            json=heartbeat(report_id="r-5", period_start=utcnow() - timedelta(seconds=30)),
            headers=node,
        ),
    ]
    subscription = client.get(f"/api/v1/users/{user_id}/subscription", headers=bot)
    answers.append(client.get(subscription.json["subscription_url"]))
    texts = []
    for response in answers:
        assert response.status_code == 200, (response.request.path, response.status_code)
        texts.append(response.get_data(as_text=True))
    with factory() as session:
        texts += [str(row.details) for row in session.scalars(select(AuditLog))]
        texts += [str(row.payload) for row in session.scalars(select(WebhookDelivery))]
        served = {user["email"] for user in client.get(f"/api/v1/nodes/{node_id}/configs", headers=admin).json["users"]}
    texts.append(caplog.text)
    everything = "\n".join(texts)
    assert config["uuid"] in everything  # the probe finds UUIDs where they are
    assert not [uuid for uuid in hidden if uuid in everything]
    assert served == {f"cfg-{config['id']}"}


def test_a_pool_size_of_zero_retires_the_pool_at_the_next_sync(principals, factory):
    node_id = principals.node.principal_id
    runner = warm(factory, node_id, size=2)
    assert len(runner.users[-1]) == 4
    sync_node(factory, node_id, runner=runner, pool_size=0)
    assert runner.users[-1] == []
    assert all(i.retired_at is not None for i in pool(factory, node_id))
    with factory() as session:
        node = session.get_one(Node, node_id)
        assert node.applied_revision == node.desired_revision


def test_a_refused_delta_is_resent_as_the_full_set_desired_by_then_and_the_run_records_that_revision(
    client, principals, factory
):
    """A node that refuses its delta (its state is not the delta's base) gets the whole set at once. That set is
    read when it is sent: a sale committed between the two runs is in it, its config goes live, the pool
    identities it carries are ready, and the run and the node record the revision the set belongs to."""
    node_id = principals.node.principal_id
    runner = warm(factory, node_id, size=2)
    plan_id = make_plan(client, principals.admin)
    first = buy(client, principals.admin, make_user(client, principals.bot, 611), plan_id, node_id)
    late: dict[str, Any] = {}

    def refuses_once(playbook: str, inventory: dict, extravars: dict, **kwargs: Any) -> PlaybookResult:
        if "xray_users_delta_json" in extravars and not late:
            assert [u["email"] for u in json.loads(extravars["xray_users_delta_json"])["add"]][:1] == [
                f"cfg-{first['id']}"
            ]
            late.update(buy(client, principals.admin, make_user(client, principals.bot, 612), plan_id, node_id))
            name = next(iter(inventory["all"]["children"]["vpn_nodes"]["hosts"]))
            return PlaybookResult(rc=0, status="successful", duration_ms=1, resync_hosts={name: "restored"})
        return runner(playbook, inventory, extravars, **kwargs)

    run = sync_node(factory, node_id, runner=refuses_once, pool_size=2)
    assert run.status == "succeeded", run.error
    served = {user["email"] for user in runner.users[-1]}
    assert {f"cfg-{first['id']}", f"cfg-{late['id']}"} <= served
    with factory() as session:
        node = session.get_one(Node, node_id)
        assert run.revision == node.desired_revision == node.applied_revision == node.served_snapshot_revision
        assert session.get_one(UserConfig, first["id"]).status == "active"
        assert session.get_one(UserConfig, late["id"]).status == "active"
        pool_emails = {f"pool-{i.id}" for i in pool(factory, node_id) if i.adopted_at is None and i.retired_at is None}
    assert pool_emails <= served
    assert all(i.ready_revision is not None for i in pool(factory, node_id) if i.adopted_at is None)
