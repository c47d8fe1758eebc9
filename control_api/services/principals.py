"""Principals: minting credentials for admins and bot services (the CLI's work; node credentials live in
nodes.py), and who acts when the bot acts for a Telegram admin."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..actors import Principal, TelegramAdmin
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import Admin, BotClient, User
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


def acting_admin(session: Session, caller: Principal, acting_telegram_id: int | None) -> Principal:
    """Who acts as an admin: an admin calls for themselves; the bot must name the Telegram admin it acts for."""
    if caller.kind == "admin":
        if acting_telegram_id is not None:
            raise InvalidInput("acting_telegram_id is for the bot only.", code="not_for_admins")
        return caller
    if acting_telegram_id is None:
        raise InvalidInput("The bot must send acting_telegram_id, the Telegram admin it acts for.")
    user = session.scalar(select(User).where(User.telegram_id == acting_telegram_id))
    if user is None or not user.is_admin or user.is_banned:
        raise Forbidden("That Telegram user is not an admin.", code="not_an_admin")
    return TelegramAdmin("admin", user.id, user.username or str(user.telegram_id), telegram_id=user.telegram_id)
