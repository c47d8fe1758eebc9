"""Principals: minting credentials for admins and bot services (the CLI's work; node credentials live in
nodes.py), and who acts when the bot acts for a Telegram admin."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..actors import Principal, TelegramAdmin
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import Admin, BotClient, Node, User, utcnow
from . import audit
from .credentials import hash_secret, new_client_id, new_secret


def _find_admin(session: Session, username: str) -> Admin | None:
    return session.scalar(select(Admin).where(Admin.username == username))


def admin_exists(session: Session, username: str) -> bool:
    return _find_admin(session, username) is not None


def create_admin(session: Session, actor: Principal, username: str) -> str:
    """Create an admin and return its generated password (only the hash is stored)."""
    if admin_exists(session, username):
        raise Conflict(f"admin {username!r} already exists")
    password = new_secret()
    admin = Admin(username=username, password_hash=hash_secret(password))
    session.add(admin)
    session.flush()
    audit.record(session, actor, "admin.create", admin_id=admin.id, username=username)
    session.commit()
    return password


def reset_admin_password(session: Session, actor: Principal, username: str) -> str:
    admin = _find_admin(session, username)
    if admin is None:
        raise NotFound(f"admin {username!r} does not exist")
    password = new_secret()
    admin.password_hash = hash_secret(password)
    admin.secret_rotated_at = utcnow()
    audit.record(session, actor, "admin.reset_password", admin_id=admin.id, username=username)
    session.commit()
    return password


def reset_admin_two_factor(session: Session, actor: Principal, username: str) -> None:
    """Turn an admin's two-factor off (a lost device): the password alone logs in again until they set it up
    anew. Operators only (the CLI): whoever holds the database holds this anyway."""
    admin = _find_admin(session, username)
    if admin is None:
        raise NotFound(f"admin {username!r} does not exist")
    admin.totp_secret, admin.totp_enabled_at = None, None
    audit.record(session, actor, "admin.totp_reset", admin_id=admin.id, username=username)
    session.commit()


def create_bot_client(session: Session, actor: Principal, name: str) -> tuple[str, str]:
    """Create bot-service credentials; return (client_id, secret)."""
    if session.scalar(select(BotClient.id).where(BotClient.name == name)) is not None:
        raise Conflict(f"bot client {name!r} already exists")
    secret = new_secret()
    bot = BotClient(name=name, client_id=new_client_id("bot"), secret_hash=hash_secret(secret))
    session.add(bot)
    session.flush()
    audit.record(session, actor, "bot_client.create", bot_client_id=bot.id, name=name)
    session.commit()
    return bot.client_id, secret


def acting_admin(session: Session, caller: Principal, acting_telegram_id: int | None) -> Principal:
    """Who acts as an admin: an admin calls for themselves; the bot must name the Telegram admin it acts for."""
    if caller.kind == "admin":
        if acting_telegram_id is not None:
            raise InvalidInput("acting_telegram_id is for the bot only.", code="not_for_admins")
        return caller
    if acting_telegram_id is None:
        raise InvalidInput(
            "The bot must send acting_telegram_id, the Telegram admin it acts for.", code="acting_admin_required"
        )
    user = session.scalar(select(User).where(User.telegram_id == acting_telegram_id))
    if user is None or not user.is_admin or user.is_banned:
        raise Forbidden("That Telegram user is not an admin.", code="not_an_admin")
    return TelegramAdmin("admin", user.id, user.username or str(user.telegram_id), telegram_id=user.telegram_id)


# --- disabling, enabling and rotating secrets (admins, bot clients, nodes) ------------------------

PrincipalRow = Admin | BotClient | Node
COLLECTIONS: dict[str, type[PrincipalRow]] = {"admins": Admin, "bot-clients": BotClient, "nodes": Node}


def _label(row: PrincipalRow) -> str:
    return row.username if isinstance(row, Admin) else row.name


def principal_view(row: PrincipalRow) -> dict[str, Any]:
    kind = {Admin: "admin", BotClient: "bot", Node: "node"}[type(row)]
    disabled_at = row.disabled_at if not isinstance(row, Node) else None
    return {
        "kind": kind,
        "id": row.id,
        "name": _label(row),
        "client_id": None if isinstance(row, Admin) else row.client_id,
        "disabled": row.status == "disabled" if isinstance(row, Node) else row.disabled_at is not None,
        "disabled_at": disabled_at,
        "secret_rotated_at": row.secret_rotated_at,
        "created_at": row.created_at,
    }


def list_principals(session: Session, collection: str) -> list[dict[str, Any]]:
    model = COLLECTIONS[collection]
    return [principal_view(row) for row in session.scalars(select(model).order_by(model.id))]


def _find(session: Session, collection: str, principal_id: int | None = None, name: str | None = None) -> PrincipalRow:
    model = COLLECTIONS[collection]
    if principal_id is not None:
        row = session.get(model, principal_id, with_for_update=True)
    else:
        column = Admin.username if model is Admin else model.name
        row = session.scalar(select(model).where(column == name).with_for_update())
    if row is None:
        raise NotFound(f"No such {collection[:-1].replace('-', ' ')}: {principal_id if name is None else name!r}.")
    return row


def set_enabled(
    session: Session,
    actor: Principal,
    collection: str,
    enabled: bool,
    principal_id: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Disable (its tokens stop working on their next request) or enable an admin, bot client or node."""
    row = _find(session, collection, principal_id, name)
    if isinstance(row, Node):
        if enabled and row.status == "disabled":
            # A node that had served before comes back active; a never-provisioned one stays provisioning.
            row.status = "active" if row.applied_revision > 0 else "provisioning"
        elif not enabled:
            row.status = "disabled"
    else:
        if not enabled and isinstance(row, Admin):
            _keep_an_admin(session, actor, row)
        row.disabled_at = None if enabled else (row.disabled_at or utcnow())
    action = "enable" if enabled else "disable"
    audit.record(session, actor, f"principal.{action}", collection=collection, principal_id=row.id, name=_label(row))
    session.commit()
    return principal_view(row)


def _keep_an_admin(session: Session, actor: Principal, admin: Admin) -> None:
    if actor.kind == "admin" and actor.id == admin.id:
        raise Conflict("An admin cannot disable their own account.", code="cannot_disable_self")
    others = session.scalar(
        select(func.count()).select_from(Admin).where(Admin.disabled_at.is_(None), Admin.id != admin.id)
    )
    if not others:
        raise Conflict("This is the last enabled admin; enable or create another first.", code="last_admin")


def rotate_secret(
    session: Session, actor: Principal, collection: str, principal_id: int | None = None, name: str | None = None
) -> dict[str, Any]:
    """A new generated secret (an admin's password), shown once; tokens issued with the old one stop working."""
    row = _find(session, collection, principal_id, name)
    secret = new_secret()
    if isinstance(row, Admin):
        row.password_hash = hash_secret(secret)
    else:
        row.secret_hash = hash_secret(secret)
    row.secret_rotated_at = utcnow()
    audit.record(
        session, actor, "principal.rotate_secret", collection=collection, principal_id=row.id, name=_label(row)
    )
    session.commit()
    return {**principal_view(row), "secret": secret}
