"""Minting credentials for admins and bot services (the CLI's work; node credentials live in nodes.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound
from ..models import Admin, BotClient
from ..security import Principal
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
    audit.record(session, actor, "admin.reset_password", admin_id=admin.id, username=username)
    session.commit()
    return password


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
