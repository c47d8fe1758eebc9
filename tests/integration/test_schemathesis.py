"""Schemathesis against the live spec: the real app on PostgreSQL + Redis, served over HTTP from a thread.

Every operation in /openapi.json goes through schemathesis' stateless phases (examples, coverage, fuzzing;
valid and invalid data), once with an admin token and once with a bot token, under every check but
negative_data_rejection. No response may be a 5xx, carry a status, content type or header the spec does not
list, or break the documented response schema; methods the spec does not list must get a 405, and secured
operations must refuse a missing or bad token. A schema-valid request must be accepted (positive data
acceptance) unless it meets a documented rule the schema cannot state: BUSINESS_RULES lists those, per
operation, with the error codes such a refusal may carry and why the schema cannot say it.

Why not `@schema.parametrize()`: the server needs the session's PostgreSQL, so the schema can only be
loaded inside a fixture, and schemathesis 4.32's fixture-backed loader (`schemathesis.pytest.from_fixture`)
fails on pytest 9.2 (it reads and rewrites `Function._nodeid`, which pytest 9.2 no longer has). The tests below build
the same per-operation Hypothesis tests that loader builds (`get_all_tests`) and run them one by one.
"""

from __future__ import annotations

import threading
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    object_level_authorization,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)
from sqlalchemy import select
from werkzeug.serving import WSGIRequestHandler, make_server

from control_api import create_app
from control_api.models import User
from tests.conftest import Credentials, create_admin, create_bot, login, make_settings, reset_postgres


@dataclass(frozen=True)
class Rule:
    """Schema-valid requests an operation refuses by a documented rule: with these statuses, these codes."""

    statuses: tuple[int, ...]
    codes: frozenset[str]
    why: str
    # For a validation_error among the codes: the only fields its details may name.
    fields: frozenset[str] = frozenset()


def rule(statuses: tuple[int, ...], codes: str, why: str, fields: str = "") -> Rule:
    return Rule(statuses, frozenset(codes.split()), why, frozenset(fields.split()))


ACTING = "acting_admin_required not_for_admins"
ACTING_WHY = "acting_telegram_id: the bot must send it, an admin must not; one schema serves both callers"
EXTENDABLE = "config_not_renewable extension_in_review"
EXTENDABLE_WHY = (
    "only a paid config in a state to extend, one extension in review at a time, with a plan that may follow"
)
PROOF = "too_many_pending_payments evidence_used_elsewhere evidence_reused"
PROOF_WHY = "a proof pays once; pending payments are capped"
CODE = "discount_unknown discount_expired discount_not_for_this_plan discount_already_used_by_you discount_used_up"
CODE_WHY = (
    "a discount code must exist, be active, unexpired, for the plan and within its limits; refusals are rate-limited"
)
# Everywhere: accepted, or refused for the caller's kind (401/403), or an id that matches no row (404).
ACCEPTED = ["2xx", "401", "403", "404"]
# Every other refusal of a schema-valid request, by operation; each is documented in the operation's responses.
BUSINESS_RULES = {
    "POST /api/v1/auth/token": rule((429,), "rate_limited", "logins are rate-limited per address and account"),
    "POST /api/v1/nodes/register": rule((429,), "rate_limited", "logins are rate-limited per address and account"),
    "POST /api/v1/plans": rule((409,), "plan_name_taken", "plan names are unique among stored plans"),
    "PATCH /api/v1/plans/{plan_id}": rule((409,), "plan_name_taken", "plan names are unique among stored plans"),
    "DELETE /api/v1/plans/{plan_id}": rule((409,), "plan_in_use", "a plan with payments or configs is archived"),
    "POST /api/v1/locations": rule((409,), "location_tag_taken", "a tag is in the catalog once"),
    "DELETE /api/v1/locations/{location_id}": rule(
        (409,), "location_in_use", "a tag a plan or node still carries stays in the catalog"
    ),
    "PUT /api/v1/users/telegram/{telegram_id}": rule((409,), "concurrent_update", "two writers raced on one user"),
    "POST /api/v1/users/{user_id}/unban": rule(
        (409, 422), "not_banned not_resumable", "only a banned user is unbanned, with configs its ban suspended"
    ),
    "POST /api/v1/users/{user_id}/trial": rule(
        (409,), "trial_used no_node_available", "one trial per user, on a node with room"
    ),
    "POST /api/v1/users/{user_id}/configs": rule(
        (409,),
        "no_node_available constant_ip_pinned node_required user_banned",
        "placement needs a node with room, a constant-IP config stays put, a banned user gets nothing",
    ),
    "POST /api/v1/users/{user_id}/wallet/adjust": rule(
        (409,), "insufficient_balance", "a debit never takes the stored balance below zero"
    ),
    "POST /api/v1/users/{user_id}/wallet/purchases": rule(
        (409, 422, 429),
        f"insufficient_balance plan_not_for_sale no_node_available {EXTENDABLE} plan_not_allowed {CODE} "
        "free_order_needs_review rate_limited amount_mismatch",
        "the stored balance must cover the plan's price; a plan on sale; placement needs a node with room; "
        f"{EXTENDABLE_WHY}; {CODE_WHY}; a free order needs a review; the price shown is the price debited",
    ),
    "GET /api/v1/configs/{config_id}/renewal": rule(
        (409,), f"{EXTENDABLE} plan_not_for_sale plan_not_allowed", f"{EXTENDABLE_WHY}; a plan on sale"
    ),
    "POST /api/v1/configs/{config_id}/renew": rule(
        (409, 422, 429),
        f"{EXTENDABLE} plan_not_for_sale plan_not_allowed {PROOF} amount_mismatch {CODE} rate_limited",
        f"{EXTENDABLE_WHY}; a plan on sale; {PROOF_WHY}; the amount must equal the plan's stored price; {CODE_WHY}",
    ),
    "PUT /api/v1/configs/{config_id}/auto-renewal": rule(
        (409,),
        "config_not_renewable plan_not_for_sale plan_not_allowed",
        "opting in needs a paid config that can be renewed and has not expired, and a plan on sale that may follow it",
    ),
    "GET /api/v1/configs/{config_id}/extra-data": rule((409,), EXTENDABLE, EXTENDABLE_WHY),
    "POST /api/v1/configs/{config_id}/extra-data": rule(
        (409, 422),
        f"{EXTENDABLE} {PROOF} amount_mismatch",
        f"{EXTENDABLE_WHY}; {PROOF_WHY}; the amount must equal the data's price (a setting)",
    ),
    "POST /api/v1/configs/{config_id}/suspend": rule((409,), "invalid_transition", "only a live config is suspended"),
    "POST /api/v1/configs/{config_id}/resume": rule(
        (409,), "invalid_transition user_banned", "only a suspended config of an unbanned user resumes"
    ),
    "POST /api/v1/payments": rule(
        (409, 422, 429),
        "plan_not_for_sale too_many_pending_payments evidence_used_elsewhere evidence_reused amount_mismatch "
        f"{CODE} rate_limited",
        "the amount must equal the plan's stored price; a plan on sale; a proof pays once; pending payments are "
        f"capped; {CODE_WHY}",
    ),
    "POST /api/v1/discount-codes": rule((409,), "discount_code_taken", "codes are unique whatever their case"),
    "DELETE /api/v1/discount-codes/{code_id}": rule(
        (409,), "discount_code_in_use", "a code that was used is deactivated, not deleted"
    ),
    "POST /api/v1/discount-codes/quote": rule(
        (409, 429), f"{CODE} plan_not_for_sale rate_limited", f"{CODE_WHY}; a plan on sale"
    ),
    "POST /api/v1/webhooks": rule(
        (422,), "invalid_webhook_url", "a webhook URL carries no credentials or fragment, and its port is in range"
    ),
    "PATCH /api/v1/webhooks/{webhook_id}": rule(
        (422,), "invalid_webhook_url", "a webhook URL carries no credentials or fragment, and its port is in range"
    ),
    "POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry": rule(
        (409,), "already_delivered", "a delivered delivery is not sent again"
    ),
    "POST /api/v1/payments/{payment_id}/approve": rule(
        (409, 422), f"already_reviewed {ACTING}", f"a payment is reviewed once; {ACTING_WHY}"
    ),
    "POST /api/v1/payments/{payment_id}/reject": rule(
        (409, 422), f"already_reviewed {ACTING}", f"a payment is reviewed once; {ACTING_WHY}"
    ),
    "POST /api/v1/payments/{payment_id}/review-events": rule(
        (409, 422), f"already_reviewed {ACTING}", f"only a pending payment's decision is held; {ACTING_WHY}"
    ),
    "PUT /api/v1/payments/{payment_id}/proof": rule(
        (409, 415),
        "payment_not_pending proof_already_attached proof_type_unsupported",
        "a proof is a JPEG, PNG, WebP or PDF by its bytes (a binary schema cannot say which bytes); one proof per "
        "payment, while it is pending",
    ),
    "GET /api/v1/nodes": rule((422,), ACTING, ACTING_WHY),
    "GET /api/v1/nodes/alerts": rule((422,), ACTING, ACTING_WHY),
    "GET /api/v1/users/segments": rule((422,), ACTING, ACTING_WHY),
    "GET /api/v1/users/segments/{segment}": rule((422,), ACTING, ACTING_WHY),
    "POST /api/v1/nodes/{node_id}/drain": rule(
        (409,), "node_not_drainable", "only a node in service (active, offline, draining) is drained"
    ),
    "POST /api/v1/nodes/{node_id}/undrain": rule((409,), "node_not_draining", "only a draining node is undrained"),
    "POST /api/v1/nodes": rule(
        (409, 422),
        "node_name_taken validation_error",
        "node names are unique; two inbounds need two ports (JSON Schema has no unique-by-property)",
        fields="inbounds",
    ),
    "POST /api/v1/nodes/{node_id}/provision": rule(
        (409,),
        "node_disabled node_api_url_unusable",
        "a disabled node is not provisioned, nor any node while the API's own URL for nodes is unusable",
    ),
    "POST /api/v1/nodes/{node_id}/configs/sync": rule((409,), "revision_ahead", "a node cannot run ahead of desired"),
    "GET /api/v1/dashboard/sales": rule(
        (422,), "invalid_window", "a report's window runs forwards and covers at most 366 days"
    ),
    "POST /api/v1/principals/admins/{admin_id}/disable": rule(
        (409,), "cannot_disable_self last_admin", "an admin keeps their own account, and one admin stays enabled"
    ),
}


def follows_a_documented_rule(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request that BUSINESS_RULES lets through with 409/422/429 must name one of its rules."""
    meta = case.meta
    rule = BUSINESS_RULES.get(case.operation.label)
    if meta is None or not meta.generation.mode.is_positive or rule is None:
        return None
    if response.status_code not in rule.statuses:
        return None
    body = response.json()
    assert body["error"] in rule.codes, f"{case.operation.label}: {response.status_code} {body} is none of {rule}"
    if body["error"] == "validation_error":
        named = set(body.get("details", {}).get("json", {}))
        assert named <= rule.fields, f"{case.operation.label}: {body} names fields outside {sorted(rule.fields)}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    content_type_conformance,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
    missing_required_header,
    positive_data_acceptance,
    follows_a_documented_rule,
    # Stateful checks: they judge links between calls and pass on a single call; listed so none is left out.
    use_after_free,
    ensure_resource_availability,
    object_level_authorization,
]
# negative_data_rejection is left out on purpose: the API ignores unknown query parameters (GET /plans?x=1),
# which that check counts as accepting invalid data.
KINDS = ("admin", "bot")
# Fuzzing-phase examples per operation; the examples and coverage phases add their own, bounded, cases.
MAX_EXAMPLES = 25
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
REVOKE_PATH = "/api/v1/auth/revoke"
SUBSCRIPTION_PATH = "/sub/{token}"
# The seeded customer whose subscription serves real documents (a config with links, live on its node).
SUBSCRIBER_ID = 1


class QuietHandler(WSGIRequestHandler):
    """No access log line per request (a run makes thousands)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class LiveServer:
    base_url: str
    app: Any
    credentials: dict[str, Credentials]
    # Path parameter -> a spare principal's id, aimed at instead of the run's own admin or bot client: a
    # disable or rotate-secret of those would end the run's tokens and leave every later case a 401.
    spares: dict[str, int]
    cases: dict[str, int] = field(default_factory=dict)
    # (kind, operation, status, media type) of every response: what the run reached.
    seen: Counter = field(default_factory=Counter)

    def headers_for(self, kind: str, case: Any) -> dict[str, str]:
        if case.path == REVOKE_PATH:
            # A fresh token each time: revoking the shared one would turn every later case into a 401.
            fresh = login(self.app.test_client(), replace(self.credentials[kind], token=""))
            return fresh.headers
        return self.credentials[kind].headers

    def spare_the_run_principals(self, case: Any) -> None:
        own = {
            "admin_id": self.credentials["admin"].principal_id,
            "bot_client_id": self.credentials["bot"].principal_id,
        }
        for name, spare in self.spares.items():
            if name in case.path_parameters and str(case.path_parameters[name]) == str(own[name]):
                case.path_parameters[name] = spare

    def subscription_token(self) -> str:
        """The subscriber's token now (the run may rotate it): a generated token would only ever get a 404."""
        with self.app.app_context():
            session = self.app.extensions["rayfleet.db"].session()
            try:
                return session.scalar(select(User.subscription_token).where(User.id == SUBSCRIBER_ID))
            finally:
                session.close()


def _seed(client, admin: Credentials) -> None:
    """A little of everything, so ids 1..3 exist and the operations on ids get past their 404."""
    for number in range(1, 4):
        plan = {
            "name": f"Seed plan {number}",
            "location_tag": "local",
            "duration_days": 30,
            "max_devices": 2,
            "data_limit_mb": 1024,
            "price_cents": 100 * number,
        }
        assert client.post("/api/v1/plans", json=plan, headers=admin.headers).status_code == 201
        user = client.put(f"/api/v1/users/telegram/{number}", json={"username": f"u{number}"}, headers=admin.headers)
        assert user.status_code == 201
        node = {"name": f"seed-{number}", "region": "eu", "location_tag": "local"}
        assert client.post("/api/v1/nodes", json=node, headers=admin.headers).status_code == 201
        # The first entry's tag is in use (its delete is refused), the others' are not.
        location = {"tag": "local" if number == 1 else f"seed-{number}", "name": f"Seed {number}", "name_fa": "محل"}
        assert client.post("/api/v1/locations", json=location, headers=admin.headers).status_code == 201
    for number in range(1, 4):
        # Endpoints no worker delivers to here: the run's payments leave them pending deliveries to retry.
        hook = {"url": f"https://hooks.example.com/{number}", "events": ["payment.created", "config.created"]}
        assert client.post("/api/v1/webhooks", json=hook, headers=admin.headers).status_code == 201
    for number in range(1, 4):
        code = {"code": f"SEED-{number}", "percent_off": 10 * number, "plan_id": number, "max_uses": 1000}
        assert client.post("/api/v1/discount-codes", json=code, headers=admin.headers).status_code == 201
    _seed_a_subscription(client, admin)


def _seed_a_subscription(client, admin: Credentials) -> None:
    """The subscriber gets a config on a node with an address and inbounds, and the node reports it live."""
    node = {
        "name": "seed-linked",
        "region": "eu",
        "location_tag": "local",
        "core": "v2ray",
        "public_ip": "203.0.113.40",
        "tls_server_name": "seed.rayfleet.test",
        "inbounds": [
            {"profile": "vless-tcp-tls", "port": 443},
            {"profile": "vmess-ws-tls", "port": 8443, "path": "/ws"},
            {"profile": "vless-h2-tls", "port": 9443, "path": "/h2"},
        ],
    }
    created = client.post("/api/v1/nodes", json=node, headers=admin.headers)
    assert created.status_code == 201, created.json
    body = {"plan_id": 1, "node_id": created.json["id"]}
    config = client.post(f"/api/v1/users/{SUBSCRIBER_ID}/configs", json=body, headers=admin.headers)
    assert config.status_code == 201 and config.json["links"], config.json
    agent = login(client, Credentials("node", created.json["client_id"], created.json["client_secret"], 0))
    revision = client.get(f"/api/v1/nodes/{created.json['id']}", headers=admin.headers).json["desired_revision"]
    synced = client.post(
        f"/api/v1/nodes/{created.json['id']}/configs/sync", json={"revision": revision}, headers=agent.headers
    )
    assert synced.status_code == 200, synced.json


@pytest.fixture(scope="module")
def live_server(
    migrated_postgres: str, redis_url: str, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()
    proofs = str(tmp_path_factory.mktemp("proofs"))
    app = create_app(make_settings(migrated_postgres, redis_url, proof_storage_dir=proofs))
    client = app.test_client()
    credentials = {"admin": create_admin(app, client), "bot": create_bot(app, client)}
    spares = {
        "admin_id": create_admin(app, client, "spare-admin").principal_id,
        "bot_client_id": create_bot(app, client, "spare-bot").principal_id,
    }
    _seed(client, credentials["admin"])
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="schemathesis-live-server", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{server.server_port}", app, credentials, spares)
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["rayfleet.db"].engine.dispose()
        per_kind = ", ".join(f"{kind}={live.cases.get(kind, 0)}" for kind in KINDS)
        # Printed past pytest's output capture, so the number shows with or without -s.
        with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print(f"\nschemathesis cases: {sum(live.cases.values())} ({per_kind})")


# The expected statuses live in the repository's schemathesis.toml, so that `st run` from outside judges the
# API as this run does; test_the_settings_file_matches_the_rules keeps it equal to BUSINESS_RULES.
SETTINGS = Path(__file__).resolve().parents[2] / "schemathesis.toml"


def run_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_path(SETTINGS)


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer):
    return schemathesis.openapi.from_url(f"{live_server.base_url}/openapi.json", config=run_config())


@pytest.mark.parametrize("kind", KINDS)
def test_every_operation_conforms_to_the_live_spec(live_server: LiveServer, api_schema, kind: str) -> None:
    def check_case(case) -> None:
        live_server.cases[kind] = live_server.cases.get(kind, 0) + 1
        headers = live_server.headers_for(kind, case)
        if case.path == SUBSCRIPTION_PATH:
            case.path_parameters["token"] = live_server.subscription_token()
        live_server.spare_the_run_principals(case)
        response = case.call_and_validate(base_url=live_server.base_url, headers=headers, checks=CHECKS, timeout=30)
        media = response.headers.get("content-type", [""])[0].split(";")[0]  # lowercase keys, list values
        if case.method.upper() == case.operation.method.upper():  # not a probe with another method
            live_server.seen[kind, case.operation.label, response.status_code, media] += 1

    tested, failures = [], []
    for result in get_all_tests(schema=api_schema, test_func=check_case, settings=BOUNDED, given_kwargs=None):
        if not isinstance(result, Ok):
            failures.append(f"unusable operation: {result.err()}")
            continue
        operation, hypothesis_test = result.ok()
        tested.append(operation.label)
        try:
            hypothesis_test()
        # Check failures arrive as schemathesis' FailureGroup, a BaseExceptionGroup (not an Exception).
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation's failure
            failures.append(f"{operation.label}:\n{exc}")
    assert not failures, "\n\n".join(failures)
    spec_operations = {
        f"{method.upper()} {path}"
        for path, operations in api_schema.raw_schema["paths"].items()
        for method in operations
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert set(tested) == spec_operations and len(spec_operations) >= 19
    # The run reached what it is meant to judge: every subscription document, and its token still works (a
    # dead token would have turned the rest of the run into 401s that pass every check).
    served = {
        media
        for (who, label, status, media) in live_server.seen
        if who == kind and label == f"GET {SUBSCRIPTION_PATH}" and status == 200
    }
    assert served == {"text/plain", "application/json", "text/yaml"}, served
    me = live_server.app.test_client().get("/api/v1/auth/me", headers=live_server.credentials[kind].headers)
    assert me.status_code == 200, me.json


def test_every_business_rule_is_documented(api_schema) -> None:
    """Each refusal BUSINESS_RULES lets through is in the live spec: the status, and each code in its description."""
    paths = api_schema.raw_schema["paths"]
    for label, rule in BUSINESS_RULES.items():
        method, path = label.split(" ", 1)
        responses = paths[path][method.lower()]["responses"]
        for status in rule.statuses:
            described = responses[str(status)]["description"]
            owned = {code for code in rule.codes if code in described}
            assert owned, f"{label} {status}: {described!r} names none of {sorted(rule.codes)}"
        described = " ".join(responses[str(status)]["description"] for status in rule.statuses)
        missing = {code for code in rule.codes if code not in described}
        assert not missing, f"{label}: codes {sorted(missing)} are not in its documented responses"


def test_the_settings_file_matches_the_rules() -> None:
    """schemathesis.toml expects ACCEPTED everywhere and adds exactly each BUSINESS_RULES operation's statuses."""
    settings_file = tomllib.loads(SETTINGS.read_text())
    assert settings_file["checks"]["positive_data_acceptance"]["expected-statuses"] == ACCEPTED
    expected = {
        entry["include-name"]: entry["checks"]["positive_data_acceptance"]["expected-statuses"]
        for entry in settings_file["operations"]
    }
    assert expected == {label: [*ACCEPTED, *map(str, rule.statuses)] for label, rule in BUSINESS_RULES.items()}
