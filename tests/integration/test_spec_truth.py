"""The OpenAPI spec says what the server enforces (issue 13, item 15), one class of disagreement at a time.

Each test reads the live spec (/openapi.json), judges sample values with a JSON Schema validator over it
(jsonschema_rs, as schemathesis does, formats asserted), sends the same values to the real app on
PostgreSQL + Redis, and requires the two verdicts to agree. The suite's schemathesis run
(test_schemathesis.py) then covers the rest with positive_data_acceptance and response_schema_conformance.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
import yaml

pytestmark = pytest.mark.postgres

PLAN = {"name": "Spec plan", "location_tag": "spec", "duration_days": 30, "max_devices": 2, "data_limit_mb": 100}
CONTROL = [chr(code) for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]]
INBOUNDS = [
    {"profile": "vless-tcp-tls", "port": 443},
    {"profile": "vmess-ws-tls", "port": 8443, "path": "/ws"},
    {"profile": "vless-h2-tls", "port": 9443, "path": "/h2"},
]


@pytest.fixture
def spec(client) -> dict[str, Any]:
    return client.get("/openapi.json").json


def verdict(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether SCHEMA (which may $ref the spec's components) admits VALUE, formats included."""
    root = {**schema, "components": spec["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True).is_valid(value)


def component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"][path][method.lower()]


def plan(client, headers, **fields: Any):
    return client.post("/api/v1/plans", json={**PLAN, "price_cents": 300, **fields}, headers=headers)


# --- strings: the control characters the server refuses, the spec refuses too ------------------------------


def test_text_fields_carry_the_pattern_the_server_enforces(client, principals, spec):
    admin = principals.admin.headers
    name = spec["components"]["schemas"]["PlanIn"]["properties"]["name"]
    for char in CONTROL:
        value = f"plan{char}x"
        assert not verdict(spec, name, value), f"the spec admits {value!r}"
        refused = plan(client, admin, name=value)
        assert refused.status_code == 422 and "name" in refused.json["details"]["json"], (repr(char), refused.json)
    for index, value in enumerate(["tab\there", "two\nlines", "crlf\r\n", "ünïcødé 名前 😀"]):
        assert verdict(spec, name, value), f"the spec refuses {value!r}"
        assert plan(client, admin, name=f"{value} {index}").status_code == 201, value
    # Every string the server screens says so: login secrets, node credentials, proofs, reasons, searches.
    for schema, field in [
        ("AdminTokenIn", "password"),
        ("ClientTokenIn", "client_secret"),
        ("NodeRegisterIn", "client_secret"),
        ("PaymentIn", "evidence_file_id"),
        ("BanIn", "reason"),
    ]:
        assert not verdict(spec, spec["components"]["schemas"][schema]["properties"][field], "a\x07"), schema
    search = next(p for p in operation(spec, "GET", "/api/v1/users")["parameters"] if p["name"] == "search")
    assert not verdict(spec, search["schema"], "a\x00b")


def test_patterns_are_whole_value_in_both_readings(client, principals, spec):
    """Python's `$` matches before a trailing newline, ECMA-262's does not: the server matches whole values."""
    admin = principals.admin.headers
    tag = spec["components"]["schemas"]["PlanIn"]["properties"]["location_tag"]
    assert not verdict(spec, tag, "spec\n")
    assert plan(client, admin, location_tag="spec\n").status_code == 422
    node = spec["components"]["schemas"]["NodeIn"]["properties"]
    inbound = spec["components"]["schemas"]["InboundIn"]["properties"]
    for schema, value in [(node["tls_server_name"], "node.example.com\n"), (inbound["path"], "/ws\n")]:
        assert not verdict(spec, schema, value)  # also: the pattern compiles as ECMA-262 (no Python-only \Z)
    body = {"name": "nl", "region": "eu", "location_tag": "x", "tls_server_name": "node.example.com\n"}
    assert client.post("/api/v1/nodes", json=body, headers=admin).status_code == 422


# --- integers: 2.0 is the integer 2, as the spec's `type: integer` says --------------------------------------


def test_a_whole_number_written_with_a_fraction_is_an_integer(client, principals, spec):
    admin = principals.admin.headers
    days = spec["components"]["schemas"]["PlanIn"]["properties"]["duration_days"]
    assert verdict(spec, days, 30.0) and not verdict(spec, days, 30.5) and not verdict(spec, days, "30")
    created = client.post(
        "/api/v1/plans",
        data=json.dumps({**PLAN, "duration_days": 30.0, "max_devices": 2e0, "price_cents": 3.00e2}),
        content_type="application/json",
        headers=admin,
    )
    assert created.status_code == 201, created.json
    assert (created.json["duration_days"], created.json["max_devices"], created.json["price_cents"]) == (30, 2, 300)
    assert type(created.json["duration_days"]) is int
    for bad in (30.5, "30", True):
        refused = plan(client, admin, name=f"bad {bad!r}", duration_days=bad)
        assert refused.status_code == 422 and "duration_days" in refused.json["details"]["json"], bad
    # Lists of ids too, and query strings (the number's JSON text).
    assert client.post("/api/v1/notifications/ack", json={"ids": [1.0]}, headers=principals.bot.headers).json == {
        "acknowledged": 0
    }
    assert client.get("/api/v1/plans?limit=2.0", headers=admin).json["limit"] == 2
    for text in ("1_0", "+2", "0x10", "2.5"):
        assert client.get(f"/api/v1/plans?limit={text}", headers=admin).status_code == 422, text


# --- addresses: anyOf ipv4 / ipv6, exactly what the server's parser takes -------------------------------------

ADDRESSES = {
    "203.0.113.7": True,
    "2001:db8::7": True,
    "::ffff:203.0.113.7": True,
    "0:0:0:0:0:0:0:1": True,
    "": False,
    "localhost": False,
    "203.0.113": False,
    "203.0.113.07": False,
    "999.1.1.1": False,
    "1.2.3.4/24": False,
    " 1.2.3.4": False,
    "fe80::1%eth0": False,
    "1::2::3": False,
}


def test_address_fields_admit_what_the_server_parses(client, principals, spec):
    admin = principals.admin.headers
    public_ip = spec["components"]["schemas"]["NodeIn"]["properties"]["public_ip"]
    assert "ip" not in json.dumps(public_ip).replace('"ipv', ""), public_ip  # marshmallow's non-standard format
    for index, (address, valid) in enumerate(ADDRESSES.items()):
        assert verdict(spec, public_ip, address) is valid, address
        body = {"name": f"addr-{index}", "region": "eu", "location_tag": "x", "public_ip": address}
        assert client.post("/api/v1/nodes", json=body, headers=admin).status_code == (201 if valid else 422), address
    # What the server stores is what the response schema promises.
    out = spec["components"]["schemas"]["NodeOut"]["properties"]["public_ip"]
    listed = client.get("/api/v1/nodes", headers=admin).json["items"]
    assert listed and all(verdict(spec, out, node["public_ip"]) for node in listed)


# --- Telegram ids are positive; every integer path parameter has the router's range -------------------------


def test_path_ids_have_the_range_the_router_and_the_server_take(client, principals, spec):
    for method in ("get", "put"):
        (telegram,) = spec["paths"]["/api/v1/users/telegram/{telegram_id}"][method]["parameters"][:1]
        assert telegram["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    zero = client.put("/api/v1/users/telegram/0", json={}, headers=principals.bot.headers)
    assert zero.status_code == 422 and zero.json["error"] == "invalid_telegram_id"
    for path, operations in spec["paths"].items():
        for op in operations.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    assert parameter["schema"]["minimum"] >= 0 and parameter["schema"]["maximum"] == 2**63 - 1, path


# --- acting_telegram_id: only the bot sends it; the spec documents both refusals -----------------------------


def test_acting_telegram_id_rule_is_documented_and_enforced(client, principals, spec):
    for method, path in [
        ("GET", "/api/v1/nodes"),
        ("POST", "/api/v1/payments/{payment_id}/approve"),
        ("POST", "/api/v1/payments/{payment_id}/reject"),
        ("POST", "/api/v1/payments/{payment_id}/review-events"),
    ]:
        described = operation(spec, method, path)["responses"]["422"]["description"]
        assert "not_for_admins" in described and "acting_admin_required" in described, (path, described)
    admin, bot = principals.admin.headers, principals.bot.headers
    staff = client.put("/api/v1/users/telegram/6001", json={}, headers=admin).json["id"]
    client.put(f"/api/v1/users/{staff}/admin", json={"is_admin": True}, headers=admin)
    as_admin = client.get("/api/v1/nodes?acting_telegram_id=6001", headers=admin)
    assert as_admin.status_code == 422 and as_admin.json["error"] == "not_for_admins"
    unnamed = client.get("/api/v1/nodes", headers=bot)
    assert unnamed.status_code == 422 and unnamed.json["error"] == "acting_admin_required"
    assert client.get("/api/v1/nodes?acting_telegram_id=6001", headers=bot).status_code == 200
    assert client.get("/api/v1/nodes", headers=admin).status_code == 200


# --- POST /auth/token: oneOf with a discriminator on kind ----------------------------------------------------


def test_the_login_body_is_one_of_two_shapes_by_kind(client, principals, spec):
    token_in = spec["components"]["schemas"]["TokenIn"]
    assert token_in["discriminator"] == {
        "propertyName": "kind",
        "mapping": {
            "admin": "#/components/schemas/AdminTokenIn",
            "node": "#/components/schemas/ClientTokenIn",
            "bot": "#/components/schemas/ClientTokenIn",
        },
    }
    assert [choice["$ref"].rsplit("/", 1)[1] for choice in token_in["oneOf"]] == ["AdminTokenIn", "ClientTokenIn"]
    body = operation(spec, "POST", "/api/v1/auth/token")["requestBody"]["content"]["application/json"]["schema"]
    admin, bot = principals.admin.login_body(), principals.bot.login_body()
    bodies = {
        "admin": (admin, 200),
        "bot": (bot, 200),
        "node shape for an admin": ({"kind": "admin", "client_id": "x", "client_secret": "y"}, 422),
        "admin shape for a bot": ({"kind": "bot", "username": "x", "password": "y"}, 422),
        "both shapes": ({**admin, "client_id": "x", "client_secret": "y"}, 422),
        "no kind": ({"username": "x", "password": "y"}, 422),
        "unknown kind": ({"kind": "root", "username": "x", "password": "y"}, 422),
    }
    for label, (sent, status) in bodies.items():
        assert verdict(spec, body, sent) is (status == 200), label
        assert client.post("/api/v1/auth/token", json=sent).status_code == status, label


# --- POST /users/{id}/configs: plan_id for a new config, or config_id to move one ---------------------------


def test_assigning_a_config_takes_a_plan_or_a_config_never_both(client, principals, spec):
    admin = principals.admin.headers
    assign_in = spec["components"]["schemas"]["AssignIn"]
    assert [choice["$ref"].rsplit("/", 1)[1] for choice in assign_in["oneOf"]] == ["NewConfigIn", "MoveConfigIn"]
    plan_id = plan(client, admin, location_tag="abroad").json["id"]
    user = client.put("/api/v1/users/telegram/5005", json={}, headers=admin).json["id"]
    first = {"plan_id": plan_id, "node_id": principals.node.principal_id}
    created = client.post(f"/api/v1/users/{user}/configs", json=first, headers=admin)
    assert created.status_code == 201, created.json
    config_id = created.json["id"]
    bodies = {
        "neither": ({}, False),
        "both": ({"plan_id": plan_id, "config_id": config_id}, False),
        "a protocol for a move": ({"config_id": config_id, "protocol": "vmess"}, False),
        "new": ({**first, "protocol": "vmess"}, True),
        "move": ({"config_id": config_id, "node_id": principals.other_node.principal_id}, True),
    }
    for label, (sent, valid) in bodies.items():
        assert verdict(spec, assign_in, sent) is valid, label
        response = client.post(f"/api/v1/users/{user}/configs", json=sent, headers=admin)
        assert (response.status_code == 201) is valid and (valid or response.status_code == 422), (label, response.json)


# --- /sub/<token>: the documents it serves, each with its schema ---------------------------------------------


def test_the_subscription_documents_match_their_schemas(app, client, principals, spec):
    admin = principals.admin.headers
    node = client.post(
        "/api/v1/nodes",
        json={"name": "subs", "region": "eu", "location_tag": "subs", "core": "v2ray", "public_ip": "203.0.113.9"}
        | {"tls_server_name": "subs.rayfleet.test", "inbounds": INBOUNDS},
        headers=admin,
    ).json
    plan_id = plan(client, admin, location_tag="subs").json["id"]
    user = client.put("/api/v1/users/telegram/5006", json={}, headers=admin).json["id"]
    client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan_id, "node_id": node["id"]}, headers=admin)
    agent = client.post(
        "/api/v1/nodes/register", json={"client_id": node["client_id"], "client_secret": node["client_secret"]}
    ).json["access_token"]
    revision = client.get(f"/api/v1/nodes/{node['id']}", headers=admin).json["desired_revision"]
    synced = client.post(
        f"/api/v1/nodes/{node['id']}/configs/sync",
        json={"revision": revision},
        headers={"Authorization": f"Bearer {agent}"},
    )
    assert synced.status_code == 200, synced.json
    url = client.get(f"/api/v1/users/{user}/subscription", headers=admin).json["subscription_url"]
    token = url.rsplit("/", 1)[1]

    documented = operation(spec, "GET", "/sub/{token}")["responses"]["200"]
    content = documented["content"]
    assert {media: schema["schema"].get("type") for media, schema in content.items()} == {
        "text/plain": "string",
        "application/json": "object",
        "text/yaml": "object",
    }
    read = {"text/plain": lambda text: text, "application/json": json.loads, "text/yaml": yaml.safe_load}
    for fmt in ("base64", "singbox", "clash"):
        served = client.get(f"/sub/{token}?format={fmt}")
        assert served.status_code == 200
        media = served.mimetype
        document = read[media](served.get_data(as_text=True))
        assert document, fmt
        assert verdict(spec, content[media]["schema"], document), (fmt, document)
        assert verdict(spec, content[media]["schema"], "YQ==") is (media == "text/plain")
        for header, declared in documented["headers"].items():
            value = served.headers[header]
            value = int(value) if declared["schema"]["type"] == "integer" else value
            assert verdict(spec, declared["schema"], value), (header, value)
    token_schema = operation(spec, "GET", "/sub/{token}")["parameters"][0]["schema"]
    assert verdict(spec, token_schema, token) and not verdict(spec, token_schema, "not a token!")


# --- business rules on valid data: documented where they apply ------------------------------------------------


def test_refusals_of_valid_data_are_documented(client, principals, spec):
    admin = principals.admin.headers
    payments = operation(spec, "POST", "/api/v1/payments")["responses"]
    assert "amount_mismatch" in payments["422"]["description"]
    for code in ("plan_not_for_sale", "too_many_pending_payments", "evidence_used_elsewhere"):
        assert code in payments["409"]["description"], code
    unban = operation(spec, "POST", "/api/v1/users/{user_id}/unban")["responses"]
    assert "not_resumable" in unban["422"]["description"]
    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5007", json={}, headers=admin).json["id"]
    body = {"user_id": user, "plan_id": plan_id, "evidence_file_id": "f", "evidence_unique_id": "u"}
    wrong = client.post("/api/v1/payments", json={**body, "amount_cents": 299}, headers=admin)
    assert wrong.status_code == 422 and wrong.json["error"] == "amount_mismatch"


def test_rules_across_fields_are_in_the_schema(client, principals, spec):
    """What one field requires of another (a ban needs a reason; a ws inbound a path; xray no h2) is in the spec."""
    reject_in = component(spec, "RejectIn")
    assert not verdict(spec, reject_in, {"ban": True}) and verdict(spec, reject_in, {"ban": True, "reason": "x"})
    assert verdict(spec, reject_in, {"ban": False})
    inbound = component(spec, "InboundIn")
    assert not verdict(spec, inbound, {"profile": "vless-ws-tls", "port": 80})
    assert not verdict(spec, inbound, {"profile": "vless-tcp-tls", "port": 80, "path": "/x"})
    node_in = component(spec, "NodeIn")
    h2 = {"name": "h2", "region": "eu", "location_tag": "x", "inbounds": [INBOUNDS[2]]}
    assert not verdict(spec, node_in, h2) and verdict(spec, node_in, {**h2, "core": "v2ray"})
    admin = principals.admin.headers
    assert client.post("/api/v1/nodes", json=h2, headers=admin).status_code == 422
    assert client.post("/api/v1/nodes", json={**h2, "core": "v2ray"}, headers=admin).status_code == 201


def test_wallet_rules_agree_with_the_server(client, principals, spec):
    """A purchase names a plan and a top-up does not (and pays at least 1); an adjustment is never 0."""
    admin = principals.admin.headers
    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5008", json={}, headers=admin).json["id"]
    payment_in = component(spec, "PaymentIn")
    bodies = {
        "a top-up": ({"purpose": "topup", "amount_cents": 100}, True),
        "a top-up of 1.0": ({"purpose": "topup", "amount_cents": 1.0}, True),
        "a top-up of 0": ({"purpose": "topup", "amount_cents": 0}, False),
        "a top-up with a plan": ({"purpose": "topup", "amount_cents": 100, "plan_id": plan_id}, False),
        "a purchase without a plan": ({"amount_cents": 300}, False),
        "a named purchase without a plan": ({"purpose": "purchase", "amount_cents": 300}, False),
        "a purchase": ({"purpose": "purchase", "amount_cents": 300, "plan_id": plan_id}, True),
    }
    for number, (label, (fields, valid)) in enumerate(bodies.items()):
        body = {"user_id": user, "evidence_file_id": f"f{number}", "evidence_unique_id": f"u{number}", **fields}
        assert verdict(spec, payment_in, body) is valid, label
        response = client.post("/api/v1/payments", json=body, headers=admin)
        assert (response.status_code == 201) is valid and (valid or response.status_code == 422), (label, response.json)
    adjust_in = component(spec, "AdjustIn")
    for amount, valid in (
        (5, True),
        (-5, True),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (10**12, True),
        (-(10**12) - 1, False),
    ):
        body = {"amount_cents": amount, "reason": "spec"}
        assert verdict(spec, adjust_in, body) is valid, amount
        response = client.post(f"/api/v1/users/{user}/wallet/adjust", json=body, headers=admin)
        assert (response.status_code == 201) is valid and (valid or response.status_code == 422), (
            amount,
            response.json,
        )


def test_renewal_and_balance_purchase_rules_agree_with_the_server(client, principals, spec):
    """A balance purchase is a plan or extra data (for a named config), never both, and an existing config keeps
    its protocol; the renewals' refusals of valid data are documented where they apply."""
    for method, path, codes in [
        ("GET", "/api/v1/configs/{config_id}/renewal", "config_not_renewable extension_in_review plan_not_allowed"),
        ("POST", "/api/v1/configs/{config_id}/renew", "plan_not_allowed extension_in_review evidence_used_elsewhere"),
        ("GET", "/api/v1/configs/{config_id}/extra-data", "config_not_renewable extension_in_review"),
        ("POST", "/api/v1/configs/{config_id}/extra-data", "config_not_renewable too_many_pending_payments"),
        ("POST", "/api/v1/users/{user_id}/wallet/purchases", "config_not_renewable plan_not_allowed"),
    ]:
        described = operation(spec, method, path)["responses"]["409"]["description"]
        assert all(code in described for code in codes.split()), (path, described)
    for path in ("/api/v1/configs/{config_id}/renew", "/api/v1/configs/{config_id}/extra-data"):
        assert "amount_mismatch" in operation(spec, "POST", path)["responses"]["422"]["description"]
    quote = {p["name"]: p for p in operation(spec, "GET", "/api/v1/configs/{config_id}/renewal")["parameters"]}
    assert quote["user_id"]["required"] and quote["plan_id"]["required"]

    admin = principals.admin.headers
    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5009", json={}, headers=admin).json["id"]
    purchase_in = component(spec, "PurchaseIn")
    bodies = {
        "a plan": ({"plan_id": plan_id}, True),
        "a plan and a protocol": ({"plan_id": plan_id, "protocol": "vmess"}, True),
        "a renewal": ({"plan_id": plan_id, "extends_config_id": 999_999}, True),
        "extra data": ({"extends_config_id": 999_999, "data_mb": 1024}, True),
        "extra data for no config": ({"data_mb": 1024}, False),
        "a plan and extra data": ({"plan_id": plan_id, "data_mb": 1024, "extends_config_id": 999_999}, False),
        "nothing": ({}, False),
        "a config alone": ({"extends_config_id": 999_999}, False),
        "a renewal with a protocol": ({"plan_id": plan_id, "extends_config_id": 999_999, "protocol": "vless"}, False),
        "no data": ({"extends_config_id": 999_999, "data_mb": 0}, False),
    }
    for label, (body, valid) in bodies.items():
        assert verdict(spec, purchase_in, body) is valid, label
        response = client.post(f"/api/v1/users/{user}/wallet/purchases", json=body, headers=admin)
        # Valid bodies meet a business rule here (no balance, no such config); invalid ones the schema.
        assert (response.status_code != 422) is valid, (label, response.status_code, response.json)
    renew_in = component(spec, "RenewIn")
    proof = {"evidence_file_id": "f", "evidence_unique_id": "u"}
    body = {"user_id": user, "plan_id": plan_id, "amount_cents": 300, **proof}
    assert verdict(spec, renew_in, body)
    for missing in ("user_id", "plan_id", "amount_cents", "evidence_unique_id"):
        partial = {name: value for name, value in body.items() if name != missing}
        assert not verdict(spec, renew_in, partial), missing
        assert client.post("/api/v1/configs/999999/renew", json=partial, headers=admin).status_code == 422, missing
    assert client.post("/api/v1/configs/999999/renew", json=body, headers=admin).status_code == 404


def test_referral_codes_and_the_invite_view_agree_with_the_server(client, principals, spec):
    """Any text up to 64 characters is a code the server takes (a code that refers nobody is ignored, never
    refused); the invite view answers as its schema says, for a referred customer and their referrer."""
    bot = principals.bot.headers
    user_in = component(spec, "TelegramUserIn")
    referrer = client.put("/api/v1/users/telegram/5010", json={}, headers=bot).json["id"]
    code = client.get(f"/api/v1/users/{referrer}/referral", headers=bot).json["code"]
    for number, (value, valid) in enumerate(
        [
            (code, True),
            ("", True),
            ("no such code", True),
            ("x" * 64, True),
            (None, True),
            ("x" * 65, False),
            ("a\x00b", False),
            (5, False),
        ]
    ):
        body = {"referral_code": value}
        assert verdict(spec, user_in, body) is valid, value
        response = client.put(f"/api/v1/users/telegram/{5100 + number}", json=body, headers=bot)
        assert response.status_code == (201 if valid else 422), (value, response.json)
    described = spec["components"]["schemas"]["TelegramUserIn"]["properties"]["referral_code"]["description"]
    assert "ignored" in described and "never an error" in described
    referral_out = component(spec, "ReferralOut")
    friend = client.get("/api/v1/users/telegram/5100", headers=bot).json["id"]
    for user_id in (referrer, friend):
        view = client.get(f"/api/v1/users/{user_id}/referral", headers=bot).json
        assert verdict(spec, referral_out, view), view
    assert client.get(f"/api/v1/users/{friend}/referral", headers=bot).json["referred_by_user_id"] == referrer


def test_auto_renewal_rules_agree_with_the_server(client, principals, spec):
    """An opt-in or opt-out names the customer and says true or false (nothing else is a boolean), with an
    optional plan; its refusals of valid data are documented; every config view says whether it is opted in."""
    put = operation(spec, "PUT", "/api/v1/configs/{config_id}/auto-renewal")
    assert all(code in put["responses"]["409"]["description"] for code in ("config_not_renewable", "plan_not_allowed"))
    assert "plan_not_for_sale" in put["responses"]["409"]["description"]
    assert "user_banned" in put["responses"]["403"]["description"]
    config_out = spec["components"]["schemas"]["ConfigOut"]
    assert "auto_renew" in config_out["required"] and "auto_renew_plan_id" in config_out["properties"]

    admin = principals.admin.headers
    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5010", json={}, headers=admin).json["id"]
    auto_renewal_in = component(spec, "AutoRenewalIn")
    bodies = {
        "opt in": ({"user_id": user, "enabled": True}, True),
        "opt in with a plan": ({"user_id": user, "enabled": True, "plan_id": plan_id}, True),
        "opt out with no plan": ({"user_id": user, "enabled": False, "plan_id": None}, True),
        "no customer": ({"enabled": True}, False),
        "no choice": ({"user_id": user}, False),
        "a string for a boolean": ({"user_id": user, "enabled": "true"}, False),
        "a number for a boolean": ({"user_id": user, "enabled": 1}, False),
        "plan 0": ({"user_id": user, "enabled": True, "plan_id": 0}, False),
    }
    for label, (body, valid) in bodies.items():
        assert verdict(spec, auto_renewal_in, body) is valid, label
        response = client.put("/api/v1/configs/999999/auto-renewal", json=body, headers=admin)
        # Valid bodies meet a business rule here (no such config); invalid ones the schema.
        assert response.status_code == (404 if valid else 422), (label, response.status_code, response.json)


def test_discount_code_rules_agree_with_the_server(client, principals, spec):
    """A code takes a percent or an amount off, one; its expiry is an RFC 3339 date-time with an offset (lower
    case and leap seconds too); a top-up and extra data take no code; the codes' refusals are documented."""
    for method, path, status, codes in [
        ("POST", "/api/v1/discount-codes/quote", "409", "discount_unknown discount_expired discount_used_up"),
        ("POST", "/api/v1/discount-codes/quote", "429", "rate_limited"),
        ("POST", "/api/v1/payments", "409", "discount_not_for_this_plan discount_already_used_by_you"),
        ("POST", "/api/v1/payments", "429", "rate_limited"),
        ("POST", "/api/v1/configs/{config_id}/renew", "409", "discount_unknown discount_used_up"),
        ("POST", "/api/v1/users/{user_id}/wallet/purchases", "409", "discount_expired free_order_needs_review"),
        ("POST", "/api/v1/discount-codes", "409", "discount_code_taken"),
        ("DELETE", "/api/v1/discount-codes/{code_id}", "409", "discount_code_in_use"),
    ]:
        described = operation(spec, method, path)["responses"][status]["description"]
        assert all(code in described for code in codes.split()), (path, status, described)

    admin = principals.admin.headers
    code_in = component(spec, "DiscountCodeIn")
    bodies = {
        "a percent": ({"code": "spec-1", "percent_off": 10}, True),
        "an amount": ({"code": "spec-2", "amount_off_cents": 100}, True),
        "both": ({"code": "spec-3", "percent_off": 10, "amount_off_cents": 100}, False),
        "neither": ({"code": "spec-4"}, False),
        "a lower-case expiry": ({"code": "spec-5", "percent_off": 1, "expires_at": "2027-01-01t00:00:00z"}, True),
        "a leap second": ({"code": "spec-6", "percent_off": 1, "expires_at": "2016-12-31T23:59:60Z"}, True),
        "the calendar's first hours": (
            {"code": "spec-7", "percent_off": 1, "expires_at": "0001-01-01T00:00:00+14:00"},
            True,
        ),
        "no offset": ({"code": "spec-8", "percent_off": 1, "expires_at": "2027-01-01T00:00:00"}, False),
        "a short code": ({"code": "abc", "percent_off": 1}, False),
        "a space": ({"code": "ab cd", "percent_off": 1}, False),
    }
    for label, (body, valid) in bodies.items():
        assert verdict(spec, code_in, body) is valid, label
        response = client.post("/api/v1/discount-codes", json=body, headers=admin)
        assert (response.status_code == 201) is valid and (valid or response.status_code == 422), (label, response.json)
    leap = client.get("/api/v1/discount-codes?limit=200", headers=admin).json["items"]
    expiries = {item["code"]: item["expires_at"] for item in leap}
    assert expiries["SPEC-6"].startswith("2016-12-31T23:59:59") and expiries["SPEC-7"].startswith("0001-01-01T00")

    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5010", json={}, headers=admin).json["id"]
    payment_in = component(spec, "PaymentIn")
    proof = {"user_id": user, "evidence_file_id": "f", "evidence_unique_id": "u"}
    top_up = {**proof, "purpose": "topup", "amount_cents": 100, "discount_code": "SPEC-1"}
    purchase = {**proof, "plan_id": plan_id, "amount_cents": 270, "discount_code": "spec-1"}
    assert not verdict(spec, payment_in, top_up) and verdict(spec, payment_in, purchase)
    assert client.post("/api/v1/payments", json=top_up, headers=admin).status_code == 422
    assert client.post("/api/v1/payments", json=purchase, headers=admin).status_code == 201
    purchase_in = component(spec, "PurchaseIn")
    extra = {"extends_config_id": 999_999, "data_mb": 1024, "discount_code": "SPEC-1"}
    assert not verdict(spec, purchase_in, extra) and verdict(
        spec, purchase_in, {"plan_id": plan_id, "discount_code": "x"}
    )
    assert client.post(f"/api/v1/users/{user}/wallet/purchases", json=extra, headers=admin).status_code == 422


def test_segments_and_their_paging_agree_with_the_server(client, principals, spec):
    """The segment path parameter names exactly the segments the server serves (another name is a 404), the
    paging parameters have the server's ranges, and pages and counts answer as their schemas say."""
    bot, admin = principals.bot.headers, principals.admin.headers
    client.put("/api/v1/users/telegram/5200", json={}, headers=bot)
    members = operation(spec, "GET", "/api/v1/users/segments/{segment}")
    parameters = {p["name"]: p for p in members["parameters"]}
    names = parameters["segment"]["schema"]
    assert names["enum"] == ["all", "active", "expired", "never_bought"]
    for name in [*names["enum"], "everyone", "ALL", "all ", "never-bought"]:
        valid = verdict(spec, names, name)
        response = client.get(f"/api/v1/users/segments/{name}", headers=admin)
        assert response.status_code == (200 if valid else 404), (name, response.status_code)
        if valid:
            assert verdict(spec, component(spec, "SegmentPageOut"), response.json), response.json
    for name, value in [("after_id", -1), ("after_id", 0), ("after_id", 2**63 - 1), ("limit", 0), ("limit", 200)]:
        valid = verdict(spec, parameters[name]["schema"], value)
        response = client.get(f"/api/v1/users/segments/all?{name}={value}", headers=admin)
        assert response.status_code == (200 if valid else 422), (name, value, response.json)
    assert not verdict(spec, parameters["limit"]["schema"], 201)
    assert client.get("/api/v1/users/segments/all?limit=201", headers=admin).status_code == 422
    counts = client.get("/api/v1/users/segments", headers=admin)
    assert counts.status_code == 200 and verdict(spec, component(spec, "SegmentCountsOut"), counts.json)
    assert [item["segment"] for item in counts.json["items"]] == names["enum"]


def test_review_rules_and_the_history_agree_with_the_server(client, principals, spec):
    """A ban needs a reason, written or as a code; a reason code is one the bot can word; a review event is
    held or undone, of an approval or a rejection; the history answers as its schema says."""
    admin, bot = principals.admin.headers, principals.bot.headers
    plan_id = plan(client, admin).json["id"]
    user = client.put("/api/v1/users/telegram/5200", json={"username": "spec"}, headers=bot).json["id"]
    reject_in = component(spec, "RejectIn")
    for number, (body, valid) in enumerate(
        [
            ({"ban": True, "reason_code": "fake_receipt"}, True),
            ({"reason_code": "unreadable", "reason": "blurry"}, True),
            ({"ban": True}, False),
            ({"reason_code": "ugly"}, False),
            ({"reason_code": None}, False),
        ]
    ):
        assert verdict(spec, reject_in, body) is valid, body
        proof = {"evidence_file_id": f"spec-{number}", "evidence_unique_id": f"spec-u-{number}"}
        payment = client.post(
            "/api/v1/payments", json={"user_id": user, "plan_id": plan_id, "amount_cents": 300, **proof}, headers=bot
        ).json["id"]
        response = client.post(f"/api/v1/payments/{payment}/reject", json=body, headers=admin)
        assert response.status_code == (200 if valid else 422), (body, response.json)
        if response.status_code == 200 and body.get("ban"):
            client.post(f"/api/v1/users/{user}/unban", json={}, headers=admin)
    event_in = component(spec, "ReviewEventIn")
    assert verdict(spec, event_in, {"event": "held", "decision": "approve"})
    for body in ({"event": "decided", "decision": "approve"}, {"event": "held"}, {"event": "held", "decision": "x"}):
        assert not verdict(spec, event_in, body), body
        refused = client.post("/api/v1/payments/1/review-events", json=body, headers=admin)
        assert refused.status_code == 422, (body, refused.json)
    history = client.get(f"/api/v1/users/{user}/history", headers=bot).json
    assert verdict(spec, component(spec, "UserHistoryOut"), history), history
    assert history["payments"]["rejected"] == 2


def test_the_location_catalog_and_persian_names_agree_with_the_server(client, principals, spec):
    """A location's tag is a slug, its names are text (the Persian one optional, null or empty being none, at
    most as long as the English one); the catalog's refusals are documented; what it answers fits its schema."""
    for method, path, status, code in [
        ("POST", "/api/v1/locations", "409", "location_tag_taken"),
        ("DELETE", "/api/v1/locations/{location_id}", "409", "location_in_use"),
    ]:
        assert code in operation(spec, method, path)["responses"][status]["description"], (path, status)
    admin, bot = principals.admin.headers, principals.bot.headers
    location_in = component(spec, "LocationIn")
    for number, (body, valid) in enumerate(
        [
            ({"name": "Germany", "name_fa": "آلمان", "sort_order": 3}, True),
            ({"name": "Germany", "name_fa": None}, True),
            ({"name": "Germany", "name_fa": ""}, True),
            ({"name": "Germany", "name_fa": "ن" * 65}, False),
            ({"name": "Germany", "name_fa": "a\x07"}, False),
            ({"name": ""}, False),
            ({"name": "x", "sort_order": 2.0}, True),
            ({"name": "x", "sort_order": -1}, False),
        ]
    ):
        body = {"tag": f"spec-{number}", **body}
        assert verdict(spec, location_in, body) is valid, body
        response = client.post("/api/v1/locations", json=body, headers=admin)
        assert response.status_code == (201 if valid else 422), (body, response.json)
    assert not verdict(spec, location_in, {"tag": "spec\n", "name": "x"})
    assert client.post("/api/v1/locations", json={"tag": "spec\n", "name": "x"}, headers=admin).status_code == 422
    listed = client.get("/api/v1/locations", headers=bot).json
    assert verdict(spec, component(spec, "LocationList"), listed) and listed["total"] == 4
    plan_in = component(spec, "PlanIn")
    for name_fa, valid in (("پلن", True), (None, True), ("", True), ("ن" * 101, False)):
        assert verdict(spec, plan_in, {**PLAN, "price_cents": 1, "name_fa": name_fa}) is valid, name_fa
        response = plan(client, admin, name=f"fa {len(name_fa or '')} {name_fa is None}", name_fa=name_fa)
        assert response.status_code == (201 if valid else 422), (name_fa, response.json)
        if valid:
            assert verdict(spec, component(spec, "PlanOut"), response.json)


# --- the subscription's QR code: the PNG the spec says, for the callers it says -------------------------------


def test_the_subscription_qr_code_is_the_png_the_spec_says(client, principals, spec):
    documented = operation(spec, "GET", "/api/v1/users/{user_id}/subscription/qr.png")["responses"]
    assert set(documented["200"]["content"]) == {"image/png"} and "404" in documented
    user = client.put("/api/v1/users/telegram/5099", json={}, headers=principals.admin.headers).json["id"]
    for kind in ("admin", "bot"):
        answer = client.get(f"/api/v1/users/{user}/subscription/qr.png", headers=principals.of(kind).headers)
        assert answer.status_code == 200 and answer.mimetype == "image/png", kind
        assert answer.get_data().startswith(b"\x89PNG\r\n\x1a\n")
    missing = client.get("/api/v1/users/987654/subscription/qr.png", headers=principals.bot.headers)
    assert missing.status_code == 404 and verdict(spec, component(spec, "ErrorOut"), missing.json)


def test_webhook_rules_agree_with_the_server(client, principals, spec):
    """A webhook's URL is http(s) by pattern, its events a non-empty list of known names, its secret 16-128
    visible characters; what a pattern cannot state (credentials, a fragment, a port out of range) is the
    documented invalid_webhook_url; the answers fit their schemas, and the secret is in the create's only."""
    for method, path, status, code in [
        ("POST", "/api/v1/webhooks", "422", "invalid_webhook_url"),
        ("PATCH", "/api/v1/webhooks/{webhook_id}", "422", "invalid_webhook_url"),
        ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", "409", "already_delivered"),
    ]:
        assert code in operation(spec, method, path)["responses"][status]["description"], (path, status)
    admin = principals.admin.headers
    webhook_in = component(spec, "WebhookIn")
    good = {"url": "https://hooks.example.com/rayfleet?tenant=7", "events": ["payment.created"]}
    for body, valid in [
        (good, True),
        ({**good, "url": "HTTP://hooks.example.com/"}, True),
        ({**good, "events": ["payment.created", "node.alert_cleared"], "secret": "s" * 16}, True),
        ({**good, "is_active": False, "description": None}, True),
        ({**good, "url": "ftp://hooks.example.com/"}, False),
        ({**good, "url": "https://hooks.example.com/a b"}, False),
        ({**good, "url": "https://hooks.example.com/\n"}, False),
        ({**good, "events": []}, False),
        ({**good, "events": ["payment.refunded"]}, False),
        ({**good, "secret": "s" * 15}, False),
        ({**good, "secret": "s" * 129}, False),
        ({**good, "secret": "with a space in it"}, False),
        ({**good, "is_active": "yes"}, False),
    ]:
        assert verdict(spec, webhook_in, body) is valid, body
        response = client.post("/api/v1/webhooks", json=body, headers=admin)
        assert response.status_code == (201 if valid else 422), (body, response.json)
        if valid:
            assert verdict(spec, component(spec, "WebhookCreatedOut"), response.json), response.json
    for url in ("https://u:p@hooks.example.com/", "https://hooks.example.com/#x", "https://hooks.example.com:70000/"):
        assert verdict(spec, webhook_in, {**good, "url": url}), url  # the pattern admits it; the rule refuses it
        refused = client.post("/api/v1/webhooks", json={**good, "url": url}, headers=admin)
        assert refused.status_code == 422 and refused.json["error"] == "invalid_webhook_url", (url, refused.json)
    listed = client.get("/api/v1/webhooks", headers=admin).json
    assert verdict(spec, component(spec, "WebhookList"), listed) and listed["total"] == 4
    assert not any("secret" in item for item in listed["items"])
    log = client.get(f"/api/v1/webhooks/{listed['items'][0]['id']}/deliveries?status=failed", headers=admin).json
    assert verdict(spec, component(spec, "DeliveryList"), log) and log["items"] == []
