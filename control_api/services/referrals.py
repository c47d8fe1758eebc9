"""Referrals: invite codes, who came through whose link, and the decision at the first paid purchase.

- A user's code is random (never derived from their id), made the first time they ask for their invite
  link (invite_view) and then never changed.
- A customer is referred only when they first reach the shop through a link: the upsert that creates
  them carries the code (users.upsert_telegram_user calls attach). An existing customer is never attached
  later, a referral is never replaced, and nobody refers themselves (a CHECK too). A malformed, unknown
  or late code is ignored: /start goes on as usual, and the reason is logged at debug level, without the
  code.
- At the referred customer's first paid purchase (a purchase payment approved by an admin or by the
  sweep, or a plan bought from the balance; a free plan, a top-up, a renewal or extra data is not one) the
  referral is decided, once: the row's `WHERE decided_at IS NULL` claim lets exactly one of any retried or
  racing approvals through. The referrer is credited REFERRAL_PERCENT of what was paid, rounded down to the
  smallest unit (wallet.credit_referrer books it in the approval's transaction), unless the percent is 0
  (disabled), the credit rounds to 0 (too_small) or the referrer is banned (referrer_banned, audited). Those
  referrals are decided too: a later purchase credits nothing.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict
from ..models import Referral, User, WalletEntry, utcnow
from . import audit, notifications
from .lookup import get_or_404

log = logging.getLogger(__name__)

# No 0/o, 1/l: a code read aloud or retyped survives. 10 of 32 symbols: 50 bits, not guessable.
CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
CODE_LENGTH = 10
START_PREFIX = "ref_"
_CODE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def ensure_code(session: Session, user: User) -> str:
    """USER's code, made now if they have none (committed). Concurrent first requests agree on one: the
    UPDATE only fills an empty code, and whoever came second reads the first one's."""
    for _attempt in range(3):
        if user.referral_code is not None:
            return user.referral_code
        try:
            with session.begin_nested():
                session.execute(
                    update(User)
                    .where(User.id == user.id, User.referral_code.is_(None))
                    .values(referral_code=new_code()),
                    execution_options={"synchronize_session": False},
                )
        except IntegrityError:
            continue  # another user has that code (one chance in 2**50): draw again
        session.commit()
        session.refresh(user)
    if user.referral_code is None:
        raise Conflict("No free referral code was found; retry.", code="concurrent_update")
    return user.referral_code


def attach(session: Session, actor: Principal, user: User, code: str | None) -> bool:
    """Record that USER, created in this transaction, came through CODE's owner's link; True if recorded.

    The caller creates the user (users.upsert_telegram_user): only a customer's first contact is referred.
    """
    if code is None:
        return False
    wanted = code.strip().lower()
    if _CODE.fullmatch(wanted) is None:
        return _ignored(user.id, "malformed code")
    referrer_id = session.scalar(select(User.id).where(User.referral_code == wanted))
    if referrer_id is None:
        return _ignored(user.id, "unknown code")
    if referrer_id == user.id:
        return _ignored(user.id, "own code")
    session.add(Referral(referred_user_id=user.id, referrer_user_id=referrer_id))
    session.flush()
    audit.record(session, actor, "referral.attach", user_id=user.id, referrer_user_id=referrer_id)
    return True


def ignore_late(user_id: int, code: str | None) -> None:
    """A code sent by a customer the shop knows already: never attached."""
    if code is not None:
        _ignored(user_id, "not a new customer")


def _ignored(user_id: int, why: str) -> bool:
    log.debug("referral ignored for user %s: %s", user_id, why)  # never the code: it is someone else's
    return False


def decide_first_purchase(
    session: Session,
    actor: Principal,
    percent: int,
    user_id: int,
    price_cents: int,
    *,
    payment_id: int | None = None,
    config_id: int | None = None,
    now: datetime | None = None,
) -> Referral | None:
    """USER_ID paid PRICE_CENTS for a purchase, in the caller's (the approval's) transaction: decide their
    referral if it is still open. Returns it when the referrer is to be credited (wallet.credit_referrer
    books it and calls credited); None when there is nothing to credit (not referred, decided before or by
    a concurrent approval, a free plan, or skipped: disabled, too small, referrer banned)."""
    if price_cents <= 0:
        return None  # not a paid purchase: the referral waits for one
    open_ = select(Referral).where(Referral.referred_user_id == user_id, Referral.decided_at.is_(None))
    referral = session.scalar(open_)
    if referral is None:
        return None
    referrer = session.get_one(User, referral.referrer_user_id)
    amount = price_cents * percent // 100
    if percent == 0:
        outcome = "disabled"
    elif referrer.is_banned:
        outcome = "referrer_banned"
    elif amount == 0:
        outcome = "too_small"
    else:
        outcome = "credited"
    claimed = session.execute(
        update(Referral)
        .where(Referral.referred_user_id == user_id, Referral.decided_at.is_(None))
        .values(
            decided_at=now or utcnow(),
            outcome=outcome,
            payment_id=payment_id,
            config_id=config_id,
            price_cents=price_cents,
            percent=percent,
            amount_cents=amount if outcome == "credited" else 0,
        ),
        execution_options={"synchronize_session": False},
    ).rowcount
    if claimed != 1:
        return None  # a concurrent approval of another purchase decided it first
    referral = session.get_one(Referral, user_id, populate_existing=True)
    if outcome != "credited":
        facts = {"referrer_user_id": referral.referrer_user_id, "payment_id": payment_id, "config_id": config_id}
        audit.record(session, actor, "referral.skip", user_id=user_id, outcome=outcome, **facts)
        return None
    return referral


def credited(session: Session, actor: Principal, referral: Referral, entry: WalletEntry, balance_cents: int) -> None:
    """The referrer's ledger ENTRY for REFERRAL is booked: link it, tell the referrer, audit."""
    referral.entry_id = entry.id
    notifications.notify(
        session,
        referral.referrer_user_id,
        "referral_credited",
        f"referral_credited:user-{referral.referred_user_id}",
        amount_cents=entry.amount_cents,
        percent=referral.percent,
        balance_cents=balance_cents,
    )
    audit.record(
        session,
        actor,
        "referral.credit",
        user_id=referral.referred_user_id,
        referrer_user_id=referral.referrer_user_id,
        payment_id=referral.payment_id,
        config_id=referral.config_id,
        entry_id=entry.id,
        amount_cents=entry.amount_cents,
    )


def invite_view(session: Session, user_id: int, percent: int) -> dict[str, Any]:
    """The user's code (made now if they have none), what the bot builds the link from, and the counts."""
    user = get_or_404(session, User, user_id, "User")
    code = ensure_code(session, user)
    mine = Referral.referrer_user_id == user_id
    invited = session.scalar(select(func.count()).select_from(Referral).where(mine))
    credited_count, credited_cents = session.execute(
        select(func.count(), func.coalesce(func.sum(Referral.amount_cents), 0)).where(
            mine, Referral.outcome == "credited"
        )
    ).one()
    referred_by = session.scalar(select(Referral.referrer_user_id).where(Referral.referred_user_id == user_id))
    return {
        "user_id": user_id,
        "code": code,
        "start_parameter": f"{START_PREFIX}{code}",
        "percent": percent,
        "invited_count": invited,
        "credited_count": credited_count,
        "credited_cents": int(credited_cents),
        "referred_by_user_id": referred_by,
    }
