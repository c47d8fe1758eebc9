"""Operator commands: `flask --app control_api <command>`. Secrets are printed once, never stored."""

from __future__ import annotations

import re

import click
from flask import Flask
from sqlalchemy import select

from . import migrate
from .extensions import get_db
from .models import Admin, BotClient, Plan
from .security import SYSTEM
from .services import audit
from .services.credentials import hash_secret, new_client_id, new_secret
from .services.demo import DEMO_PLANS

# Names a person can type at a login prompt: no spaces, control characters or NUL, at most 64.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _checked_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(
            "use 1-64 characters: letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            param_hint="NAME",
        )
    return name


def register_commands(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.argument("username")
    def create_admin(username: str) -> None:
        """Create an admin with a generated password, printed once."""
        username = _checked_name(username)
        session = get_db().session()
        if session.scalar(select(Admin.id).where(Admin.username == username)) is not None:
            raise click.ClickException(f"admin {username!r} already exists")
        password = new_secret()
        admin = Admin(username=username, password_hash=hash_secret(password))
        session.add(admin)
        session.flush()
        audit.record(session, SYSTEM, "admin.create", admin_id=admin.id, username=username)
        session.commit()
        click.echo(f"admin: {username}\npassword: {password}\n(shown once; only a hash is stored)")

    @app.cli.command("admin-exists")
    @click.argument("username")
    def admin_exists(username: str) -> None:
        """Exit 0 if the admin exists, 1 otherwise (for scripts)."""
        session = get_db().session()
        if session.scalar(select(Admin.id).where(Admin.username == username)) is None:
            raise click.exceptions.Exit(1)
        click.echo(f"admin {username!r} exists")

    @app.cli.command("reset-admin-password")
    @click.argument("username")
    def reset_admin_password(username: str) -> None:
        """Give an admin a new generated password, printed once."""
        session = get_db().session()
        admin = session.scalar(select(Admin).where(Admin.username == username))
        if admin is None:
            raise click.ClickException(f"admin {username!r} does not exist")
        password = new_secret()
        admin.password_hash = hash_secret(password)
        audit.record(session, SYSTEM, "admin.reset_password", admin_id=admin.id, username=username)
        session.commit()
        click.echo(f"admin: {username}\npassword: {password}\n(shown once; only a hash is stored)")

    @app.cli.command("create-bot-client")
    @click.argument("name")
    def create_bot_client(name: str) -> None:
        """Create bot-service credentials, printed once."""
        name = _checked_name(name)
        session = get_db().session()
        if session.scalar(select(BotClient.id).where(BotClient.name == name)) is not None:
            raise click.ClickException(f"bot client {name!r} already exists")
        secret = new_secret()
        bot = BotClient(name=name, client_id=new_client_id("bot"), secret_hash=hash_secret(secret))
        session.add(bot)
        session.flush()
        audit.record(session, SYSTEM, "bot_client.create", bot_client_id=bot.id, name=name)
        session.commit()
        click.echo(f"client_id: {bot.client_id}\nclient_secret: {secret}\n(shown once; only a hash is stored)")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Add the demo plan catalogue (skips plans that already exist)."""
        session = get_db().session()
        existing = set(session.scalars(select(Plan.name)))
        added = [Plan(**plan) for plan in DEMO_PLANS if plan["name"] not in existing]
        session.add_all(added)
        if added:
            audit.record(session, SYSTEM, "plan.seed_demo", names=[plan.name for plan in added])
        session.commit()
        click.echo(f"demo plans added: {len(added)} (already there: {len(DEMO_PLANS) - len(added)})")

    @app.cli.group("db")
    def db_group() -> None:
        """Database migrations (Alembic)."""

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision: str) -> None:
        """Apply migrations up to REVISION (default: head)."""
        migrate.upgrade(get_db().engine, revision)
        click.echo(f"database at {migrate.current(get_db().engine)}")

    @db_group.command("downgrade")
    @click.argument("revision")
    def downgrade(revision: str) -> None:
        """Revert migrations down to REVISION ('base' empties the database)."""
        migrate.downgrade(get_db().engine, revision)
        click.echo(f"database at {migrate.current(get_db().engine) or 'base'}")

    @db_group.command("current")
    def current() -> None:
        """Show the applied revision."""
        click.echo(migrate.current(get_db().engine) or "base (empty)")
