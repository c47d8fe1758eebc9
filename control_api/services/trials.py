"""Free trials: once per Telegram user, ever; the size and length are settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import Conflict
from ..models import User, utcnow
from . import audit
from .bans import ensure_not_banned
from .configs import config_view, new_config
from .lookup import get_or_404
from .placement import place_in
from .revisions import Dispatch, bump, commit_and_dispatch


def start_trial(
    session: Session, actor: Principal, settings: Settings, user_id: int, protocol: str, dispatch: Dispatch
) -> dict[str, Any]:
    """The user's one free trial: a config of TRIAL_DATA_MB for TRIAL_DAYS; its view."""
    user = get_or_404(session, User, user_id, "User")
    ensure_not_banned(user)
    # The claim and the config commit together: a failed placement leaves the trial unused.
    claimed = session.execute(
        update(User).where(User.id == user.id, User.trial_used_at.is_(None)).values(trial_used_at=utcnow()),
        execution_options={"synchronize_session": False},
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise Conflict("This user has already had their free trial.", code="trial_used")
    node = place_in(session, settings.trial_location_tag or None)
    config = new_config(session, user, node, "trial", settings.trial_data_mb, settings.trial_days, protocol=protocol)
    touched = bump(session, [node.id])
    audit.record(session, actor, "config.trial", config_id=config.id, user_id=user.id, node_id=node.id)
    commit_and_dispatch(session, touched, dispatch)
    return config_view(session, config)
