"""The authorization matrix: every route, called by every kind of caller.

MATRIX is written out by hand from the @require(...) decorators in control_api/api/*.py. A route
missing from it fails test_every_route_is_in_the_matrix, so a new endpoint cannot ship without
someone deciding who may call it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import pytest
import redis
from sqlalchemy import func, select

from control_api import create_app
from control_api.models import Admin, AuditLog, BotClient, Node
from tests.conftest import Principals, create_admin, create_bot, create_node, login, make_settings, reset_postgres

CALLERS = ("anonymous", "admin", "bot", "node")
PNG = b"\x89PNG\r\n\x1a\n" + b"matrix proof"

# (method, rule) -> the principal kinds allowed to call it. Everyone else gets 403; no token gets 401.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/api/v1/auth/revoke"): frozenset({"admin", "bot", "node"}),
    ("GET", "/api/v1/auth/me"): frozenset({"admin", "bot", "node"}),
    ("GET", "/api/v1/plans"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/plans"): frozenset({"admin"}),
    ("GET", "/api/v1/plans/<int:plan_id>"): frozenset({"admin", "bot"}),
    ("PATCH", "/api/v1/plans/<int:plan_id>"): frozenset({"admin"}),
    ("DELETE", "/api/v1/plans/<int:plan_id>"): frozenset({"admin"}),
    ("GET", "/api/v1/locations"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/locations"): frozenset({"admin"}),
    ("GET", "/api/v1/locations/<int:location_id>"): frozenset({"admin", "bot"}),
    ("PATCH", "/api/v1/locations/<int:location_id>"): frozenset({"admin"}),
    ("DELETE", "/api/v1/locations/<int:location_id>"): frozenset({"admin"}),
    ("PUT", "/api/v1/users/telegram/<int:telegram_id>"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/telegram/<int:telegram_id>"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users"): frozenset({"admin"}),
    ("GET", "/api/v1/users/segments"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/segments/<any(all, active, expired, never_bought):segment>"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/<int:user_id>"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/users/<int:user_id>/ban"): frozenset({"admin"}),
    ("POST", "/api/v1/users/<int:user_id>/unban"): frozenset({"admin"}),
    ("POST", "/api/v1/nodes"): frozenset({"admin"}),
    ("GET", "/api/v1/nodes"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/nodes/<int:node_id>"): frozenset({"admin", "node"}),
    ("POST", "/api/v1/nodes/heartbeat"): frozenset({"node"}),
    ("GET", "/api/v1/nodes/<int:node_id>/configs"): frozenset({"admin", "node"}),
    ("POST", "/api/v1/nodes/<int:node_id>/configs/sync"): frozenset({"node"}),
    ("GET", "/api/v1/nodes/alerts"): frozenset({"admin", "bot"}),
    ("PATCH", "/api/v1/nodes/<int:node_id>"): frozenset({"admin"}),
    ("POST", "/api/v1/nodes/<int:node_id>/drain"): frozenset({"admin"}),
    ("POST", "/api/v1/nodes/<int:node_id>/undrain"): frozenset({"admin"}),
    ("GET", "/api/v1/dashboard/stats"): frozenset({"admin"}),
    ("GET", "/api/v1/dashboard/sales"): frozenset({"admin"}),
    ("POST", "/api/v1/users/<int:user_id>/configs"): frozenset({"admin"}),
    ("POST", "/api/v1/configs/<int:config_id>/suspend"): frozenset({"admin"}),
    ("POST", "/api/v1/configs/<int:config_id>/resume"): frozenset({"admin"}),
    ("POST", "/api/v1/configs/<int:config_id>/devices/reset"): frozenset({"admin"}),
    ("POST", "/api/v1/payments"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/payments"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/payments/<int:payment_id>"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/payments/<int:payment_id>/approve"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/payments/<int:payment_id>/reject"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/payments/<int:payment_id>/review-events"): frozenset({"admin", "bot"}),
    ("PUT", "/api/v1/payments/<int:payment_id>/proof"): frozenset({"admin", "bot"}),
    # The proof file itself: admins only (the bot has the Telegram file id).
    ("GET", "/api/v1/payments/<int:payment_id>/proof"): frozenset({"admin"}),
    ("GET", "/api/v1/notifications"): frozenset({"bot"}),
    ("POST", "/api/v1/notifications/ack"): frozenset({"bot"}),
    ("POST", "/api/v1/users/<int:user_id>/trial"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/<int:user_id>/configs"): frozenset({"admin", "bot"}),
    ("PUT", "/api/v1/users/<int:user_id>/admin"): frozenset({"admin"}),
    ("GET", "/api/v1/users/<int:user_id>/wallet"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/users/<int:user_id>/wallet/adjust"): frozenset({"admin"}),
    ("POST", "/api/v1/users/<int:user_id>/wallet/purchases"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/<int:user_id>/referral"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/<int:user_id>/history"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/configs/<int:config_id>"): frozenset({"admin"}),
    ("GET", "/api/v1/configs/<int:config_id>/renewal"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/configs/<int:config_id>/renew"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/configs/<int:config_id>/extra-data"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/configs/<int:config_id>/extra-data"): frozenset({"admin", "bot"}),
    ("PUT", "/api/v1/configs/<int:config_id>/auto-renewal"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/nodes/<int:node_id>/provision"): frozenset({"admin"}),
    ("GET", "/api/v1/users/<int:user_id>/subscription"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/users/<int:user_id>/subscription/rotate"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/configs/<int:config_id>/qr.png"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/users/<int:user_id>/subscription/qr.png"): frozenset({"admin", "bot"}),
    ("POST", "/api/v1/discount-codes"): frozenset({"admin"}),
    ("GET", "/api/v1/discount-codes"): frozenset({"admin"}),
    ("GET", "/api/v1/discount-codes/<int:code_id>"): frozenset({"admin"}),
    ("PATCH", "/api/v1/discount-codes/<int:code_id>"): frozenset({"admin"}),
    ("DELETE", "/api/v1/discount-codes/<int:code_id>"): frozenset({"admin"}),
    ("POST", "/api/v1/discount-codes/quote"): frozenset({"admin", "bot"}),
    ("GET", "/api/v1/webhooks"): frozenset({"admin"}),
    ("POST", "/api/v1/webhooks"): frozenset({"admin"}),
    ("GET", "/api/v1/webhooks/<int:webhook_id>"): frozenset({"admin"}),
    ("PATCH", "/api/v1/webhooks/<int:webhook_id>"): frozenset({"admin"}),
    ("DELETE", "/api/v1/webhooks/<int:webhook_id>"): frozenset({"admin"}),
    ("GET", "/api/v1/webhooks/<int:webhook_id>/deliveries"): frozenset({"admin"}),
    ("POST", "/api/v1/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/retry"): frozenset({"admin"}),
    ("GET", "/api/v1/principals/admins"): frozenset({"admin"}),
    ("GET", "/api/v1/principals/bot-clients"): frozenset({"admin"}),
    **{
        ("POST", f"/api/v1/principals/{collection}/<int:{id_name}>/{verb}"): frozenset({"admin"})
        for collection, id_name in (("admins", "admin_id"), ("bot-clients", "bot_client_id"), ("nodes", "node_id"))
        for verb in ("disable", "enable", "rotate-secret")
    },
}

# Public or separately protected routes, outside the matrix.
# /admin: the web console, behind its own session login (tests/integration/console).
SKIPPED_PREFIXES = ("/openapi.json", "/docs", "/static", "/metrics", "/admin")
SKIPPED_RULES = {"/api/v1/health", "/api/v1/auth/token", "/api/v1/nodes/register", "/sub/<token>"}
# Added by Flask/Werkzeug to every GET route / every route; they never reach a view.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}

UNIQUE = itertools.count(1)


@pytest.fixture(scope="module")
def world(migrated_postgres, redis_url, tmp_path_factory):
    """One app and one logged-in principal of each kind for the whole module (logins are slow scrypt checks).

    Tests only ever add rows of their own (unique names and ids), so they do not depend on each other's order.
    """
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()
    proofs = str(tmp_path_factory.mktemp("proofs"))
    app = create_app(make_settings(migrated_postgres, redis_url, proof_storage_dir=proofs))
    client = app.test_client()
    admin = create_admin(app, client, "matrix-admin")
    principals = Principals(
        admin=admin,
        bot=create_bot(app, client, "matrix-bot"),
        node=create_node(client, admin, "matrix-node-a"),
        other_node=create_node(client, admin, "matrix-node-b", public_ip="203.0.113.11"),
    )
    yield app, client, principals
    app.extensions["rayfleet.db"].engine.dispose()


def app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in SKIPPED_RULES or rule.rule.startswith(SKIPPED_PREFIXES):
            continue
        routes.update((method, rule.rule) for method in rule.methods - IMPLICIT_METHODS)
    return routes


def endpoint_of(app, method: str, rule: str) -> str:
    return next(r.endpoint for r in app.url_map.iter_rules() if r.rule == rule and method in r.methods)


def test_every_route_is_in_the_matrix(world):
    app, _client, _principals = world
    routes = app_routes(app)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without an authorization decision; add them to MATRIX: {missing}"
    assert not stale, f"MATRIX lists routes the app does not have: {stale}"


def test_matrix_agrees_with_the_require_decorators(world):
    app, _client, _principals = world
    for method, rule in MATRIX:
        view = app.view_functions[endpoint_of(app, method, rule)]
        declared = getattr(view, "_rayfleet_kinds", None)
        assert declared is not None, f"{method} {rule} has no @require(...)"
        assert frozenset(declared) == MATRIX[method, rule], f"{method} {rule}"


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json, response.get_data(as_text=True)
    assert set(response.json) == {"error", "message"}, response.json
    assert response.json["error"] == code
    assert isinstance(response.json["message"], str) and response.json["message"]


def body_for(method: str, rule: str, caller: str) -> dict | None:
    """A valid body, unique per call, so a wrongly admitted call would really succeed."""
    caller = f"{caller}-{next(UNIQUE)}"
    if method == "POST" and rule == "/api/v1/plans":
        return {
            "name": f"Matrix plan ({caller})",
            "location_tag": "abroad",
            "duration_days": 30,
            "max_devices": 2,
            "data_limit_mb": 50_000,
            "price_cents": 500,
        }
    if method == "PATCH" and rule.startswith("/api/v1/nodes/"):
        return {"capacity_score": 500, "thresholds": {"cpu_percent": 90}}
    if method == "POST" and rule == "/api/v1/locations":
        return {"tag": f"matrix-{caller}", "name": f"Matrix {caller}", "name_fa": "ماتریس"}
    if method == "PATCH" and rule.startswith("/api/v1/locations/"):
        return {"name": f"Renamed by {caller}", "sort_order": 5}
    if method == "POST" and rule == "/api/v1/discount-codes":
        return {"code": f"MATRIX-{caller}", "percent_off": 10}
    if method == "POST" and rule == "/api/v1/webhooks":
        return {"url": f"https://hooks.example.com/{caller}", "events": ["payment.created"]}
    if method == "PATCH" and rule.startswith("/api/v1/webhooks/"):
        return {"description": f"Renamed by {caller}", "is_active": True}
    if method == "PATCH" and rule.startswith("/api/v1/discount-codes/"):
        return {"max_uses": 100, "is_active": True}
    if method == "PATCH":
        return {"price_cents": 900, "name": f"Renamed by {caller}"}
    if method == "PUT" and "/users/telegram/" in rule:
        return {"username": f"matrix_{caller}", "language": "fa"}
    if rule.endswith("/ban"):
        return {"reason": f"banned by {caller}"}
    if rule.endswith("/reject"):
        return {"reason": f"rejected by {caller}"}
    if rule.endswith("/admin"):
        return {"is_admin": True}
    if rule.endswith("/review-events"):
        return {"event": "held", "decision": "approve"}
    if rule.endswith("/wallet/adjust"):
        return {"amount_cents": 100, "reason": f"credited by {caller}"}
    if rule.endswith("/notifications/ack"):
        return {"ids": [1]}
    if rule.endswith("/configs/sync"):
        return {"revision": 0}
    if rule == "/api/v1/nodes/heartbeat":
        return {"cpu": 1.0, "mem": 2.0, "bandwidth_in": 0, "bandwidth_out": 0, "core_active": True}
    if method == "POST" and rule == "/api/v1/nodes":
        return {"name": f"matrix-{caller}", "region": "eu-west-1", "location_tag": "abroad"}
    if method in {"POST", "PUT", "PATCH"}:
        return {}
    return None


@pytest.fixture
def path_ids(world) -> dict[str, int]:
    """Fresh rows for every <int:...> in the rules: a plan, a (banned) user, and the calling node's own id."""
    _app, client, principals = world
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json=body_for("POST", "/api/v1/plans", "setup"), headers=admin)
    assert plan.status_code == 201, plan.json
    telegram_id = 777_000_000 + next(UNIQUE)
    user = client.put(f"/api/v1/users/telegram/{telegram_id}", json={"username": "matrix"}, headers=admin)
    assert user.status_code == 201, user.json
    # Banned, so that unban can succeed; ban is allowed on a banned user too.
    banned = client.post(f"/api/v1/users/{user.json['id']}/ban", json={"reason": "setup"}, headers=admin)
    assert banned.status_code == 200, banned.json
    # Configs need an unbanned user: one pending config to suspend and one suspended config to resume.
    buyer = client.put(f"/api/v1/users/telegram/{telegram_id + 1}", json={}, headers=admin).json["id"]
    # Money to buy with from the balance.
    credit = {"amount_cents": 10**9, "reason": "matrix purchases"}
    assert client.post(f"/api/v1/users/{buyer}/wallet/adjust", json=credit, headers=admin).status_code == 201
    node_id = principals.node.principal_id
    # A plan of their own: the path's plan must stay deletable (a plan with configs is not).
    config_plan = client.post("/api/v1/plans", json=body_for("POST", "/api/v1/plans", "configs"), headers=admin).json
    configs = [
        client.post(
            f"/api/v1/users/{buyer}/configs", json={"plan_id": config_plan["id"], "node_id": node_id}, headers=admin
        )
        for _ in range(2)
    ]
    assert all(config.status_code == 201 for config in configs), [config.json for config in configs]
    client.post(f"/api/v1/configs/{configs[1].json['id']}/suspend", headers=admin)
    # Payments and trials place configs on an active node of the plan's location.
    with world[0].app_context():
        session = world[0].extensions["rayfleet.db"].session()
        node = session.get(Node, node_id)
        node.status, node.capacity_score = "active", 10**6  # every test of the module adds configs to it
        session.commit()
    telegram_admin = client.put(f"/api/v1/users/telegram/{telegram_id + 2}", json={}, headers=admin).json["id"]
    assert (
        client.put(f"/api/v1/users/{telegram_admin}/admin", json={"is_admin": True}, headers=admin).status_code == 200
    )
    # A code that was never used (so it can be deleted), and one for the quotes.
    code = client.post("/api/v1/discount-codes", json={"code": f"PATH-{next(UNIQUE)}", "percent_off": 5}, headers=admin)
    assert code.status_code == 201, code.json
    ids = {"code_id": code.json["id"], "code": code.json["code"]}
    # A catalog entry whose tag no plan or node carries (so it can be deleted).
    location = client.post("/api/v1/locations", json=body_for("POST", "/api/v1/locations", "setup"), headers=admin)
    assert location.status_code == 201, location.json
    ids["location_id"] = location.json["id"]
    # A webhook that takes payment.created: the payments below give it pending deliveries (no worker runs here).
    webhook = client.post("/api/v1/webhooks", json=body_for("POST", "/api/v1/webhooks", "setup"), headers=admin)
    assert webhook.status_code == 201, webhook.json
    ids["webhook_id"] = webhook.json["id"]
    for verb in ("approve", "reject", "proof"):
        for caller in CALLERS:
            payment = client.post(
                "/api/v1/payments",
                json={
                    "user_id": buyer,
                    "plan_id": config_plan["id"],
                    "amount_cents": config_plan["price_cents"],
                    "evidence_file_id": f"proof-{verb}-{caller}-{next(UNIQUE)}",
                    "evidence_unique_id": f"unique-{verb}-{caller}-{next(UNIQUE)}",
                },
                headers=admin,
            )
            assert payment.status_code == 201, payment.json
            ids[f"payment_{verb}_{caller}"] = payment.json["id"]
    # A payment with its proof file, for admins to read.
    with_proof = ids["payment_proof_anonymous"]
    stored = client.put(
        f"/api/v1/payments/{with_proof}/proof?user_id={buyer}", data=PNG, headers={**admin, "Content-Type": "image/png"}
    )
    assert stored.status_code == 200, stored.json
    log = client.get(f"/api/v1/webhooks/{ids['webhook_id']}/deliveries", headers=admin)
    assert log.status_code == 200 and log.json["items"], log.json
    ids["delivery_id"] = log.json["items"][0]["id"]
    for caller in CALLERS:
        # One renewal or extra data in review per config: a paid config per caller.
        extended = client.post(
            f"/api/v1/users/{buyer}/configs", json={"plan_id": config_plan["id"], "node_id": node_id}, headers=admin
        )
        assert extended.status_code == 201, extended.json
        ids[f"extension_config_{caller}"] = extended.json["id"]
    for number, caller in enumerate(CALLERS):
        # A trial works once per user: one user per caller.
        trial_user = client.put(f"/api/v1/users/telegram/{telegram_id + 10 + number}", json={}, headers=admin)
        ids[f"trial_user_{caller}"] = trial_user.json["id"]
    # A config on a node with an inbound, so it has a share link (for its QR code).
    linked_node = client.post(
        "/api/v1/nodes",
        json={
            "name": f"matrix-linked-{next(UNIQUE)}",
            "region": "eu-west-1",
            "location_tag": "abroad",
            "public_ip": "203.0.113.12",
            "inbounds": [{"profile": "vless-tcp-tls", "port": 443}],
        },
        headers=admin,
    )
    assert linked_node.status_code == 201, linked_node.json
    linked = client.post(
        f"/api/v1/users/{buyer}/configs",
        json={"plan_id": config_plan["id"], "node_id": linked_node.json["id"]},
        headers=admin,
    )
    assert linked.status_code == 201 and linked.json["links"], linked.json
    # Spare principals for the disable/enable/rotate routes.
    spare_node = client.post(
        "/api/v1/nodes",
        json={"name": f"matrix-spare-{next(UNIQUE)}", "region": "x", "location_tag": "y"},
        headers=admin,
    )
    assert spare_node.status_code == 201, spare_node.json
    spare_name = f"spare{next(UNIQUE)}"
    create_admin(world[0], client, spare_name)
    spare_bot_name = f"spare-bot{next(UNIQUE)}"
    create_bot(world[0], client, spare_bot_name)
    with world[0].app_context():
        session = world[0].extensions["rayfleet.db"].session()
        ids["admin_id"] = session.scalar(select(Admin.id).where(Admin.username == spare_name))
        ids["bot_client_id"] = session.scalar(select(BotClient.id).where(BotClient.name == spare_bot_name))
    return {
        "linked_config_id": linked.json["id"],
        "spare_node_id": spare_node.json["id"],
        **ids,
        "payment_id": ids["payment_approve_anonymous"],
        "payment_with_proof": with_proof,
        "telegram_admin_id": telegram_id + 2,
        "config_plan_price": config_plan["price_cents"],
        "plan_id": plan.json["id"],
        "user_id": user.json["id"],
        "telegram_id": telegram_id,
        "node_id": node_id,
        "buyer_id": buyer,
        "config_plan_id": config_plan["id"],
        "pending_config_id": configs[0].json["id"],
        "suspended_config_id": configs[1].json["id"],
    }


# Rules whose ids must name rows in a particular state.
PATH_ID_OVERRIDES = {
    "/api/v1/users/<int:user_id>/configs": {"user_id": "buyer_id"},
    # A banned user buys nothing: the buyer, who has a balance.
    "/api/v1/users/<int:user_id>/wallet/purchases": {"user_id": "buyer_id"},
    "/api/v1/configs/<int:config_id>/suspend": {"config_id": "pending_config_id"},
    "/api/v1/configs/<int:config_id>/resume": {"config_id": "suspended_config_id"},
    "/api/v1/configs/<int:config_id>": {"config_id": "pending_config_id"},
    "/api/v1/configs/<int:config_id>/devices/reset": {"config_id": "pending_config_id"},
    "/api/v1/configs/<int:config_id>/qr.png": {"config_id": "linked_config_id"},
    # The buyer's paid config: opting in needs one that can be renewed.
    "/api/v1/configs/<int:config_id>/auto-renewal": {"config_id": "pending_config_id"},
    # The buyer's paid configs (call() gives each caller its own).
    **{
        f"/api/v1/configs/<int:config_id>/{action}": {"config_id": "pending_config_id"}
        for action in ("renewal", "renew", "extra-data")
    },
    # Disabling or rotating acts on spare principals, never on the ones the matrix logs in with.
    **{
        f"/api/v1/principals/nodes/<int:node_id>/{verb}": {"node_id": "spare_node_id"}
        for verb in ("disable", "enable", "rotate-secret")
    },
}


def audit_rows(app) -> int:
    with app.app_context():
        return app.extensions["rayfleet.db"].session().scalar(select(func.count()).select_from(AuditLog))


@pytest.mark.parametrize(("method", "rule"), sorted(MATRIX), ids=[f"{m} {r}" for m, r in sorted(MATRIX)])
def test_matrix(world, path_ids, method, rule):
    app, client, principals = world
    allowed = MATRIX[method, rule]
    overrides = PATH_ID_OVERRIDES.get(rule, {})
    path = re.sub(r"<int:(\w+)>", lambda match: str(path_ids[overrides.get(match.group(1), match.group(1))]), rule)
    # `<any(a, b):name>` (a segment): the rule's last choice.
    path = re.sub(r"<any\(([\w ,]+)\):\w+>", lambda match: match.group(1).split(",")[-1].strip(), path)
    assert "<" not in path, path
    if rule == "/api/v1/auth/revoke":
        # Revoking ends the token used for the call, so this route gets tokens of its own.
        fresh = {kind: login(client, replace(principals.of(kind))) for kind in ("admin", "bot", "node")}
        principals = replace(principals, **fresh)

    def call(caller: str):
        headers = {} if caller == "anonymous" else principals.of(caller).headers
        body = body_for(method, rule, caller)
        target = path
        if rule == "/api/v1/users/<int:user_id>/configs" and method == "POST":
            body = {"plan_id": path_ids["config_plan_id"], "node_id": path_ids["node_id"]}
        if rule.endswith("/wallet/purchases"):
            body = {"plan_id": path_ids["config_plan_id"]}
        if rule == "/api/v1/discount-codes/quote":
            body = {"code": path_ids["code"], "plan_id": path_ids["config_plan_id"], "user_id": path_ids["buyer_id"]}
        if rule == "/api/v1/payments" and method == "POST":
            body = {
                "user_id": path_ids["buyer_id"],
                "plan_id": path_ids["config_plan_id"],
                "amount_cents": path_ids["config_plan_price"],
                "evidence_file_id": f"proof-{caller}-{next(UNIQUE)}",
                "evidence_unique_id": f"unique-{caller}-{next(UNIQUE)}",
            }
        if rule.endswith(("/approve", "/reject")):
            # Each caller decides a payment of its own (a decided payment answers 409); the bot acts
            # for a Telegram admin.
            verb = "approve" if rule.endswith("/approve") else "reject"
            target = re.sub(r"/payments/[0-9]+/", f"/payments/{path_ids[f'payment_{verb}_{caller}']}/", path)
            if caller == "bot":
                body = {**(body or {}), "acting_telegram_id": path_ids["telegram_admin_id"]}
        if rule.endswith("/review-events") and caller == "bot":
            body = {**(body or {}), "acting_telegram_id": path_ids["telegram_admin_id"]}
        acting_reads = ("/api/v1/nodes", "/api/v1/nodes/alerts", "/api/v1/users/segments")
        if (rule in acting_reads or rule.startswith("/api/v1/users/segments/")) and method == "GET" and caller == "bot":
            target = f"{path}?acting_telegram_id={path_ids['telegram_admin_id']}"
        if rule.endswith(("/renewal", "/renew", "/extra-data")):
            config_id = path_ids[f"extension_config_{caller}"]
            target = re.sub(r"/configs/[0-9]+/", f"/configs/{config_id}/", path)
            order = (
                {"plan_id": path_ids["config_plan_id"], "amount_cents": path_ids["config_plan_price"]}
                if "renew" in rule
                else {"data_mb": 1024, "amount_cents": 100}  # EXTRA_DATA_PRICE_CENTS_PER_GB's default
            )
            if method == "GET":
                target += f"?user_id={path_ids['buyer_id']}&" + "&".join(
                    f"{name}={value}" for name, value in order.items() if name != "amount_cents"
                )
            else:
                body = {
                    "user_id": path_ids["buyer_id"],
                    **order,
                    "evidence_file_id": f"proof-{caller}-{next(UNIQUE)}",
                    "evidence_unique_id": f"unique-{caller}-{next(UNIQUE)}",
                }
        if rule.endswith("/auto-renewal"):
            body = {"user_id": path_ids["buyer_id"], "enabled": True}
        if rule.endswith("/trial"):
            target = re.sub(r"/users/[0-9]+/", f"/users/{path_ids[f'trial_user_{caller}']}/", path)
        if rule.endswith("/proof") and method == "PUT":
            # Each caller attaches a proof to a pending payment of its own (a second proof answers 409).
            target = f"/api/v1/payments/{path_ids[f'payment_proof_{caller}']}/proof?user_id={path_ids['buyer_id']}"
            return client.open(target, method=method, data=PNG, headers={**headers, "Content-Type": "image/png"})
        if rule.endswith("/proof"):
            target = f"/api/v1/payments/{path_ids['payment_with_proof']}/proof"
        return client.open(target, method=method, json=body, headers=headers)

    if rule.endswith("/undrain"):  # only a draining node can be undrained
        drained = client.post(path.replace("/undrain", "/drain"), json={}, headers=principals.admin.headers)
        assert drained.status_code == 200, drained.json
    # Refused callers first: they must change nothing (every change writes an audit row).
    audit_before = audit_rows(app)
    assert_error(call("anonymous"), 401, "unauthorized")
    for caller in sorted(set(CALLERS) - allowed - {"anonymous"}):
        response = call(caller)
        assert_error(response, 403, "forbidden")
        assert all(kind in response.json["message"] for kind in allowed), response.json
    assert audit_rows(app) == audit_before, "a refused call changed something"

    # Allowed callers with valid ids and bodies get through, and succeed.
    for caller in sorted(allowed):
        response = call(caller)
        assert response.status_code not in (401, 403), (caller, response.json)
        assert response.status_code < 400, (caller, response.status_code, response.json)


def test_a_node_reads_only_its_own_record(world):
    _app, client, principals = world
    node, other = principals.node, principals.other_node

    own = client.get(f"/api/v1/nodes/{node.principal_id}", headers=node.headers)
    assert own.status_code == 200
    assert own.json["id"] == node.principal_id and own.json["client_id"] == node.identifier

    assert_error(client.get(f"/api/v1/nodes/{other.principal_id}", headers=node.headers), 403, "forbidden")
    # An id that does not exist is refused the same way: a node cannot probe which ids exist.
    assert_error(client.get("/api/v1/nodes/999999", headers=node.headers), 403, "forbidden")

    # The other node is symmetric, and admins read both.
    assert client.get(f"/api/v1/nodes/{other.principal_id}", headers=other.headers).status_code == 200
    assert_error(client.get(f"/api/v1/nodes/{node.principal_id}", headers=other.headers), 403, "forbidden")
    for node_id in (node.principal_id, other.principal_id):
        response = client.get(f"/api/v1/nodes/{node_id}", headers=principals.admin.headers)
        assert response.status_code == 200 and response.json["id"] == node_id
