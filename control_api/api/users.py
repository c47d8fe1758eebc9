from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session
from ..jobs.dispatch import job_queue
from ..schemas.configs import ConfigList, ConfigOut, TrialIn
from ..schemas.referrals import ReferralOut
from ..schemas.review import UserHistoryOut
from ..schemas.segments import SegmentCountsOut, SegmentCountsQuery, SegmentPageOut, SegmentQuery
from ..schemas.users import AdminFlagIn, BanIn, TelegramUserIn, UnbanIn, UserList, UserOut, UserQuery
from ..security import current_principal, require
from ..services import configs as config_service
from ..services import referrals as referral_service
from ..services import review as review_service
from ..services import segments as segment_service
from ..services import trials as trial_service
from ..services import users as user_service
from .common import ACTING_ADMIN_422, API_PREFIX, BEARER, settings

bp = APIBlueprint("users", __name__, url_prefix=f"{API_PREFIX}/users", tag="Users")
SEGMENT_RULE = "/segments/<any({}):segment>".format(", ".join(segment_service.SEGMENTS))
SEGMENTS_DESCRIPTION = (
    "Segments (banned customers are in none): all; active (a config served now, a trial or temporary one "
    "too); expired (had a paid config, none served now); never_bought (no approved purchase, no purchase "
    "from the balance). Admins only: an admin credential, or the bot for a Telegram admin named by "
    "acting_telegram_id (a bot token alone lists nobody)."
)
SEGMENT_REFUSALS = {403: "The bot acted for someone who is not an admin (not_an_admin)", 422: ACTING_ADMIN_422}


@bp.put("/telegram/<int:telegram_id>")
@require("bot", "admin")
@bp.input(TelegramUserIn, arg_name="data")
@bp.output(UserOut, description="The user was updated (or unchanged)")
@bp.doc(
    summary="Create or update a Telegram user",
    security=BEARER,
    responses={
        201: "The user was created",
        409: "Another request changed the same user at the same moment (concurrent_update); retry",
        422: "The body does not match the schema (validation_error), or the Telegram id is 0 (invalid_telegram_id)",
    },
)
def upsert_telegram_user(telegram_id: int, data: dict):
    view, created = user_service.upsert_telegram_user(
        db_session(), current_principal(), telegram_id, data, _max_pending()
    )
    return view, 201 if created else 200


@bp.get("/telegram/<int:telegram_id>")
@require("bot", "admin")
@bp.output(UserOut)
@bp.doc(summary="A user by Telegram id", security=BEARER)
def get_telegram_user(telegram_id: int):
    return user_service.get_by_telegram_id(db_session(), telegram_id, _max_pending())


@bp.get("/<int:user_id>")
@require("admin", "bot")
@bp.output(UserOut)
@bp.doc(summary="One user", security=BEARER)
def get_user(user_id: int):
    return user_service.get_user_view(db_session(), user_id, _max_pending())


@bp.post("/<int:user_id>/ban")
@require("admin")
@bp.input(BanIn, arg_name="data")
@bp.output(UserOut)
@bp.doc(
    summary="Ban a user: every served config leaves its node and every pending payment is rejected",
    security=BEARER,
)
def ban_user(user_id: int, data: dict):
    return user_service.ban_user(
        db_session(), current_principal(), user_id, data["reason"], job_queue().enqueue_node_sync, _max_pending()
    )


@bp.post("/<int:user_id>/unban")
@require("admin")
@bp.input(UnbanIn, arg_name="data")
@bp.output(UserOut)
@bp.doc(
    summary="Lift a ban; bring back only the configs named",
    security=BEARER,
    responses={
        409: "The user is not banned (not_banned)",
        422: "The body does not match the schema (validation_error), or a named config is not one the ban "
        "suspended or has expired since (not_resumable: a rule about stored state, which a schema cannot state)",
    },
)
def unban_user(user_id: int, data: dict):
    return user_service.unban_user(
        db_session(),
        current_principal(),
        user_id,
        data["resume_config_ids"],
        job_queue().enqueue_node_sync,
        _max_pending(),
    )


@bp.get("/segments")
@require("bot", "admin")
@bp.input(SegmentCountsQuery, location="query", arg_name="query")
@bp.output(SegmentCountsOut)
@bp.doc(
    summary="How many customers each broadcast segment has now",
    description=SEGMENTS_DESCRIPTION,
    security=BEARER,
    responses=SEGMENT_REFUSALS,
)
def segment_counts(query: dict) -> dict:
    return segment_service.counts(db_session(), current_principal(), query.get("acting_telegram_id"))


@bp.get(SEGMENT_RULE)
@require("bot", "admin")
@bp.input(SegmentQuery, location="query", arg_name="query")
@bp.output(SegmentPageOut)
@bp.doc(
    summary="The Telegram ids of a segment's customers, for a broadcast",
    description=SEGMENTS_DESCRIPTION
    + " Paged by user id: pass the previous page's next_after_id as after_id, so a broadcast resumes where it "
    "stopped.",
    security=BEARER,
    responses=SEGMENT_REFUSALS,
)
def segment_members(segment: str, query: dict) -> dict:
    return segment_service.page(
        db_session(),
        current_principal(),
        query.get("acting_telegram_id"),
        segment,
        query["after_id"],
        query["limit"],
    )


@bp.get("")
@require("admin")
@bp.input(UserQuery, location="query", arg_name="filters")
@bp.output(UserList)
@bp.doc(summary="List users", security=BEARER)
def list_users(filters: dict) -> dict:
    return user_service.list_users(db_session(), filters, _max_pending())


@bp.post("/<int:user_id>/trial")
@require("bot", "admin")
@bp.input(TrialIn, arg_name="data")
@bp.output(ConfigOut, status_code=201)
@bp.doc(
    summary="Give the user their one free trial (TRIAL_DATA_MB for TRIAL_DAYS)",
    security=BEARER,
    responses={
        403: "The user is banned (user_banned)",
        409: "The trial was used already (trial_used), or no node is available (no_node_available)",
    },
)
def start_trial(user_id: int, data: dict):
    return trial_service.start_trial(
        db_session(), current_principal(), settings(), user_id, data["protocol"], job_queue().enqueue_node_sync
    )


@bp.get("/<int:user_id>/configs")
@require("admin", "bot")
@bp.output(ConfigList)
@bp.doc(summary="A user's configs, newest first, with remaining data and time and share links", security=BEARER)
def list_user_configs(user_id: int) -> dict:
    return {"items": config_service.list_user_configs(db_session(), user_id, current_principal())}


@bp.get("/<int:user_id>/referral")
@require("bot", "admin")
@bp.output(ReferralOut)
@bp.doc(
    summary="A user's invite link parts (made the first time they are asked for) and how many came and paid",
    security=BEARER,
)
def get_referral(user_id: int) -> dict:
    return referral_service.invite_view(db_session(), user_id, settings().referral_percent)


@bp.get("/<int:user_id>/history")
@require("admin", "bot")
@bp.output(UserHistoryOut)
@bp.doc(
    summary="A customer's record for reviewing their payment: since when, trial, payments by status, money "
    "approved, active configs, ban",
    security=BEARER,
)
def get_history(user_id: int) -> dict:
    return review_service.customer_history(db_session(), user_id)


@bp.put("/<int:user_id>/admin")
@require("admin")
@bp.input(AdminFlagIn, arg_name="data")
@bp.output(UserOut)
@bp.doc(summary="Make a Telegram user a shop admin in the bot (or stop)", security=BEARER)
def set_admin(user_id: int, data: dict):
    return user_service.set_admin(db_session(), current_principal(), user_id, data["is_admin"], _max_pending())


def _max_pending() -> int:
    return settings().max_pending_payments_per_user
