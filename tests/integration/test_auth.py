"""Logging in, token lifetime and revocation, refused tokens, and login rate limits."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace

import jwt as pyjwt
import pytest
import redis
from sqlalchemy import select

from control_api import create_app, migrate
from control_api.models import Admin, BotClient, Node, utcnow
from tests.conftest import Credentials, cli_output, login, make_settings

INVALID_CREDENTIALS = {"error": "invalid_credentials", "message": "Invalid credentials."}


@pytest.fixture
def build(settings):
    """Build extra apps from the test's settings (with overrides); their engines are disposed afterwards."""
    apps = []

    def _build(base=None, **overrides):
        application = create_app(replace(base or settings, **overrides))
        apps.append(application)
        return application

    yield _build
    for application in apps:
        application.extensions["rayfleet.db"].engine.dispose()


def new_admin(app, username: str) -> Credentials:
    """An admin made with the CLI, not logged in (a login would count against the rate limits)."""
    password = cli_output(app, "create-admin", username)["password"]
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        admin_id = session.scalar(select(Admin.id).where(Admin.username == username))
    return Credentials("admin", username, password, admin_id)


def new_bot(app, name: str) -> Credentials:
    out = cli_output(app, "create-bot-client", name)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        bot_id = session.scalar(select(BotClient.id).where(BotClient.name == name))
    return Credentials("bot", out["client_id"], out["client_secret"], bot_id)


def post_token(client, body: dict, ip: str = "127.0.0.1"):
    return client.post("/api/v1/auth/token", json=body, environ_base={"REMOTE_ADDR": ip})


def me(client, token: str):
    return client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def assert_401(response, message_part: str = "") -> None:
    assert response.status_code == 401, (response.status_code, response.get_data(as_text=True))
    assert response.is_json, response.get_data(as_text=True)
    assert set(response.json) == {"error", "message"}, response.json
    assert response.json["error"] in {"unauthorized", "invalid_credentials"}
    assert message_part.lower() in response.json["message"].lower(), response.json


def assert_429(response, what: str, window: int) -> None:
    assert response.status_code == 429, (response.status_code, response.json)
    # The window started at the first attempt; slow (scrypt) attempts on a busy machine eat into it.
    assert window - 10 <= int(response.headers["Retry-After"]) <= window, response.headers["Retry-After"]
    assert response.is_json
    assert response.json["error"] == "rate_limited"
    assert what in response.json["message"], response.json


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def with_claims(token: str, **changes: object) -> str:
    """The token with its payload edited and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = {**json.loads(b64url_decode(payload)), **changes}
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


# --- logging in ------------------------------------------------------------------------------------------------


def test_every_kind_logs_in(client, principals):
    for kind in ("admin", "bot", "node"):
        credentials = principals.of(kind)
        response = post_token(client, credentials.login_body())
        assert response.status_code == 200, response.json
        assert set(response.json) == {"access_token", "token_type", "expires_in", "kind"}
        assert response.json["token_type"] == "Bearer"
        assert response.json["expires_in"] == 900
        assert response.json["kind"] == kind

        who = me(client, response.json["access_token"])
        assert who.status_code == 200
        assert (who.json["kind"], who.json["id"]) == (kind, credentials.principal_id)
        claims = claims_of(response.json["access_token"])
        assert claims["kind"] == kind and claims["sub"] == str(credentials.principal_id)
        assert claims["exp"] - claims["iat"] == 900


def test_bad_credentials_get_one_generic_answer(app, client, principals):
    admin, bot, node = principals.admin, principals.bot, principals.node
    disabled = new_admin(app, "mallory")
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.get(Admin, disabled.principal_id).disabled_at = utcnow()
        session.commit()

    attempts = {
        "wrong password": {**admin.login_body(), "password": "not-the-password"},
        "unknown admin": {"kind": "admin", "username": "nobody", "password": "whatever"},
        "wrong bot secret": {**bot.login_body(), "client_secret": "nope"},
        "unknown bot": {"kind": "bot", "client_id": "bot-0000000000000000", "client_secret": "nope"},
        "wrong node secret": {**node.login_body(), "client_secret": "nope"},
        "unknown node": {"kind": "node", "client_id": "node-0000000000000000", "client_secret": "nope"},
        "bot credentials as a node": {**bot.login_body(), "kind": "node"},
        "node credentials as a bot": {**node.login_body(), "kind": "bot"},
        "disabled admin, right password": disabled.login_body(),
    }
    for name, body in attempts.items():
        response = post_token(client, body)
        assert response.status_code == 401, (name, response.json)
        assert response.json == INVALID_CREDENTIALS, name


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "admin", "client_id": "bot-0123456789abcdef", "client_secret": "x"},
        {"kind": "admin", "username": "alice", "password": "x", "client_id": "bot-0123456789abcdef"},
        {"kind": "bot", "username": "alice", "password": "x"},
        {"kind": "node", "client_id": "node-1", "client_secret": "x", "password": "x"},
        {"kind": "admin", "username": "alice"},
        {"kind": "system", "username": "alice", "password": "x"},
        {"username": "alice", "password": "x"},
        {"kind": "admin", "username": "", "password": "x"},
    ],
    ids=[
        "admin+client_id",
        "admin+extra client_id",
        "bot+username",
        "node+password",
        "admin without password",
        "unknown kind",
        "no kind",
        "empty username",
    ],
)
def test_login_body_must_match_its_kind(client, body):
    response = post_token(client, body)
    assert response.status_code == 422, response.json
    assert response.json["error"] == "validation_error"
    assert response.json["details"]


# --- token lifetime and revocation -----------------------------------------------------------------------------


def test_an_expired_token_is_refused(build):
    app = build(access_token_ttl_seconds=1)
    client = app.test_client()
    admin = new_admin(app, "alice")
    response = post_token(client, admin.login_body())
    assert response.status_code == 200 and response.json["expires_in"] == 1
    time.sleep(2.1)
    assert_401(me(client, response.json["access_token"]), "expired")


def test_a_revoked_token_is_refused_by_every_app_sharing_redis(app, client, principals, settings, build):
    admin, bot = principals.admin, principals.bot
    assert client.post("/api/v1/auth/revoke", headers=admin.headers).status_code == 204
    assert_401(me(client, admin.token), "revoked")
    assert_401(client.post("/api/v1/auth/revoke", headers=admin.headers), "revoked")

    # A second instance (another worker or host) with the same settings shares the blocklist.
    second = build(settings).test_client()
    assert_401(me(second, admin.token), "revoked")
    assert me(second, bot.token).status_code == 200
    # ...both ways: a revocation made through the second instance holds on the first.
    assert second.post("/api/v1/auth/revoke", headers=bot.headers).status_code == 204
    assert_401(me(client, bot.token), "revoked")

    # Only that token is blocked: the admin logs in again, and the node's token still works.
    fresh = login(client, replace(admin)).token
    assert me(client, fresh).status_code == 200
    assert me(second, principals.node.token).status_code == 200

    # The blocklist entry lives no longer than the token would have.
    ttl = redis.Redis.from_url(settings.redis_url).ttl(f"rayfleet:revoked:{claims_of(admin.token)['jti']}")
    assert 0 < ttl <= 901


def test_a_token_signed_with_another_key_is_refused(client, principals):
    claims = claims_of(principals.admin.token)
    forged = pyjwt.encode(claims, "another-key-" + "x" * 40, algorithm="HS256")
    assert_401(me(client, forged), "invalid")
    unsigned = pyjwt.encode(claims, None, algorithm="none")
    assert_401(me(client, unsigned), "invalid")
    # The untouched token works, so the refusals are about the signature alone.
    assert me(client, principals.admin.token).status_code == 200


def test_a_tampered_token_is_refused(client, principals):
    bot, admin = principals.bot, principals.admin
    # The bot cannot call an admin-only route...
    assert client.get("/api/v1/users", headers=bot.headers).status_code == 403
    # ...nor promote itself by editing its claims.
    for forged in (
        with_claims(bot.token, kind="admin"),
        with_claims(bot.token, kind="admin", sub=str(admin.principal_id)),
        with_claims(bot.token, exp=claims_of(bot.token)["exp"] + 86_400),
    ):
        response = client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
        assert_401(response, "invalid")

    header, payload, signature = bot.token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    assert_401(me(client, f"{header}.{payload}.{flipped}"), "invalid")


def test_a_disabled_admin_or_bot_loses_its_token(app, client, principals):
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.get(Admin, principals.admin.principal_id).disabled_at = utcnow()
        session.get(BotClient, principals.bot.principal_id).disabled_at = utcnow()
        session.commit()
    assert_401(me(client, principals.admin.token), "disabled")
    assert_401(me(client, principals.bot.token), "disabled")
    assert_401(client.get("/api/v1/users", headers=principals.admin.headers), "disabled")
    assert me(client, principals.node.token).status_code == 200


def test_a_disabled_node_loses_its_token(app, client, principals):
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.get(Node, principals.node.principal_id).status = "disabled"
        session.commit()
    assert_401(me(client, principals.node.token), "disabled")
    assert_401(client.get(f"/api/v1/nodes/{principals.node.principal_id}", headers=principals.node.headers))
    assert post_token(client, principals.node.login_body()).json == INVALID_CREDENTIALS
    assert me(client, principals.other_node.token).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic x",
        "Basic YWxpY2U6c2VjcmV0",
        "garbage",
        ",",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer a b",
        "Bearer Bearer",
        "Bearer é",
        "Bearer " + "A" * 5000,
    ],
)
def test_malformed_authorization_headers_get_401_json(client, authorization):
    response = client.get("/api/v1/auth/me", headers={"Authorization": authorization})
    assert_401(response)
    assert response.json["error"] == "unauthorized"


def test_two_bearer_tokens_in_one_header_are_refused(client, principals):
    both = f"Bearer {principals.admin.token}, Bearer {principals.bot.token}"
    assert_401(client.get("/api/v1/auth/me", headers={"Authorization": both}))
    assert_401(client.get("/api/v1/auth/me", headers={"Authorization": principals.admin.token}))


# --- rate limits ---------------------------------------------------------------------------------------------


def test_login_rate_limit_per_client_address(build):
    app = build(login_rate_per_ip=(3, 60))
    client = app.test_client()
    alice, bob = new_admin(app, "alice"), new_admin(app, "bob")
    wrong = {**alice.login_body(), "password": "wrong"}

    for _ in range(3):
        assert post_token(client, wrong, ip="10.0.0.1").status_code == 401
    # The limit comes before the password check: even the right password is now refused from there.
    assert_429(post_token(client, alice.login_body(), ip="10.0.0.1"), "address", 60)
    assert_429(post_token(client, bob.login_body(), ip="10.0.0.1"), "address", 60)
    # Other addresses have their own count.
    assert post_token(client, alice.login_body(), ip="10.0.0.2").status_code == 200
    assert post_token(client, bob.login_body(), ip="10.0.0.3").status_code == 200


def test_failed_logins_count_per_address_and_account_so_strangers_cannot_lock_an_admin_out(build):
    app = build(login_rate_per_username=(3, 60))
    client = app.test_client()
    alice, bob = new_admin(app, "alice"), new_admin(app, "bob")
    bot = new_bot(app, "shopbot")
    wrong = {**alice.login_body(), "password": "wrong"}

    # A stranger guesses from one address until refused there, even with the right password.
    for _ in range(3):
        assert post_token(client, wrong, ip="10.0.0.1").status_code == 401
    refused = post_token(client, alice.login_body(), ip="10.0.0.1")
    assert_429(refused, "account", 60)
    assert "from this address" in refused.json["message"]
    # Alice, from an address that has not been failing, logs in: the guesses locked nobody out.
    assert post_token(client, alice.login_body(), ip="10.0.0.2").status_code == 200
    # Her successes are not failures: she can log in again and again.
    for _ in range(4):
        assert post_token(client, alice.login_body(), ip="10.0.0.2").status_code == 200
    # Other accounts, even from the failing address, are unaffected.
    assert post_token(client, bob.login_body(), ip="10.0.0.1").status_code == 200
    assert post_token(client, bot.login_body(), ip="10.0.0.1").status_code == 200


def test_forwarded_for_counts_only_behind_a_trusted_proxy(build):
    def attempt(client, credentials, forwarded_for, password=None):
        body = credentials.login_body()
        if password:
            body["password"] = password
        return client.post(
            "/api/v1/auth/token",
            json=body,
            headers={"X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )

    # No trusted proxy: a client cannot dodge the per-address limit by inventing X-Forwarded-For values.
    direct = build(login_rate_per_ip=(2, 60))
    client = direct.test_client()
    alice = new_admin(direct, "alice")
    assert attempt(client, alice, "198.51.100.1", password="wrong").status_code == 401
    assert attempt(client, alice, "198.51.100.2", password="wrong").status_code == 401
    assert_429(attempt(client, alice, "198.51.100.3"), "address", 60)

    # Behind one trusted proxy, the address the proxy saw is what counts.
    proxied = build(login_rate_per_ip=(2, 60), trusted_proxy_count=1)
    client = proxied.test_client()
    assert attempt(client, alice, "198.51.100.1", password="wrong").status_code == 401
    assert attempt(client, alice, "198.51.100.1", password="wrong").status_code == 401
    assert_429(attempt(client, alice, "198.51.100.1"), "address", 60)
    # A value the client prepended itself is not trusted.
    assert_429(attempt(client, alice, "203.0.113.99, 198.51.100.1"), "address", 60)
    assert attempt(client, alice, "198.51.100.2").status_code == 200


def test_embedded_memory_store_rate_limits_and_revokes(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}/x.sqlite3", login_rate_per_ip=(2, 60))
    assert settings.embedded
    app = create_app(settings)
    try:
        migrate.upgrade(app.extensions["rayfleet.db"].engine)
        client = app.test_client()
        health = client.get("/api/v1/health")
        assert health.status_code == 200 and health.json["store"] == "ok (memory)"
        alice = new_admin(app, "alice")

        first = post_token(client, alice.login_body(), ip="10.0.0.1")
        assert first.status_code == 200
        assert post_token(client, alice.login_body(), ip="10.0.0.1").status_code == 200
        assert_429(post_token(client, alice.login_body(), ip="10.0.0.1"), "address", 60)

        other = post_token(client, alice.login_body(), ip="10.0.0.2")
        assert other.status_code == 200
        token = other.json["access_token"]
        assert me(client, token).status_code == 200
        assert client.post("/api/v1/auth/revoke", headers={"Authorization": f"Bearer {token}"}).status_code == 204
        assert_401(me(client, token), "revoked")
        assert me(client, first.json["access_token"]).status_code == 200
    finally:
        app.extensions["rayfleet.db"].engine.dispose()
