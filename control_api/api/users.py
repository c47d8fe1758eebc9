from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.users import BanIn, TelegramUserIn, UserList, UserOut, UserQuery
from ..security import current_principal, require
from ..services import users as user_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("users", __name__, url_prefix=f"{API_PREFIX}/users", tag="Users")


@bp.put("/telegram/<int:telegram_id>")
@require("bot", "admin")
@bp.input(TelegramUserIn, arg_name="data")
@bp.output(UserOut, description="The user was updated (or unchanged)")
@bp.doc(summary="Create or update a Telegram user", security=BEARER, responses={201: "The user was created"})
def upsert_telegram_user(telegram_id: int, data: dict):
    user, created = user_service.upsert_telegram_user(db_session(), current_principal(), telegram_id, data)
    return user, 201 if created else 200


@bp.get("/telegram/<int:telegram_id>")
@require("bot", "admin")
@bp.output(UserOut)
@bp.doc(summary="A user by Telegram id", security=BEARER)
def get_telegram_user(telegram_id: int):
    return user_service.get_by_telegram_id(db_session(), telegram_id)


@bp.get("/<int:user_id>")
@require("admin", "bot")
@bp.output(UserOut)
@bp.doc(summary="One user", security=BEARER)
def get_user(user_id: int):
    return user_service.get_user(db_session(), user_id)


@bp.post("/<int:user_id>/ban")
@require("admin")
@bp.input(BanIn, arg_name="data")
@bp.output(UserOut)
@bp.doc(summary="Ban a user with a reason", security=BEARER)
def ban_user(user_id: int, data: dict):
    return user_service.ban_user(db_session(), current_principal(), user_id, data["reason"])


@bp.post("/<int:user_id>/unban")
@require("admin")
@bp.output(UserOut)
@bp.doc(summary="Lift a ban", security=BEARER, responses={409: "The user is not banned"})
def unban_user(user_id: int):
    return user_service.unban_user(db_session(), current_principal(), user_id)


@bp.get("")
@require("admin")
@bp.input(UserQuery, location="query", arg_name="filters")
@bp.output(UserList)
@bp.doc(summary="List users", security=BEARER)
def list_users(filters: dict) -> dict:
    return user_service.list_users(db_session(), filters)
