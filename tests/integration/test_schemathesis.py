"""Schemathesis against the live spec: the real app on PostgreSQL + Redis, served over HTTP from a thread.

Every operation in /openapi.json goes through schemathesis' stateless phases (examples, coverage, fuzzing;
valid and invalid data), once with an admin token and once with a bot token. No response may be a 5xx,
carry a status or content type the spec does not list, or break the documented response schema; methods
the spec does not list must get a 405, and secured operations must refuse a missing or bad token.

Why not `@schema.parametrize()`: the server needs the session's PostgreSQL, so the schema can only be
loaded inside a fixture, and schemathesis 4.32's fixture-backed loader (`schemathesis.pytest.from_fixture`)
fails on pytest 9.2 (it reads and rewrites `Function._nodeid`, which pytest 9.2 no longer has). The tests below build
the same per-operation Hypothesis tests that loader builds (`get_all_tests`) and run them one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from werkzeug.serving import WSGIRequestHandler, make_server

from control_api import create_app
from tests.conftest import Credentials, create_admin, create_bot, login, make_settings, reset_postgres

# negative_data_rejection is left out on purpose: the API ignores unknown query parameters (GET /plans?x=1),
# which that check counts as accepting invalid data.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    unsupported_method,
    ignored_auth,
]
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


class QuietHandler(WSGIRequestHandler):
    """No access log line per request (a run makes thousands)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class LiveServer:
    base_url: str
    app: Any
    credentials: dict[str, Credentials]
    cases: dict[str, int] = field(default_factory=dict)

    def headers_for(self, kind: str, case: Any) -> dict[str, str]:
        if case.path == REVOKE_PATH:
            # A fresh token each time: revoking the shared one would turn every later case into a 401.
            fresh = login(self.app.test_client(), replace(self.credentials[kind], token=""))
            return fresh.headers
        return self.credentials[kind].headers


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


@pytest.fixture(scope="module")
def live_server(migrated_postgres: str, redis_url: str, pytestconfig: pytest.Config) -> Iterator[LiveServer]:
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()
    app = create_app(make_settings(migrated_postgres, redis_url))
    client = app.test_client()
    credentials = {"admin": create_admin(app, client), "bot": create_bot(app, client)}
    _seed(client, credentials["admin"])
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="schemathesis-live-server", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{server.server_port}", app, credentials)
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


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer):
    return schemathesis.openapi.from_url(f"{live_server.base_url}/openapi.json")


@pytest.mark.parametrize("kind", KINDS)
def test_every_operation_conforms_to_the_live_spec(live_server: LiveServer, api_schema, kind: str) -> None:
    def check_case(case) -> None:
        live_server.cases[kind] = live_server.cases.get(kind, 0) + 1
        headers = live_server.headers_for(kind, case)
        case.call_and_validate(base_url=live_server.base_url, headers=headers, checks=CHECKS, timeout=30)

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
