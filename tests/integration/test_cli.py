"""Operator commands that mint credentials: the secret is printed once, only its hash is stored, and audited."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from werkzeug.security import check_password_hash

from control_api.models import Admin, AuditLog, BotClient

REPO = Path(__file__).resolve().parents[2]
SHOWN_ONCE = "(shown once; only a hash is stored)"


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def rows(app, model, *where):
    with app.app_context():
        return list(app.extensions["rayfleet.db"].session().scalars(select(model).where(*where)))


def audit_text(app) -> str:
    """Every audit row, as one string, to search for leaked secrets."""
    return json.dumps([[row.action, row.actor_type, row.actor_id, row.details] for row in rows(app, AuditLog)])


def assert_scrypt_hash_of(stored: str, secret: str) -> None:
    assert stored.startswith("scrypt:"), stored
    assert secret not in stored
    assert check_password_hash(stored, secret)
    assert not check_password_hash(stored, secret + "x")


def test_create_admin_prints_the_password_once_and_stores_a_hash(app, client):
    result = run(app, "create-admin", "carol")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3, result.output
    assert lines[0] == "admin: carol"
    assert lines[1].startswith("password: ")
    assert lines[2] == SHOWN_ONCE
    password = lines[1].removeprefix("password: ")
    assert len(password) >= 32 and password.strip() == password
    assert result.output.count(password) == 1

    (admin,) = rows(app, Admin, Admin.username == "carol")
    assert_scrypt_hash_of(admin.password_hash, password)
    assert admin.disabled_at is None

    (entry,) = rows(app, AuditLog, AuditLog.action == "admin.create")
    assert (entry.actor_type, entry.actor_id) == ("system", None)
    assert entry.details == {"admin_id": admin.id, "username": "carol"}
    assert password not in audit_text(app)

    # The printed password is the one that works.
    body = {"kind": "admin", "username": "carol", "password": password}
    assert client.post("/api/v1/auth/token", json=body).status_code == 200

    # Every admin gets a password of its own.
    other = run(app, "create-admin", "dave")
    assert other.exit_code == 0
    assert password not in other.output


def test_create_bot_client_prints_the_secret_once_and_stores_a_hash(app, client):
    result = run(app, "create-bot-client", "shopbot")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3, result.output
    assert re.fullmatch(r"client_id: bot-[0-9a-f]{16}", lines[0]), lines[0]
    assert lines[1].startswith("client_secret: ")
    assert lines[2] == SHOWN_ONCE
    client_id = lines[0].removeprefix("client_id: ")
    secret = lines[1].removeprefix("client_secret: ")
    assert len(secret) >= 32
    assert result.output.count(secret) == 1

    (bot,) = rows(app, BotClient, BotClient.name == "shopbot")
    assert bot.client_id == client_id
    assert_scrypt_hash_of(bot.secret_hash, secret)

    (entry,) = rows(app, AuditLog, AuditLog.action == "bot_client.create")
    assert (entry.actor_type, entry.actor_id) == ("system", None)
    assert entry.details == {"bot_client_id": bot.id, "name": "shopbot"}
    assert secret not in audit_text(app)

    body = {"kind": "bot", "client_id": client_id, "client_secret": secret}
    response = client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 200 and response.json["kind"] == "bot"


def test_a_duplicate_admin_is_refused_and_changes_nothing(app, client):
    first = run(app, "create-admin", "carol")
    assert first.exit_code == 0
    password = first.output.splitlines()[1].removeprefix("password: ")

    again = run(app, "create-admin", "carol")
    assert again.exit_code != 0
    assert "admin 'carol' already exists" in again.output
    assert "password" not in again.output
    assert len(rows(app, Admin)) == 1
    assert len(rows(app, AuditLog, AuditLog.action == "admin.create")) == 1
    # The first password was not replaced.
    body = {"kind": "admin", "username": "carol", "password": password}
    assert client.post("/api/v1/auth/token", json=body).status_code == 200


def test_a_duplicate_bot_client_is_refused_and_changes_nothing(app):
    assert run(app, "create-bot-client", "shopbot").exit_code == 0
    (bot,) = rows(app, BotClient)

    again = run(app, "create-bot-client", "shopbot")
    assert again.exit_code != 0
    assert "bot client 'shopbot' already exists" in again.output
    assert "client_secret" not in again.output
    (still,) = rows(app, BotClient)
    assert (still.client_id, still.secret_hash) == (bot.client_id, bot.secret_hash)
    assert len(rows(app, AuditLog, AuditLog.action == "bot_client.create")) == 1


def test_the_flask_command_line_reads_settings_from_the_environment(app, settings):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET_KEY": settings.jwt_secret_key,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "flask", "--app", "control_api", "create-admin", "erin"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    output = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert output["admin"] == "erin"
    (admin,) = rows(app, Admin, Admin.username == "erin")
    assert_scrypt_hash_of(admin.password_hash, output["password"])

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode != 0
    assert "admin 'erin' already exists" in again.stderr
    assert "password" not in again.stdout


def test_names_nobody_could_log_in_with_are_refused_clearly(app):
    for command in ("create-admin", "create-bot-client"):
        for bad in ("", "two words", "line\nbreak", "x" * 65, "nul\x00", "-dash-first"):
            result = run(app, command, "--", bad)
            assert result.exit_code != 0, (command, bad)
            assert "use 1-64 characters" in result.output
            assert "Traceback" not in result.output
    assert rows(app, Admin) == []
    assert rows(app, BotClient) == []


def test_an_admin_who_lost_the_authenticator_gets_two_factor_reset_by_the_operator(app, client):
    password = run(app, "create-admin", "erin").output.splitlines()[1].removeprefix("password: ")
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        admin = session.scalar(select(Admin).where(Admin.username == "erin"))
        admin.totp_secret, admin.totp_enabled_at = "JBSWY3DPEHPK3PXP", admin.created_at
        session.commit()
    body = {"kind": "admin", "username": "erin", "password": password}
    assert client.post("/api/v1/auth/token", json=body).status_code == 401  # the code is required now

    result = run(app, "reset-admin-two-factor", "erin")
    assert result.exit_code == 0, result.output
    assert client.post("/api/v1/auth/token", json=body).status_code == 200
    (entry,) = rows(app, AuditLog, AuditLog.action == "admin.totp_reset")
    assert (entry.actor_type, entry.details["username"]) == ("system", "erin")
    missing = run(app, "reset-admin-two-factor", "nobody")
    assert missing.exit_code != 0 and "does not exist" in missing.output
