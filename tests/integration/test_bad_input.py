"""Bad input to the write endpoints: always a 4xx JSON error, never HTML or a 500, and never a database change.

Each test sends many bad requests to one endpoint (as subtests) and, for every one of them, checks the
status, the {"error", "message"} body, and a snapshot of every table (row count plus a digest of the rows,
so updates show too) taken before and after. The valid body each bad one was derived from is sent last,
to prove it succeeds and that the snapshot would have seen the change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import inspect, text

from control_api.models import Base
from tests.conftest import create_admin

MB = 1024 * 1024
NEW_TELEGRAM_ID = 424242
SQL_INJECTION = "'; DROP TABLE plans; --"


# --- the database snapshot ----------------------------------------------------------------------------


def db_snapshot(app) -> dict[str, tuple[int, str]]:
    """{table: (row count, md5 of all rows)} for every table in the database, in one round trip."""
    engine = app.extensions["rayfleet.db"].engine
    quote = engine.dialect.identifier_preparer.quote
    names = sorted(inspect(engine).get_table_names())
    # The names come from the database's own catalogue, and are quoted.
    query = " UNION ALL ".join(
        f"SELECT '{name}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "  # noqa: S608
        f"FROM {quote(name)} t"
        for name in names
    )
    with engine.connect() as connection:
        return {name: (count, digest) for name, count, digest in connection.execute(text(query))}


@contextmanager
def database_unchanged(app) -> Iterator[None]:
    """Fail if any table (audit_logs included) gained, lost or changed a row, or appeared or vanished."""
    before = db_snapshot(app)
    yield
    after = db_snapshot(app)
    changed = {
        name: f"{before.get(name, ('absent',))[0]} rows -> {after.get(name, ('absent',))[0]} rows"
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
    }
    assert not changed, f"the database changed: {changed}"


def assert_json_error(response, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of STATUSES when given) with the API's error body, and nothing that looks like a traceback."""
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, body[:500])
    if statuses:
        assert response.status_code in statuses, (response.status_code, body[:500])
    assert response.mimetype == "application/json", (response.mimetype, body[:200])
    payload = response.get_json()
    assert isinstance(payload, dict), body[:200]
    assert isinstance(payload.get("error"), str) and payload["error"], payload
    assert isinstance(payload.get("message"), str) and payload["message"], payload
    assert set(payload) <= {"error", "message", "details"}, payload
    assert "Traceback" not in body and "<html" not in body.lower()
    return payload


def send_rejected(app, client, method: str, path: str, *statuses: int, **kwargs: Any) -> dict[str, Any]:
    with database_unchanged(app):
        response = client.open(path, method=method, **kwargs)
    return assert_json_error(response, *statuses)


def raw_json(body: Any) -> dict[str, Any]:
    """Request kwargs for a JSON body serialised here: ensure_ascii turns NUL and lone surrogates into
    \\u0000 / \\ud800 escapes, exactly as a client would have to send them; NaN becomes the NaN literal."""
    return {"data": json.dumps(body), "content_type": "application/json"}


# --- the endpoints and what is wrong with their input -------------------------------------------------

# 5.0 is not here: it is the integer 5, as the spec's `type: integer` says (test_spec_truth.py).
INT_BAD = ["5", "5.0", "abc", 5.5, 5.000001, True, False, None, [], {}, -1, 10**30, 2**63, float("nan"), float("inf")]
TEXT_BAD = [
    5,
    5.5,
    True,
    [],
    {"a": 1},
    "",
    "x" * 10_000,
    "a\u0000b",
    "\ud800",
    "a\udfffb",
    "bell\x07",
    "del\x7f",
]
SLUG_BAD = [*TEXT_BAD, SQL_INJECTION, "-leading-dash", "white space", "ünïcode", "x" * 33]
# Booleans are strict too: 0, 1, "true" or "yes" are not JSON booleans.
BOOL_BAD = ["maybe", "true", "yes", "false", 0, 1, 2, 0.5, [], {}]
IP_BAD = ["999.1.1.1", 5, "1.2.3.4/24", "", "localhost", "fe80::1%eth0", "fe80::1%" + "z" * 60, "fe80::1%\u0000"]


def enum_bad(*valid: str) -> list[Any]:
    return ["nope", 5, "", valid[0].upper(), f" {valid[0]}", [valid[0]]]


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    valid: dict[str, Any]
    # field -> bad values; None is added for fields that may not be null
    bad_values: dict[str, list[Any]]
    nullable: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    success: int = 200
    auth: bool = True


@dataclass
class World:
    app: Any
    client: Any
    headers: dict[str, str]
    endpoints: dict[str, Endpoint]


PLAN = {
    "name": "Local 30d",
    "location_tag": "local",
    "region": "eu-central-1",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 51200,
    "is_constant_ip": False,
    "price_cents": 500,
    "is_active": True,
}
PLAN_BAD = {
    "name": [*TEXT_BAD, "x" * 101],
    "location_tag": SLUG_BAD,
    "region": SLUG_BAD,
    "duration_days": [*INT_BAD, 0, 3651],
    "max_devices": [*INT_BAD, 0, 101],
    "data_limit_mb": [*INT_BAD, 0, 10**9 + 1],
    "price_cents": [*INT_BAD, 10**12 + 1],
    "is_constant_ip": BOOL_BAD,
    "is_active": BOOL_BAD,
}


def _endpoints(plan_id: int, user_id: int, login_body: dict[str, str]) -> dict[str, Endpoint]:
    endpoints = [
        Endpoint(
            "create_plan",
            "POST",
            "/api/v1/plans",
            {**PLAN, "name": "Brand new plan"},
            PLAN_BAD,
            nullable=("region",),
            required=("name", "location_tag", "duration_days", "max_devices", "data_limit_mb", "price_cents"),
            success=201,
        ),
        Endpoint(
            "update_plan",
            "PATCH",
            f"/api/v1/plans/{plan_id}",
            {"name": "Renamed plan", "price_cents": 900, "is_active": False},
            PLAN_BAD,
            nullable=("region",),
        ),
        Endpoint(
            "upsert_telegram_user",
            "PUT",
            f"/api/v1/users/telegram/{NEW_TELEGRAM_ID}",
            {"username": "new_customer", "language": "fa"},
            {"username": [*TEXT_BAD, "x" * 65], "language": enum_bad("en", "fa")},
            nullable=("username", "language"),
            success=201,
        ),
        Endpoint(
            "ban_user",
            "POST",
            f"/api/v1/users/{user_id}/ban",
            {"reason": "chargeback"},
            {"reason": [*TEXT_BAD, "x" * 501]},
            required=("reason",),
        ),
        Endpoint(
            "create_node",
            "POST",
            "/api/v1/nodes",
            {
                "name": "node-new",
                "public_ip": "198.51.100.7",
                "region": "eu-west-1",
                "location_tag": "abroad",
                "core": "v2ray",
                "capacity_score": 50,
            },
            {
                "name": [*SLUG_BAD[:-1], "x" * 65],
                "public_ip": IP_BAD,
                "region": SLUG_BAD,
                "location_tag": SLUG_BAD,
                "core": enum_bad("xray", "v2ray"),
                "capacity_score": [*INT_BAD, 10**6 + 1],
            },
            nullable=("public_ip",),
            required=("name", "region", "location_tag"),
            success=201,
        ),
        Endpoint(
            "login",
            "POST",
            "/api/v1/auth/token",
            login_body,
            {
                "kind": enum_bad("admin", "node", "bot"),
                "username": [*TEXT_BAD, "x" * 65],
                "password": [*TEXT_BAD, "x" * 257],
            },
            required=("kind", "username", "password"),
            auth=False,
        ),
    ]
    return {endpoint.name: endpoint for endpoint in endpoints}


ENDPOINT_NAMES = ["create_plan", "update_plan", "upsert_telegram_user", "ban_user", "create_node", "login"]


@pytest.fixture
def world(app, client) -> World:
    admin = create_admin(app, client)
    plan = client.post("/api/v1/plans", json=PLAN, headers=admin.headers)
    assert plan.status_code == 201, plan.json
    user = client.put("/api/v1/users/telegram/1001", json={"username": "customer"}, headers=admin.headers)
    assert user.status_code == 201, user.json
    endpoints = _endpoints(plan.json["id"], user.json["id"], admin.login_body())
    return World(app, client, admin.headers, endpoints)


def _send(world: World, endpoint: Endpoint, *statuses: int, **kwargs: Any) -> dict[str, Any]:
    headers = {**(world.headers if endpoint.auth else {}), **kwargs.pop("headers", {})}
    return send_rejected(world.app, world.client, endpoint.method, endpoint.path, *statuses, headers=headers, **kwargs)


def _assert_valid_body_succeeds(world: World, endpoint: Endpoint) -> None:
    """The control: the untouched valid body is accepted, and (except for a login) the snapshot sees it."""
    before = db_snapshot(world.app)
    headers = world.headers if endpoint.auth else {}
    response = world.client.open(endpoint.path, method=endpoint.method, json=endpoint.valid, headers=headers)
    assert response.status_code == endpoint.success, response.get_json()
    if endpoint.name != "login":
        assert db_snapshot(world.app) != before


# --- the tests -----------------------------------------------------------------------------------------

MALFORMED_BODIES = [
    ("truncated JSON", b'{"name": "x", '),
    ("single quotes", b"{'name': 'x'}"),
    ("trailing garbage", b"{} trailing"),
    ("two documents", b"{}{}"),
    ("trailing comma", b'{"name": "x",}'),
    ("bare word", b"hello"),
    ("invalid UTF-8", b'{"name": "\xff\xfe\xfd"}'),
    ("latin-1 text", '{"name": "caf\xe9"}'.encode("latin-1")),
    ("UTF-8 encoded surrogate", b'{"name": "\xed\xa0\x80"}'),
    ("deeply nested arrays", b"[" * 100_000 + b"]" * 100_000),
    ("deeply nested objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("5000-digit integer", b'{"price_cents": 1' + b"0" * 5000 + b"}"),
]
NOT_OBJECTS = [
    ("array", "[]"),
    ("array holding the object", None),  # filled in with the valid body
    ("string", '"plan"'),
    ("number", "5"),
    ("true", "true"),
    ("null", "null"),
]


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_malformed_json_is_400(world, subtests, name):
    endpoint = world.endpoints[name]
    for label, body in MALFORMED_BODIES:
        with subtests.test(msg=label):
            payload = _send(world, endpoint, 400, data=body, content_type="application/json")
            assert payload["error"] == "bad_request"
    _assert_valid_body_succeeds(world, endpoint)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_json_that_is_not_an_object_is_422(world, subtests, name):
    endpoint = world.endpoints[name]
    for label, body in NOT_OBJECTS:
        with subtests.test(msg=label):
            document = body if body is not None else json.dumps([endpoint.valid])
            payload = _send(world, endpoint, 422, data=document, content_type="application/json")
            assert payload["error"] == "validation_error"
    _assert_valid_body_succeeds(world, endpoint)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_wrong_types_and_out_of_range_values_are_422(world, subtests, name):
    endpoint = world.endpoints[name]
    for field, values in endpoint.bad_values.items():
        if field not in endpoint.nullable:
            values = [*values, None]
        for value in values:
            with subtests.test(msg=f"{field}={value!r:.60}"):
                payload = _send(world, endpoint, 422, **raw_json({**endpoint.valid, field: value}))
                assert payload["error"] == "validation_error"
                assert field in payload["details"]["json"], payload
    _assert_valid_body_succeeds(world, endpoint)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_unknown_and_missing_fields_are_422(world, subtests, name):
    endpoint = world.endpoints[name]
    for extra in ({"is_admin": True}, {"id": 1}, {"created_at": "2020-01-01T00:00:00Z"}, {"": 1}, {"\u0000": 1}):
        with subtests.test(msg=f"unknown {extra!r}"):
            payload = _send(world, endpoint, 422, **raw_json({**endpoint.valid, **extra}))
            assert next(iter(extra)) in payload["details"]["json"], payload
    for field in endpoint.required:
        with subtests.test(msg=f"missing {field}"):
            body = {key: value for key, value in endpoint.valid.items() if key != field}
            payload = _send(world, endpoint, 422, json=body)
            assert field in payload["details"]["json"], payload
    if endpoint.required:
        with subtests.test(msg="empty object"):
            _send(world, endpoint, 422, json={})
    # The spec marks every request body required, and the API holds to it, even where all fields are optional.
    with subtests.test(msg="no body at all"):
        payload = _send(world, endpoint, 422)
        assert payload["details"] == {"json": ["A JSON body is required."]}
    with subtests.test(msg="empty body labelled JSON"):
        _send(world, endpoint, 422, data=b"", content_type="application/json")
    _assert_valid_body_succeeds(world, endpoint)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_a_body_that_is_not_labelled_json_is_415(world, subtests, name):
    endpoint = world.endpoints[name]
    document = json.dumps(endpoint.valid)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json", None):
        with subtests.test(msg=str(content_type)):
            payload = _send(world, endpoint, 415, data=document, content_type=content_type)
            assert payload["error"] == "unsupported_media_type"
    with subtests.test(msg="form fields"):
        _send(world, endpoint, 415, data={key: str(value) for key, value in endpoint.valid.items()})
    with subtests.test(msg="multipart"):
        _send(world, endpoint, 415, data={"json": document}, content_type="multipart/form-data")
    _assert_valid_body_succeeds(world, endpoint)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_a_body_over_one_megabyte_is_413(world, subtests, name):
    endpoint = world.endpoints[name]
    bodies = {
        "one huge string": json.dumps({**endpoint.valid, "padding": "x" * (MB + 16)}),
        "many small fields": json.dumps({**endpoint.valid, **{f"f{i}": i for i in range(MB // 8)}}),
        "whitespace": json.dumps(endpoint.valid) + " " * (MB + 1),
    }
    for label, body in bodies.items():
        assert len(body.encode()) > MB
        with subtests.test(msg=label):
            payload = _send(world, endpoint, 413, data=body, content_type="application/json")
            assert payload["error"] == "payload_too_large"
    _assert_valid_body_succeeds(world, endpoint)


def test_sql_looking_text_is_stored_literally_and_the_tables_survive(world):
    app, client, headers = world.app, world.client, world.headers
    tables_before = set(inspect(app.extensions["rayfleet.db"].engine).get_table_names())
    plan = client.post("/api/v1/plans", json={**PLAN, "name": SQL_INJECTION}, headers=headers)
    assert plan.status_code == 201 and plan.json["name"] == SQL_INJECTION
    ban = client.post(world.endpoints["ban_user"].path, json={"reason": SQL_INJECTION}, headers=headers)
    assert ban.status_code == 200 and ban.json["ban_reason"] == SQL_INJECTION
    user = client.put("/api/v1/users/telegram/77", json={"username": "x' OR '1'='1"}, headers=headers)
    assert user.status_code == 201 and user.json["username"] == "x' OR '1'='1"
    # Round trip: what is read back is the literal text.
    assert client.get(f"/api/v1/plans/{plan.json['id']}", headers=headers).json["name"] == SQL_INJECTION
    found = client.get("/api/v1/users", query_string={"search": "' OR '1'='1"}, headers=headers)
    assert [item["telegram_id"] for item in found.json["items"]] == [77]
    # Fields with a pattern refuse it outright, without touching the database.
    for field in ("location_tag", "region"):
        send_rejected(app, client, "POST", "/api/v1/plans", 422, json={**PLAN, field: SQL_INJECTION}, headers=headers)
    node = {"name": SQL_INJECTION, "region": "eu", "location_tag": "abroad"}
    send_rejected(app, client, "POST", "/api/v1/nodes", 422, json=node, headers=headers)
    # A login with an injection-shaped username is just a wrong username.
    login = {"kind": "admin", "username": "admin' OR '1'='1' --", "password": "x' OR '1'='1"}
    assert send_rejected(app, client, "POST", "/api/v1/auth/token", 401, json=login)["error"] == "invalid_credentials"
    assert set(inspect(app.extensions["rayfleet.db"].engine).get_table_names()) == tables_before
    assert {table.name for table in Base.metadata.sorted_tables} <= tables_before
    assert db_snapshot(app)["plans"][0] == 2


# Not ids at all, or beyond BIGINT; the last two are a fullwidth and an Arabic-Indic "1".
BAD_IDS = [
    "-1",
    "99999999999999999999999",
    "9223372036854775808",
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "%2D1",
    "\uff11",
    "\u0661",
]
# Well-formed ids that match no row; not for the PUT, which would create that Telegram user.
ABSENT_IDS = ["0", "9223372036854775807", "424242"]
ID_ROUTES = [
    ("GET", "/api/v1/plans/{}", None),
    ("PATCH", "/api/v1/plans/{}", {"price_cents": 1}),
    ("DELETE", "/api/v1/plans/{}", None),
    ("GET", "/api/v1/users/{}", None),
    ("POST", "/api/v1/users/{}/ban", {"reason": "x"}),
    ("POST", "/api/v1/users/{}/unban", {}),
    ("GET", "/api/v1/users/telegram/{}", None),
    ("PUT", "/api/v1/users/telegram/{}", {"username": "x"}),
    ("GET", "/api/v1/nodes/{}", None),
]


def test_ids_that_cannot_exist_are_404(world, subtests):
    for method, template, body in ID_ROUTES:
        for bad_id in BAD_IDS if method == "PUT" else BAD_IDS + ABSENT_IDS:
            path = template.format(bad_id)
            with subtests.test(msg=f"{method} {path}"):
                kwargs = {"json": body} if body is not None else {}
                payload = send_rejected(world.app, world.client, method, path, 404, headers=world.headers, **kwargs)
                assert payload["error"] == "not_found"


UNKNOWN_PATHS = [
    "/",
    "/api",
    "/api/v1",
    "/api/v2/plans",
    "/api/v1/plan",
    "/api/v1/plans/",
    "/api/v1/plans/1/",
    "/api/v1/plans/1/extra",
    "/api/v1/users/1/ban/now",
    "/api/v1/users/telegram",
    "/api/v1/" + "a" * 5000,
    "/api/v1/%00",
    "/api/v1/%ff%fe",
    "/etc/passwd",
]


def test_unknown_routes_are_404_json(world, subtests):
    for path in UNKNOWN_PATHS:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            with subtests.test(msg=f"{method} {path:.60}"):
                payload = send_rejected(world.app, world.client, method, path, 404, json={}, headers=world.headers)
                assert payload["error"] == "not_found"
    with subtests.test(msg="static path traversal"):
        send_rejected(world.app, world.client, "GET", "/static/../../etc/passwd", 404)


WRONG_METHODS = [
    ("DELETE", "/api/v1/plans"),
    ("PUT", "/api/v1/plans"),
    ("POST", "/api/v1/plans/1"),
    ("PUT", "/api/v1/plans/1"),
    ("GET", "/api/v1/users/1/ban"),
    ("DELETE", "/api/v1/users/1/ban"),
    ("POST", "/api/v1/users/telegram/1"),
    ("PATCH", "/api/v1/nodes"),
    ("DELETE", "/api/v1/nodes/1"),
    ("GET", "/api/v1/auth/token"),
    ("PATCH", "/api/v1/auth/token"),
    ("TRACE", "/api/v1/plans"),
    ("PROPFIND", "/api/v1/plans"),
]


def test_wrong_methods_are_405_json(world, subtests):
    for method, path in WRONG_METHODS:
        with subtests.test(msg=f"{method} {path}"):
            with database_unchanged(world.app):
                response = world.client.open(path, method=method, json={}, headers=world.headers)
            assert assert_json_error(response, 405)["error"] == "method_not_allowed"
            assert response.headers.get("Allow")


def test_a_patch_that_changes_nothing_writes_nothing(world):
    # Neither the plan nor audit_logs: an empty or same-values PATCH is a no-op, not a plan.update.
    endpoint = world.endpoints["update_plan"]
    with database_unchanged(world.app):
        for body in ({}, {"name": PLAN["name"], "price_cents": PLAN["price_cents"]}):
            response = world.client.patch(endpoint.path, json=body, headers=world.headers)
            assert response.status_code == 200
            assert response.json["name"] == PLAN["name"]
