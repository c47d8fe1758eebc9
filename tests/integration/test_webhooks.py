"""Signed webhooks on real PostgreSQL + Redis: events made through the real API routes, queued on RQ after the
commit, delivered by a real RQ worker (burst mode, in this process) to a real HTTP receiver on 127.0.0.1 that
verifies each signature the way docs/webhooks.md tells receivers to."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from rq import Queue, SimpleWorker
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from control_api.database import make_engine
from control_api.jobs import tasks
from control_api.jobs import webhooks as webhook_job
from control_api.jobs.context import WorkerContext, set_worker_context
from control_api.jobs.queue import RedisJobQueue
from control_api.jobs.sweep import requeue_webhooks
from control_api.jobs.webhooks import deliver_webhook_job
from control_api.models import AuditLog, Node, User, UserConfig, WebhookDelivery, utcnow
from control_api.services import webhooks
from control_api.services.node_health import HealthPolicy
from control_api.services.webhooks import DeliveryPolicy

pytestmark = pytest.mark.postgres

PLAN = {
    "name": "Abroad 30 days",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": 1500,
}
SECRET = "a-receiver-shared-secret-0123456789"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
REPLAY_WINDOW_SECONDS = 300


def verify(secret: str, headers, body: bytes, now: float | None = None) -> bool:
    """docs/webhooks.md's receiver check: the HMAC over "<timestamp>.<body>", compared in constant time, and a
    timestamp within the replay window."""
    timestamp = headers.get("X-Rayfleet-Timestamp", "")
    signature = headers.get("X-Rayfleet-Signature", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread: records every POST, answers `status`."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/rayfleet"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[str]:
        return [headers["X-Rayfleet-Event"] for headers, _body in self.received]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def settings(settings):
    return replace(
        settings,
        webhook_allow_private_targets=True,  # the receiver is on 127.0.0.1
        webhook_backoff_seconds=1,
        webhook_max_attempts=3,
        webhook_timeout_seconds=2,
    )


@pytest.fixture
def conn(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def worker(settings, conn):
    """What a worker process has: a context from the same database and Redis, and a burst run of RQ's worker."""
    engine = make_engine(settings.database_url)
    context = WorkerContext(
        session_factory=sessionmaker(engine, expire_on_commit=False),
        redis_url=settings.redis_url,
        webhook_policy=DeliveryPolicy.from_settings(settings),
    )
    context.queue_webhooks_after_commit(context.session_factory)
    set_worker_context(context)

    class Worker:
        ctx = context

        @staticmethod
        def burst() -> None:
            SimpleWorker([Queue("default", connection=conn)], connection=conn).work(burst=True, with_scheduler=True)

    yield Worker
    set_worker_context(None)
    engine.dispose()


@pytest.fixture
def shop(app, client, principals):
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        node = session.get(Node, principals.node.principal_id)
        node.status = "active"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        node.tls_server_name = "fra.rayfleet.test"
        session.commit()
    plan = client.post("/api/v1/plans", json=PLAN, headers=principals.admin.headers).json
    customer = client.put("/api/v1/users/telegram/7001", json={"username": "buyer"}, headers=principals.bot.headers)
    return {"plan_id": plan["id"], "user_id": customer.json["id"]}


def register(client, principals, url: str, events: list[str], **fields) -> dict:
    body = {"url": url, "events": events, **fields}
    response = client.post("/api/v1/webhooks", json=body, headers=principals.admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def pay(client, principals, shop, evidence: str):
    body = {
        "user_id": shop["user_id"],
        "plan_id": shop["plan_id"],
        "amount_cents": 1500,
        "evidence_file_id": f"AgACAgQAAxkBAAI-{evidence}",
        "evidence_unique_id": f"AQAD-{evidence}",
    }
    response = client.post("/api/v1/payments", json=body, headers=principals.bot.headers)
    assert response.status_code == 201, response.json
    return response.json


def deliveries(client, principals, webhook_id: int, **query) -> list[dict]:
    response = client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", query_string=query, headers=principals.admin.headers
    )
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_events_from_the_real_routes_arrive_signed_and_carry_no_secrets(
    app, client, principals, shop, worker, receiver
):
    everything = list(webhooks.EVENTS)
    hook = register(client, principals, receiver.url, everything, secret=SECRET, description="accounting")
    assert hook["secret"] == SECRET and hook["events"] == everything
    # Never shown again.
    assert "secret" not in client.get(f"/api/v1/webhooks/{hook['id']}", headers=principals.admin.headers).json
    assert all(
        "secret" not in item for item in client.get("/api/v1/webhooks", headers=principals.admin.headers).json["items"]
    )
    generated = register(client, principals, receiver.url, ["node.alert_raised"])
    assert len(generated["secret"]) >= 32

    first = pay(client, principals, shop, "one")
    approved = client.post(f"/api/v1/payments/{first['id']}/approve", json={}, headers=principals.admin.headers)
    assert approved.status_code == 200, approved.json
    second = pay(client, principals, shop, "two")
    rejected = client.post(
        f"/api/v1/payments/{second['id']}/reject", json={"reason": "blurry"}, headers=principals.admin.headers
    )
    assert rejected.status_code == 200, rejected.json
    config_id = approved.json["config_id"]
    suspended = client.post(f"/api/v1/configs/{config_id}/suspend", headers=principals.admin.headers)
    assert suspended.status_code == 200, suspended.json

    worker.burst()
    assert receiver.events() == [
        "config.created",  # the temporary config, made with the payment
        "payment.created",
        "payment.approved",
        "config.created",
        "payment.created",
        "payment.rejected",
        "config.suspended",
    ]
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        uuids = set(session.scalars(select(UserConfig.uuid)))
        token = session.scalar(select(User.subscription_token).where(User.id == shop["user_id"]))
    seen_ids = set()
    for headers, body in receiver.received:
        assert verify(SECRET, headers, body), headers
        assert not verify("not-the-secret-at-all-0123456789", headers, body)  # a wrong secret fails
        assert headers["Content-Type"] == "application/json"
        document = json.loads(body)
        assert document["event"] == headers["X-Rayfleet-Event"]
        assert str(document["delivery_id"]) == headers["X-Rayfleet-Delivery"]
        seen_ids.add(document["delivery_id"])
        text = body.decode()
        # Ids, statuses and amounts; never a UUID, link, subscription token or proof.
        assert not UUID.search(text) and not any(uuid in text for uuid in uuids), text
        assert token not in text and "vless://" not in text and "/sub/" not in text
        assert "AgACAgQAAxkBAAI" not in text and "AQAD-" not in text and "evidence" not in text
    assert len(seen_ids) == len(receiver.received)  # one delivery id per event

    by_event = {json.loads(body)["event"]: json.loads(body)["data"] for _headers, body in receiver.received}
    assert by_event["payment.approved"] == {
        "payment_id": first["id"],
        "user_id": shop["user_id"],
        "purpose": "purchase",
        "status": "approved",
        "amount_cents": 1500,
        "plan_id": shop["plan_id"],
        "config_id": config_id,
        "extends_config_id": None,
        "automatic": False,
    }
    assert by_event["payment.rejected"]["status"] == "rejected" and by_event["payment.rejected"]["banned"] is False
    assert by_event["config.suspended"]["config_id"] == config_id
    assert by_event["config.suspended"]["reason"] == "admin"
    assert by_event["config.created"]["node_id"] == principals.node.principal_id

    log = deliveries(client, principals, hook["id"])
    assert [item["status"] for item in log] == ["delivered"] * 7
    assert all(item["attempts"] == 1 and item["last_status_code"] == 200 and item["delivered_at"] for item in log)
    assert deliveries(client, principals, generated["id"]) == []  # it takes node alerts only
    assert [item["event"] for item in deliveries(client, principals, hook["id"], event="payment.created")] == [
        "payment.created"
    ] * 2
    # Nothing of the secret in the audit log.
    with app.app_context():
        details = [row.details for row in app.extensions["rayfleet.db"].session().scalars(select(AuditLog))]
    assert SECRET not in json.dumps(details)
    assert any(detail.get("secret_supplied") is True for detail in details)


def test_a_receiver_that_is_down_gets_the_event_later_exactly_once(app, client, principals, shop, worker):
    port = free_port()
    hook = register(client, principals, f"http://127.0.0.1:{port}/hook", ["payment.created"], secret=SECRET)
    pay(client, principals, shop, "down")
    worker.burst()  # nobody listens: the first attempt fails
    [delivery] = deliveries(client, principals, hook["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_status_code"] is None and delivery["last_error"].startswith("no answer")
    assert SECRET not in json.dumps(delivery)

    receiver = Receiver(port)
    try:
        time.sleep(2.2)  # the backoff (WEBHOOK_BACKOFF_SECONDS=1, jittered, rounded up to the second)
        worker.burst()  # the worker's scheduler queues the retry the failed attempt scheduled
        [after] = deliveries(client, principals, hook["id"])
        assert after["status"] == "delivered" and after["attempts"] == 2 and after["last_status_code"] == 200
        assert len(receiver.received) == 1
        headers, body = receiver.received[0]
        assert verify(SECRET, headers, body)
        assert headers["X-Rayfleet-Delivery"] == str(delivery["id"])  # the same delivery, so receivers dedupe

        # Exactly once: the sweep, a stray job and a second worker run send nothing more.
        with worker.ctx.session_factory() as session:
            assert requeue_webhooks(session, RedisJobQueue(redis.Redis.from_url(worker.ctx.redis_url))) == []
        assert deliver_webhook_job(delivery["id"])["sent"] is False
        worker.burst()
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_after_its_attempts_a_delivery_fails_and_the_retry_route_sends_it_again(
    app, client, principals, shop, worker, receiver
):
    receiver.status = 500
    hook = register(client, principals, receiver.url, ["payment.created"], secret=SECRET)
    pay(client, principals, shop, "failing")
    worker.burst()
    for _ in range(2):  # WEBHOOK_MAX_ATTEMPTS=3
        time.sleep(2.2 if len(receiver.received) == 1 else 3.2)
        worker.burst()
    [failed] = deliveries(client, principals, hook["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 3
    assert failed["last_status_code"] == 500 and failed["last_error"] == "HTTP 500"
    assert failed["next_attempt_at"] is None
    assert len(receiver.received) == 3
    assert deliveries(client, principals, hook["id"], status="failed")[0]["id"] == failed["id"]
    with worker.ctx.session_factory() as session:  # failed stays failed: the sweep leaves it alone
        assert requeue_webhooks(session, RedisJobQueue(redis.Redis.from_url(worker.ctx.redis_url))) == []

    receiver.status = 204
    retry = f"/api/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/retry"
    response = client.post(retry, headers=principals.admin.headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "pending" and response.json["attempts"] == 0
    worker.burst()
    [delivered] = deliveries(client, principals, hook["id"])
    assert delivered["status"] == "delivered" and delivered["last_status_code"] == 204
    assert {headers["X-Rayfleet-Delivery"] for headers, _body in receiver.received} == {str(failed["id"])}
    assert len(receiver.received) == 4
    again = client.post(retry, headers=principals.admin.headers)
    assert again.status_code == 409 and again.json["error"] == "already_delivered"
    assert (
        client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/999999/retry", headers=principals.admin.headers
        ).status_code
        == 404
    )
    with app.app_context():
        actions = app.extensions["rayfleet.db"].session().scalars(select(AuditLog.action)).all()
    assert "webhook.retry" in actions


def test_the_sweep_queues_a_delivery_whose_commit_could_not_queue_it(app, client, principals, shop, worker, receiver):
    """Redis down at the commit (here: a session without the after-commit hook): the row waits, and the
    sweep's re-queue delivers it."""
    hook = register(client, principals, receiver.url, ["node.alert_cleared"], secret=SECRET)
    engine = make_engine(app.extensions["rayfleet.settings"].database_url)
    try:
        with sessionmaker(engine)() as session:
            node = session.get_one(Node, principals.node.principal_id)
            [delivery_id] = webhooks.emit(session, "node.alert_cleared", webhooks.node_payload(node, cleared=["cpu"]))
            session.commit()
    finally:
        engine.dispose()
    worker.burst()
    assert receiver.received == []
    with worker.ctx.session_factory() as session:
        assert requeue_webhooks(session, RedisJobQueue(redis.Redis.from_url(worker.ctx.redis_url))) == [delivery_id]
    worker.burst()
    [(headers, body)] = receiver.received
    assert verify(SECRET, headers, body)
    assert json.loads(body)["data"] == {
        "node_id": principals.node.principal_id,
        "node_name": "node-a",
        "location_tag": "abroad",
        "cleared": ["cpu"],
    }
    assert deliveries(client, principals, hook["id"])[0]["status"] == "delivered"


def test_internal_addresses_are_refused_unless_allowed(app, client, principals, shop, worker, receiver):
    worker.ctx.webhook_policy = replace(worker.ctx.webhook_policy, allow_private_targets=False)
    hook = register(client, principals, receiver.url, ["payment.created"])
    localhost = register(client, principals, f"http://localhost:{receiver.port}/x", ["payment.created"])
    pay(client, principals, shop, "ssrf")
    worker.burst()
    assert receiver.received == []
    for webhook_id in (hook["id"], localhost["id"]):
        [refused] = deliveries(client, principals, webhook_id)
        assert refused["status"] == "failed" and refused["attempts"] == 1
        assert refused["last_error"].startswith("refused") and refused["last_status_code"] is None


def fake_dns(monkeypatch, name: str, answers: list[str]) -> list[str]:
    """NAME resolves to each of ANSWERS in turn (the last one from then on); other names as usual. Returns the
    answers given, in order. DNS is what these tests cannot control, so it is the one thing faked."""
    real, given = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        given.append(answers[min(len(given), len(answers) - 1)])
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (given[-1], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


def outgoing_to(url: str) -> webhooks.Outgoing:
    return webhooks.Outgoing(delivery_id=1, url=url, secret="s" * 32, event="payment.created", body=b"{}", attempts=0)


def test_a_name_rebound_to_an_internal_address_after_the_check_gets_nothing(monkeypatch, receiver):
    """DNS rebinding: the name passes the check with a public answer, then answers 127.0.0.1 for the connect.
    The POST connects only to what it checked itself, so the internal receiver gets nothing."""
    public = "1.1.1.1"  # only the first lookup's answer, the check's: nothing ever connects to it
    given = fake_dns(monkeypatch, "hooks.rebind.test", [public, "127.0.0.1"])
    url = f"http://hooks.rebind.test:{receiver.port}/hooks/rayfleet"
    assert webhook_job.target_problem(url, allow_private=False) is None
    assert webhook_job.post(outgoing_to(url), 2, allow_private=False) == (None, webhook_job.INTERNAL_TARGET)
    assert receiver.received == [] and given == [public, "127.0.0.1"]
    # Without the connect-time check (what private targets allowed means) the same lookup reaches the receiver.
    assert webhook_job.post(outgoing_to(url), 2, allow_private=True) == (200, None)
    assert len(receiver.received) == 1


def test_a_checked_connection_goes_to_the_checked_address_under_the_urls_host_name(monkeypatch, receiver):
    given = fake_dns(monkeypatch, "hooks.public.test", ["127.0.0.1"])
    monkeypatch.setattr(webhook_job, "is_internal", lambda address: False)  # as if 127.0.0.1 were a public address
    url = f"http://hooks.public.test:{receiver.port}/hooks/rayfleet"
    assert webhook_job.post(outgoing_to(url), 2, allow_private=False) == (200, None)
    [(headers, body)] = receiver.received
    assert headers["Host"] == f"hooks.public.test:{receiver.port}" and body == b"{}"
    assert given == ["127.0.0.1"]  # resolved once, for the check and the connection together


def test_inactive_webhooks_get_nothing_and_payloads_are_checked(app, client, principals, shop, worker, receiver):
    hook = register(client, principals, receiver.url, ["payment.created"], is_active=False)
    pay(client, principals, shop, "inactive")
    worker.burst()
    assert receiver.received == [] and deliveries(client, principals, hook["id"]) == []
    patched = client.patch(
        f"/api/v1/webhooks/{hook['id']}", json={"is_active": True, "secret": SECRET}, headers=principals.admin.headers
    )
    assert patched.status_code == 200 and patched.json["is_active"] is True and "secret" not in patched.json
    pay(client, principals, shop, "active")
    worker.burst()
    [(headers, body)] = receiver.received
    assert verify(SECRET, headers, body)  # the new secret signs
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        with pytest.raises(ValueError, match="not"):
            webhooks.emit(session, "payment.created", {"payment_id": 1, "uuid": "x"})
        with pytest.raises(ValueError, match="unknown"):
            webhooks.emit(session, "payment.refunded", {"payment_id": 1})
        session.rollback()
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=principals.admin.headers).status_code == 204
    assert client.get(f"/api/v1/webhooks/{hook['id']}", headers=principals.admin.headers).status_code == 404
    with app.app_context():
        assert app.extensions["rayfleet.db"].session().scalar(select(WebhookDelivery.id)) is None


def test_only_admins_manage_webhooks_and_bad_input_is_refused(app, client, principals, receiver):
    good = {"url": receiver.url, "events": ["payment.created"]}
    for kind in ("bot", "node"):
        headers = principals.of(kind).headers
        assert client.get("/api/v1/webhooks", headers=headers).status_code == 403
        assert client.post("/api/v1/webhooks", json=good, headers=headers).status_code == 403
    assert client.get("/api/v1/webhooks").status_code == 401
    admin = principals.admin.headers
    for body, code in (
        ({**good, "url": "ftp://files.example.com/drop"}, "validation_error"),
        ({**good, "url": "file:///etc/passwd"}, "validation_error"),
        ({**good, "url": "gopher://example.com/"}, "validation_error"),
        ({**good, "url": "https://user:password@hooks.example.com/x"}, "invalid_webhook_url"),
        ({**good, "url": "https://hooks.example.com/x#frag"}, "invalid_webhook_url"),
        ({**good, "url": "https://hooks.example.com:99999/x"}, "invalid_webhook_url"),
        ({**good, "url": "https://" + "a" * 2048}, "validation_error"),
        ({**good, "events": ["payment.refunded"]}, "validation_error"),
        ({**good, "events": []}, "validation_error"),
        ({**good, "secret": "short"}, "validation_error"),
        ({"url": receiver.url}, "validation_error"),
    ):
        response = client.post("/api/v1/webhooks", json=body, headers=admin)
        assert response.status_code == 422 and response.json["error"] == code, (body, response.json)
    hook = client.post("/api/v1/webhooks", json=good, headers=admin).json
    bad = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"url": "https://u:p@x.example/"}, headers=admin)
    assert bad.status_code == 422 and bad.json["error"] == "invalid_webhook_url"
    assert client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=principals.bot.headers).status_code == 403
    assert client.get("/api/v1/webhooks/999999/deliveries", headers=admin).status_code == 404
    with app.app_context():
        rows = (
            app.extensions["rayfleet.db"].session().scalars(select(AuditLog).where(AuditLog.action == "webhook.create"))
        )
        assert [row.details["host"] for row in rows] == ["127.0.0.1"]


def test_backoff_grows_and_is_jittered():
    policy = DeliveryPolicy(backoff_seconds=30, max_attempts=8)
    for attempts, ceiling in ((1, 30), (2, 60), (5, 480), (20, 6 * 3600)):
        waits = {round(webhooks.backoff_seconds(policy, attempts), 3) for _ in range(20)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits) and len(waits) > 1
    assert utcnow().tzinfo is not None


HEARTBEAT = {"cpu": 5.0, "mem": 10.0, "bandwidth_in": 0, "bandwidth_out": 0, "latency_ms": 4.0, "core_active": True}


def test_node_alerts_migrations_and_quota_suspensions_are_delivered(
    app, client, principals, settings, worker, receiver
):
    """The events the fleet makes: a node's alert raised and cleared (heartbeats), a config moved off it going
    live on the other node (the migration job and the sync's follow-up, in the worker), and a config suspended
    at its cap by a heartbeat's traffic report."""
    events = ["config.suspended", "config.migrated", "node.alert_raised", "node.alert_cleared"]
    hook = register(client, principals, receiver.url, events, secret=SECRET)
    admin = principals.admin.headers
    a, b = principals.node.principal_id, principals.other_node.principal_id
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        for node_id in (a, b):
            node = session.get(Node, node_id)
            node.status, node.capacity_score = "active", 50
        session.commit()
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin).json
    tiny = client.post("/api/v1/plans", json={**PLAN, "name": "Tiny", "data_limit_mb": 1}, headers=admin).json
    user = client.put("/api/v1/users/telegram/9001", json={}, headers=admin).json["id"]

    def beat(node, **fields):
        response = client.post("/api/v1/nodes/heartbeat", json={**HEARTBEAT, **fields}, headers=node.headers)
        assert response.status_code == 200, response.json

    def applied(node, node_id):
        served = client.get(f"/api/v1/nodes/{node_id}/configs", headers=node.headers).json
        body = {"revision": served["revision"]}
        assert client.post(f"/api/v1/nodes/{node_id}/configs/sync", json=body, headers=node.headers).status_code == 200

    def config_on(plan_id, node_id):
        body = {"plan_id": plan_id, "node_id": node_id}
        response = client.post(f"/api/v1/users/{user}/configs", json=body, headers=admin)
        assert response.status_code == 201, response.json
        return response.json["id"]

    beat(principals.other_node)
    moving = config_on(plan["id"], a)
    capped = config_on(tiny["id"], b)
    applied(principals.node, a)
    applied(principals.other_node, b)
    assert client.patch(f"/api/v1/nodes/{a}", json={"thresholds": {"latency_ms": 10}}, headers=admin).status_code == 200
    for _ in range(3):
        beat(principals.node, latency_ms=50)
    worker.ctx.policy = HealthPolicy.from_settings(settings)
    assert tasks.migrate_node_job(a)["moved"] == 1
    applied(principals.other_node, b)
    tasks.after_sync(worker.ctx)  # the move goes live on node-b
    for _ in range(3):
        beat(principals.node, latency_ms=5)
    now = utcnow().isoformat()
    report = {
        "report_id": "webhook-quota-1",
        "period_start": now,
        "period_end": now,
        "usage": [{"email": f"cfg-{capped}", "uplink": 1024 * 1024, "downlink": 1024 * 1024}],
    }
    beat(principals.other_node, reports=[report])

    worker.burst()
    assert receiver.events() == ["node.alert_raised", "config.migrated", "node.alert_cleared", "config.suspended"]
    data = {}
    for headers, body in receiver.received:
        assert verify(SECRET, headers, body)
        assert not UUID.search(body.decode())
        data[headers["X-Rayfleet-Event"]] = json.loads(body)["data"]
    assert data["node.alert_raised"] == {
        "node_id": a,
        "node_name": "node-a",
        "location_tag": "abroad",
        "alerts": ["latency"],
        "raised": ["latency"],
    }
    assert data["node.alert_cleared"]["cleared"] == ["latency"]
    migrated = data["config.migrated"]
    assert (migrated["config_id"], migrated["from_node_id"], migrated["to_node_id"]) == (moving, a, b)
    assert (migrated["from_node_name"], migrated["to_node_name"]) == ("node-a", "node-b")
    assert (data["config.suspended"]["config_id"], data["config.suspended"]["reason"]) == (capped, "quota")
    assert {item["status"] for item in deliveries(client, principals, hook["id"])} == {"delivered"}
