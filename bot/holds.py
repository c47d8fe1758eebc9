"""Admin decisions held for an undo window (BOT_UNDO_SECONDS) before the bot makes them through the API.

Why in the bot: the API's decisions move money and service (a purchase's config upgraded, a renewal
extended, a wallet credited, a referrer rewarded, a customer banned) and are final; none of them is taken
back. So nothing reaches the payment until the window is over: an undo within it is exact, because nothing
happened. The API audits the hold and the undo (POST /payments/{id}/review-events), and then the decision
itself as usual.

A held decision is a JSON document in the bot's store (Redis in production), in the table HOLDS under its
payment id: one per payment at a time (a second admin is told who holds it). Whoever takes it out of HOLDS
first wins, atomically: Undo takes it (nothing is decided), or the runner moves it to EXECUTING and makes
it. A restart loses nothing: the runner of the next process finds it in HOLDS (and runs it when due), or
in EXECUTING if a process died while making it; it is made again then, and the API's state machine makes
that harmless: a payment is decided once, and "already approved by the same admin" counts as done. So the
decision reaches the payment exactly once. An undo whose audit the API did not take is kept in EVENTS and
sent again by the runner.

With BOT_UNDO_SECONDS=0 decisions are made at once (no hold, no undo).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from . import keyboards, review
from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .i18n import t

log = logging.getLogger(__name__)
HOLDS, EXECUTING, EVENTS = "review:holds", "review:executing", "review:events"
# A decision still in EXECUTING this long after it was due belongs to a process that died making it.
STALE_SECONDS = 60
_ALREADY = re.compile(r"already (?P<status>\w+) by (?P<name>.+?)\.?$")
Outcome = tuple[str, dict[str, str], dict[str, Any] | None]  # (catalog key, values, the payment's view)


def new_decision(
    shop: Shop,
    payment_id: int,
    verdict: str,
    admin: Any,
    place: tuple[int, int, bool],
    language: str,
    *,
    reason_code: str | None = None,
    reason: str | None = None,
    ban: bool = False,
) -> dict[str, Any]:
    """An admin's decision as the store keeps it. PLACE: (chat, message, whether that message is the card)."""
    chat_id, message_id, card = place
    return {
        "pid": payment_id,
        "verdict": verdict,
        "reason_code": reason_code,
        "reason": reason,
        "ban": ban,
        "admin": admin.id,
        # As the API names a Telegram admin (reviewer_name): the @username it has, else the Telegram id.
        "name": admin.username or str(admin.id),
        "chat": chat_id,
        "message": message_id,
        "card": card,
        "language": language,
        "due": time.time() + shop.settings.undo_seconds,
    }


def decide(shop: Shop, decision: dict[str, Any], retry: bool = False) -> Outcome:
    """Make DECISION through the API; ApiUnavailable propagates (try again later). RETRY: it may have been made
    before (the runner's: a lost answer, a restart), so the same decision by the same admin counts as done."""
    payment_id, admin = decision["pid"], decision["admin"]
    try:
        if decision["verdict"] == "approve":
            payment = shop.api.approve(payment_id, admin)
        else:
            payment = shop.api.reject(
                payment_id, admin, decision.get("reason"), decision["ban"], decision["reason_code"]
            )
    except ApiError as exc:
        key, values = refusal(exc, payment_id)
        done = {"approve": "approved", "reject": "rejected"}[decision["verdict"]]
        if retry and key == "admin_already" and values["status"] == done and values["name"] == decision["name"]:
            # Made before, by this decision (a retry after a lost answer or a restart): done, not refused.
            return f"admin_{done}_by", {"id": str(payment_id), "name": values["name"]}, shop.api.get_payment(payment_id)
        return key, values, None
    key = "admin_approved_by" if payment["status"] == "approved" else "admin_rejected_by"
    return key, {"id": str(payment_id), "name": payment.get("reviewer") or decision["name"]}, payment


def refusal(exc: ApiError, payment_id: int) -> tuple[str, dict[str, str]]:
    """An API refusal of a review as (catalog key, values)."""
    if exc.status == 409:
        match = _ALREADY.search(exc.message)
        if match:
            return "admin_already", {"status": match["status"], "name": match["name"], "id": str(payment_id)}
    if exc.status == 404:
        return "admin_not_found", {"id": str(payment_id)}
    if exc.code == "not_an_admin":
        return "admin_not_admin", {}
    return "admin_refused", {"message": exc.message}


def finish(shop: Shop, decision: dict[str, Any], outcome: Outcome) -> None:
    """Show OUTCOME where the decision was made: its card (decided, no buttons), or the command's message."""
    key, values, payment = outcome
    language, chat_id, message_id = decision["language"], decision["chat"], decision["message"]
    if not decision["card"]:
        review.edit(shop, chat_id, message_id, t(language, key, **values))
        return
    if payment is None and key == "admin_already":
        payment = shop.api.get_payment(decision["pid"])
    base = review.base_text(shop, chat_id, message_id, decision["pid"], language)
    if payment is not None and payment["status"] != "pending":
        banned = bool(decision["ban"]) and payment.get("reviewer") == decision["name"]
        outcome = review.outcome_of(payment, banned)
        review.edit(shop, chat_id, message_id, review.decided_text(base, language, decision["pid"], outcome))
    else:  # refused (not found, not an admin): the card stays as it was
        review.edit(shop, chat_id, message_id, base, keyboards.review(decision["pid"], language))


def holding_text(decision: dict[str, Any]) -> str:
    key = {"approve": "admin_holding_approve", "reject": "admin_holding_reject"}[decision["verdict"]]
    if decision["verdict"] == "reject" and decision["ban"]:
        key = "admin_holding_reject_ban"
    seconds = round(decision["due"] - time.time())
    return t(decision["language"], key, id=decision["pid"], name=decision["name"], seconds=max(0, seconds))


def hold(shop: Shop, decision: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Hold DECISION for its undo window (audited as held); returns what to tell the admin. Refused when
    another decision on the payment is held, or the API refuses (decided already, not an admin)."""
    payment_id = decision["pid"]
    if not shop.store.table_add(HOLDS, str(payment_id), decision):
        holder = shop.store.table_get(HOLDS, str(payment_id)) or shop.store.table_get(EXECUTING, str(payment_id))
        return "admin_busy", {"id": str(payment_id), "name": (holder or {}).get("name", "")}
    try:
        shop.api.review_event(payment_id, decision["admin"], "held", decision)
    except ApiError as exc:
        shop.store.table_take(HOLDS, str(payment_id))
        return refusal(exc, payment_id)
    except ApiUnavailable:
        shop.store.table_take(HOLDS, str(payment_id))
        raise
    return "holding", {}


def undo(shop: Shop, payment_id: int, admin: Any) -> dict[str, Any] | None:
    """Take the held decision on PAYMENT_ID back (audited as undone, by ADMIN); None when it is too late."""
    decision = shop.store.table_take(HOLDS, str(payment_id))
    if decision is None:
        return None
    event = {"pid": payment_id, "admin": admin.id, "decision": decision}
    try:
        shop.api.review_event(payment_id, admin.id, "undone", decision)
    except (ApiError, ApiUnavailable) as exc:  # the undo stands; its audit is sent again by the runner
        log.warning("The undo of payment %s is not audited yet: %s", payment_id, exc)
        shop.store.table_put(EVENTS, f"{payment_id}:{time.time()}", event)
    return decision


def _send_events(shop: Shop) -> None:
    for field, event in shop.store.table_all(EVENTS).items():
        try:
            shop.api.review_event(event["pid"], event["admin"], "undone", event["decision"])
        except ApiUnavailable:
            return
        except ApiError as exc:  # refused for good (e.g. the admin is no longer one): logged, not retried
            log.warning("The undo of payment %s was not audited: %s", event["pid"], exc)
        shop.store.table_take(EVENTS, field)


def execute(shop: Shop, decision: dict[str, Any]) -> bool:
    """Make a decision taken out of HOLDS (it sits in EXECUTING); False if the API was unreachable (kept)."""
    try:
        outcome = decide(shop, decision, retry=True)
    except ApiUnavailable as exc:
        log.warning("Held decision on payment %s not made yet: %s", decision["pid"], exc)
        return False
    try:
        finish(shop, decision, outcome)
    except Exception:  # noqa: BLE001 -- Telegram trouble: the payment_decided notification updates the cards
        log.warning("The message of the decision on payment %s was not updated", decision["pid"], exc_info=True)
    shop.store.table_take(EXECUTING, str(decision["pid"]))
    return True


def run_due(shop: Shop, now: float | None = None) -> int:
    """One round: audits owed, decisions a dead process left half-made, then every decision due. Returns how
    many decisions were made."""
    now = time.time() if now is None else now
    _send_events(shop)
    made = 0
    for decision in shop.store.table_all(EXECUTING).values():
        if decision["due"] < now - STALE_SECONDS:
            made += execute(shop, decision)
    for field, decision in shop.store.table_all(HOLDS).items():
        if decision["due"] > now:
            continue
        claimed = shop.store.table_move(HOLDS, EXECUTING, field)  # None: undone (or taken) meanwhile
        if claimed is not None:
            made += execute(shop, claimed)
    return made


class HoldRunner(threading.Thread):
    """A daemon thread: run_due every interval until stopped."""

    def __init__(self, shop: Shop, interval: float | None = None) -> None:
        super().__init__(name="rayfleet-holds", daemon=True)
        self.shop = shop
        self.interval = interval or min(1.0, max(0.05, shop.settings.undo_seconds / 10))
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                run_due(self.shop)
            except Exception:  # noqa: BLE001 -- the store or the API down: try again next round
                log.warning("Held decisions round failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
