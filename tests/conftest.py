"""Shared fixtures: a real PostgreSQL and Redis per test session, a fresh app per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, text

from control_api import create_app, migrate
from control_api.config import Settings
from control_api.database import make_engine
from control_api.models import Admin, Base, BotClient
from harness.aws_emulator import moto_server
from harness.services import postgres_server, redis_server

JWT_TEST_KEY = secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL: TEST_DATABASE_URL if given, else a throwaway cluster."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: TEST_REDIS_URL if given, else a throwaway redis-server."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One AWS emulator (moto on loopback) for every Terraform test of the session; each test module
    destroys what it built, and regions keep modules apart."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    engine = make_engine(postgres_url)
    migrate.upgrade(engine)
    engine.dispose()
    return postgres_url


def make_settings(database_url: str, redis_url: str = "", **overrides: object) -> Settings:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret_key=JWT_TEST_KEY,
        login_rate_per_ip=(10_000, 60),
        login_rate_per_username=(10_000, 60),
        # Many tests pay several times for one customer; the limit's own test sets it back to 1.
        max_pending_payments_per_user=1000,
        # No sweep threads in test apps; the in-process sweep has tests of its own.
        sweep_interval_seconds=0,
        # Provisioning needs the URL agents reach (an https one: http is refused unless allowed).
        node_api_url="https://api.rayfleet.test",
        log_level="WARNING",
    )
    return replace(settings, **overrides)


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(migrated_postgres: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for the production shape: PostgreSQL + Redis, payment proofs in the test's own folder. Override
    with dataclasses.replace."""
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()
    return make_settings(migrated_postgres, redis_url, proof_storage_dir=str(tmp_path / "proofs"))


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    yield application
    application.extensions["rayfleet.db"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class Credentials:
    kind: str
    identifier: str
    secret: str
    principal_id: int
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login_body(self) -> dict[str, str]:
        if self.kind == "admin":
            return {"kind": "admin", "username": self.identifier, "password": self.secret}
        return {"kind": self.kind, "client_id": self.identifier, "client_secret": self.secret}


def cli_output(app, *args: str) -> dict[str, str]:
    """Run a flask CLI command and parse its 'key: value' lines."""
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)


def login(client, credentials: Credentials) -> Credentials:
    response = client.post("/api/v1/auth/token", json=credentials.login_body())
    assert response.status_code == 200, response.json
    credentials.token = response.json["access_token"]
    return credentials


@dataclass
class Principals:
    admin: Credentials
    bot: Credentials
    node: Credentials
    other_node: Credentials

    def of(self, kind: str) -> Credentials:
        return getattr(self, kind)


def _id_of(app, column, value) -> int:
    with app.app_context():
        return app.extensions["rayfleet.db"].session().scalar(select(column.class_.id).where(column == value))


def create_admin(app, client, username: str = "alice") -> Credentials:
    out = cli_output(app, "create-admin", username)
    return login(client, Credentials("admin", username, out["password"], _id_of(app, Admin.username, username)))


def create_bot(app, client, name: str = "shopbot") -> Credentials:
    out = cli_output(app, "create-bot-client", name)
    bot_id = _id_of(app, BotClient.name, name)
    return login(client, Credentials("bot", out["client_id"], out["client_secret"], bot_id))


def create_node(client, admin: Credentials, name: str = "node-a", **fields: object) -> Credentials:
    body = {"name": name, "region": "eu-central-1", "location_tag": "abroad", "public_ip": "203.0.113.10", **fields}
    response = client.post("/api/v1/nodes", json=body, headers=admin.headers)
    assert response.status_code == 201, response.json
    node = response.json
    return login(client, Credentials("node", node["client_id"], node["client_secret"], node["id"]))


@pytest.fixture
def principals(app, client) -> Principals:
    """One logged-in principal of every kind (plus a second node, for cross-node checks)."""
    admin = create_admin(app, client)
    bot = create_bot(app, client)
    node = create_node(client, admin, "node-a")
    other = create_node(client, admin, "node-b", public_ip="203.0.113.11")
    return Principals(admin=admin, bot=bot, node=node, other_node=other)
