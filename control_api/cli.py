"""Operator commands: `flask --app control_api <command>`. Secrets are printed once, never stored."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import Flask

from . import migrate
from .actors import SYSTEM
from .errors import DomainError
from .extensions import get_db
from .services import locations, plans, principals

SHOWN_ONCE = "(shown once; only a hash is stored)"
T = TypeVar("T")
# Names a person can type at a login prompt: no spaces, control characters or NUL, at most 64.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _checked_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(
            "use 1-64 characters: letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            param_hint="NAME",
        )
    return name


def _run(service: Callable[..., T], *args: Any) -> T:
    """Call a service as the system actor; a refused rule becomes a clean CLI error."""
    try:
        return service(get_db().session(), SYSTEM, *args)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


def register_commands(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.argument("username")
    def create_admin(username: str) -> None:
        """Create an admin with a generated password, printed once."""
        password = _run(principals.create_admin, _checked_name(username))
        click.echo(f"admin: {username}\npassword: {password}\n{SHOWN_ONCE}")

    @app.cli.command("admin-exists")
    @click.argument("username")
    def admin_exists(username: str) -> None:
        """Exit 0 if the admin exists, 1 otherwise (for scripts)."""
        if not principals.admin_exists(get_db().session(), username):
            raise click.exceptions.Exit(1)
        click.echo(f"admin {username!r} exists")

    @app.cli.command("reset-admin-password")
    @click.argument("username")
    def reset_admin_password(username: str) -> None:
        """Give an admin a new generated password, printed once."""
        password = _run(principals.reset_admin_password, username)
        click.echo(f"admin: {username}\npassword: {password}\n{SHOWN_ONCE}")

    @app.cli.command("reset-admin-two-factor")
    @click.argument("username")
    def reset_admin_two_factor(username: str) -> None:
        """Turn an admin's two-factor off (a lost authenticator); they can set it up again in the console."""
        _run(principals.reset_admin_two_factor, username)
        click.echo(f"admin {username!r}: two-factor is off; the password alone logs in until it is set up again")

    @app.cli.command("create-bot-client")
    @click.argument("name")
    def create_bot_client(name: str) -> None:
        """Create bot-service credentials, printed once."""
        client_id, secret = _run(principals.create_bot_client, _checked_name(name))
        click.echo(f"client_id: {client_id}\nclient_secret: {secret}\n{SHOWN_ONCE}")

    @app.cli.group("principal")
    def principal_group() -> None:
        """Disable, enable or rotate the secret of an admin, a bot client or a node (by name)."""

    collections = click.Choice(sorted(principals.COLLECTIONS))

    @principal_group.command("disable")
    @click.argument("collection", type=collections)
    @click.argument("name")
    def disable(collection: str, name: str) -> None:
        """Disable it: its tokens stop working on their next request."""
        _run(principals.set_enabled, collection, False, None, name)
        click.echo(f"{collection[:-1]} {name}: disabled")

    @principal_group.command("enable")
    @click.argument("collection", type=collections)
    @click.argument("name")
    def enable(collection: str, name: str) -> None:
        """Enable it again."""
        _run(principals.set_enabled, collection, True, None, name)
        click.echo(f"{collection[:-1]} {name}: enabled")

    @principal_group.command("rotate-secret")
    @click.argument("collection", type=collections)
    @click.argument("name")
    def rotate_secret(collection: str, name: str) -> None:
        """A new generated secret (an admin's password), printed once; tokens issued before stop working."""
        rotated = _run(principals.rotate_secret, collection, None, name)
        label = "client_id" if rotated["client_id"] else "admin"
        click.echo(f"{label}: {rotated['client_id'] or name}\nsecret: {rotated['secret']}\n{SHOWN_ONCE}")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Add the demo plan catalogue and its locations (skips plans and locations that already exist)."""
        added, present = plans.seed_demo_plans(get_db().session(), SYSTEM)
        click.echo(f"demo plans added: {added} (already there: {present})")
        added, present = locations.seed_demo_locations(get_db().session(), SYSTEM)
        click.echo(f"demo locations added: {added} (already there: {present})")

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
