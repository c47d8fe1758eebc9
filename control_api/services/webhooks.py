"""Webhooks: admins register endpoints; business events reach them as signed POSTs, through an outbox.

1. A change that is an event (a payment created/approved/rejected, a config created/suspended/migrated, a
   node's alert raised/cleared) calls `emit(session, event, payload)` in its own transaction: one
   `webhook_deliveries` row per active webhook that takes the event. The rows commit or roll back with the
   change, so an event is never sent for a change that did not happen, nor lost for one that did.
2. After the commit, the session's dispatch hook (`dispatch_after_commit`, installed on the API's and the
   workers' session factories) queues one delivery job per row. Redis down: nothing is lost, the sweep
   re-queues every due pending row (`due_deliveries`).
3. The job (jobs/webhooks.py) takes the row under a lock (`claim`: FOR UPDATE SKIP LOCKED, held while it
   POSTs, so two jobs never send one delivery at once), POSTs it signed, and records the attempt
   (`record_attempt`): 2xx delivered; otherwise retried after an exponential, jittered backoff, and failed
   once the attempts are used up. A receiver dedupes on the delivery id.

Payloads carry ids, statuses, amounts, plan ids, node ids and names and alert kinds only: `emit` refuses any
other key (PAYLOAD_KEYS), so a UUID, link, subscription token, payment proof, password or token can never
slip into one. The secret is a shared signing key (stored as is: a hash could not sign), shown once when the
webhook is created and never again in an answer, a log or an audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict, InvalidInput, NotFound
from ..models import WEBHOOK_EVENTS, Node, Payment, UserConfig, Webhook, WebhookDelivery, columns_of, utcnow
from . import audit
from .lookup import get_or_404

EVENTS = WEBHOOK_EVENTS
# What a payload may carry: ids, statuses, amounts, plan ids, node ids and names, alert kinds.
PAYLOAD_KEYS = frozenset(
    {
        "payment_id",
        "user_id",
        "purpose",
        "status",
        "amount_cents",
        "plan_id",
        "config_id",
        "extends_config_id",
        "automatic",
        "banned",
        "reason",
        "kind",
        "node_id",
        "node_name",
        "from_node_id",
        "from_node_name",
        "to_node_id",
        "to_node_name",
        "location_tag",
        "alerts",
        "raised",
        "cleared",
    }
)
URL_MAX_LENGTH = 2048
MAX_BACKOFF_SECONDS = 6 * 3600
ERROR_MAX_LENGTH = 300
# The after-commit hook reads the ids of the deliveries this transaction wrote from here.
_PENDING = "rayfleet.webhook_deliveries"
# A job may start a little before the row's next_attempt_at (the scheduler's clock rounds to seconds).
DUE_SLACK = timedelta(seconds=2)

Enqueue = Callable[[int, int, datetime | None], Any]  # (delivery id, attempts so far, run at; None: now)


@dataclass(frozen=True)
class DeliveryPolicy:
    """WEBHOOK_* settings: what a delivery job needs."""

    timeout_seconds: int = 5
    max_attempts: int = 8
    backoff_seconds: int = 30
    allow_private_targets: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            allow_private_targets=settings.webhook_allow_private_targets,
        )


# ---- the outbox ---------------------------------------------------------------------------------------


def emit(session: Session, event: str, payload: dict[str, Any]) -> list[int]:
    """Write EVENT with PAYLOAD for every active webhook that takes it, in the caller's transaction; returns
    the new deliveries' ids (queued by the after-commit hook). Raises ValueError for an unknown event or a
    payload key outside PAYLOAD_KEYS: a programming error, never a customer's."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    stray = set(payload) - PAYLOAD_KEYS
    if stray:
        raise ValueError(f"webhook payloads carry ids, statuses and amounts only, not {sorted(stray)}")
    hooks = session.scalars(select(Webhook).where(Webhook.is_active.is_(True)).order_by(Webhook.id)).all()
    now = utcnow()
    rows = [
        WebhookDelivery(
            webhook_id=hook.id, event=event, payload=dict(payload), status="pending", attempts=0, next_attempt_at=now
        )
        for hook in hooks
        if event in (hook.events or [])
    ]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    ids = [row.id for row in rows]
    session.info.setdefault(_PENDING, []).extend(ids)
    return ids


def dispatch_after_commit(factory: Any, enqueue: Enqueue) -> None:
    """Install on FACTORY (a sessionmaker) the hook that queues, after each commit, the deliveries the
    transaction wrote; a rollback forgets them. A failure to queue is the queue's to log: the sweep re-queues."""

    def _after_commit(session: Session) -> None:
        for delivery_id in session.info.pop(_PENDING, []):
            enqueue(delivery_id, 0, None)

    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    sa_event.listen(factory, "after_commit", _after_commit)
    sa_event.listen(factory, "after_rollback", _after_rollback)


def payment_payload(payment: Payment, **extra: Any) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "user_id": payment.user_id,
        "purpose": payment.purpose,
        "status": payment.status,
        "amount_cents": payment.amount_cents,
        "plan_id": payment.plan_id,
        "config_id": payment.config_id,
        "extends_config_id": payment.extends_config_id,
        **extra,
    }


def config_payload(config: UserConfig, **extra: Any) -> dict[str, Any]:
    return {
        "config_id": config.id,
        "user_id": config.user_id,
        "plan_id": config.plan_id,
        "kind": config.kind,
        "status": config.status,
        "node_id": config.node_id,
        **extra,
    }


def node_payload(node: Node, **extra: Any) -> dict[str, Any]:
    return {"node_id": node.id, "node_name": node.name, "location_tag": node.location_tag, **extra}


# ---- delivery -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """What one attempt sends: the URL, the secret to sign with, the event and the body (bytes)."""

    delivery_id: int
    url: str
    secret: str
    event: str
    body: bytes
    attempts: int


def body_of(delivery: WebhookDelivery) -> bytes:
    """The JSON body: the same bytes on every attempt (the delivery id inside too, for receivers)."""
    document = {
        "delivery_id": delivery.id,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Rayfleet-Signature value: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def claim(session: Session, delivery_id: int, now: datetime) -> Outgoing | None:
    """Lock DELIVERY_ID's row for this attempt (the caller keeps the transaction open while it POSTs, then
    records the outcome and commits), or None: gone, not pending, not due, or being sent by another job.
    An inactive webhook's deliveries wait (pending) until it is active again."""
    delivery = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update(skip_locked=True)
    )
    if delivery is None or delivery.status != "pending":
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + DUE_SLACK:
        return None
    hook = session.get(Webhook, delivery.webhook_id)
    if hook is None or not hook.is_active:
        return None
    return Outgoing(delivery.id, hook.url, hook.secret, delivery.event, body_of(delivery), delivery.attempts)


def backoff_seconds(policy: DeliveryPolicy, attempts: int, rng: random.Random | None = None) -> float:
    """The wait before the next try after ATTEMPTS failed ones: BACKOFF * 2**(attempts-1), capped, with
    jitter (between half and all of it), so receivers that come back are not hit by every sender at once."""
    ceiling = min(policy.backoff_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def record_attempt(
    session: Session,
    delivery_id: int,
    policy: DeliveryPolicy,
    now: datetime,
    *,
    status_code: int | None,
    error: str | None,
    final: bool = False,
) -> datetime | None:
    """Record one attempt on the row claim() locked: 2xx is delivered; otherwise pending again, due after the
    backoff, or failed when the attempts are used up (or FINAL: a refused target). Returns when the next
    attempt is due, or None. The caller commits."""
    delivery = session.get_one(WebhookDelivery, delivery_id)
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = None if error is None else error[:ERROR_MAX_LENGTH]
    if error is None and status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
        return None
    if final or delivery.attempts >= policy.max_attempts:
        delivery.status, delivery.next_attempt_at = "failed", None
        return None
    delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(policy, delivery.attempts))
    return delivery.next_attempt_at


def due_deliveries(session: Session, now: datetime, limit: int = 500) -> list[tuple[int, int]]:
    """(id, attempts) of pending deliveries that are due, oldest first: what the sweep re-queues."""
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            Webhook.is_active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [(int(id_), int(attempts)) for id_, attempts in rows]


# ---- the admins' API ----------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """An http(s) URL with a host, without credentials or a fragment; 422 invalid_webhook_url otherwise.
    (Where it points is checked when it is delivered to: a name may resolve elsewhere by then.)"""
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        parts, port, problem = None, None, "is not a valid URL"
    if parts is not None:
        if parts.scheme.lower() not in ("http", "https"):
            problem = "must be an http or https URL"
        elif not parts.hostname:
            problem = "must name a host"
        elif parts.username is not None or parts.password is not None or "@" in parts.netloc:
            problem = "must not carry credentials (put a token in the path or query, or rely on the signature)"
        elif parts.fragment:
            problem = "must not have a fragment"
        elif port == 0:
            problem = "must not use port 0"
    if len(url) > URL_MAX_LENGTH:
        problem = f"must be at most {URL_MAX_LENGTH} characters"
    if problem:
        raise InvalidInput(
            f"The webhook URL {problem}.", code="invalid_webhook_url", details={"json": {"url": [problem]}}
        )
    return url


def webhook_view(hook: Webhook) -> dict[str, Any]:
    """A webhook without its secret (never shown after creation)."""
    view = columns_of(hook)
    view.pop("secret")
    return view


def _events(events: list[str]) -> list[str]:
    return [name for name in EVENTS if name in set(events)]  # the canonical order, each once


def list_webhooks(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(Webhook))
    rows = session.scalars(select(Webhook).order_by(Webhook.id).limit(filters["limit"]).offset(filters["offset"]))
    return {
        "items": [webhook_view(row) for row in rows],
        "total": total,
        "limit": filters["limit"],
        "offset": filters["offset"],
    }


def get_webhook(session: Session, webhook_id: int) -> dict[str, Any]:
    return webhook_view(get_or_404(session, Webhook, webhook_id, "Webhook"))


def create_webhook(session: Session, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Register an endpoint; the answer carries its secret (the admin's, or a generated one) this once."""
    now = utcnow()
    hook = Webhook(
        url=check_url(data["url"]),
        secret=data.get("secret") or secrets.token_urlsafe(32),
        events=_events(data["events"]),
        is_active=data.get("is_active", True),
        description=data.get("description"),
        created_at=now,
        updated_at=now,
    )
    session.add(hook)
    session.flush()
    # The host only: a URL's path or query may hold the receiver's own token.
    facts = {"host": urlsplit(hook.url).hostname, "events": hook.events, "is_active": hook.is_active}
    supplied = bool(data.get("secret"))
    audit.record(session, actor, "webhook.create", webhook_id=hook.id, secret_supplied=supplied, **facts)
    session.commit()
    return {**webhook_view(hook), "secret": hook.secret}


def update_webhook(session: Session, actor: Principal, webhook_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Change the URL, events, active flag, description or secret (a new secret is not echoed)."""
    hook = get_or_404(session, Webhook, webhook_id, "Webhook", with_for_update=True)
    if "url" in changes:
        check_url(changes["url"])
    if "events" in changes:
        changes = {**changes, "events": _events(changes["events"])}
    changes = {field: value for field, value in changes.items() if getattr(hook, field) != value}
    if not changes:
        session.commit()
        return webhook_view(hook)
    for field, value in changes.items():
        setattr(hook, field, value)
    hook.updated_at = utcnow()
    shown = {field: value for field, value in changes.items() if field not in ("secret", "url")}
    if "url" in changes:
        shown["host"] = urlsplit(changes["url"]).hostname
    audit.record(session, actor, "webhook.update", webhook_id=hook.id, fields=shown, secret_changed="secret" in changes)
    session.commit()
    return webhook_view(hook)


def delete_webhook(session: Session, actor: Principal, webhook_id: int) -> None:
    """Delete the endpoint and its delivery log (pending deliveries are never sent)."""
    hook = get_or_404(session, Webhook, webhook_id, "Webhook", with_for_update=True)
    audit.record(session, actor, "webhook.delete", webhook_id=hook.id, host=urlsplit(hook.url).hostname)
    session.delete(hook)
    session.commit()


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return columns_of(delivery)


def list_deliveries(session: Session, webhook_id: int, filters: dict[str, Any]) -> dict[str, Any]:
    """The webhook's delivery log, newest first, optionally of one status or event."""
    get_or_404(session, Webhook, webhook_id, "Webhook")
    where = [WebhookDelivery.webhook_id == webhook_id]
    if filters.get("status"):
        where.append(WebhookDelivery.status == filters["status"])
    if filters.get("event"):
        where.append(WebhookDelivery.event == filters["event"])
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where))
    rows = session.scalars(
        select(WebhookDelivery)
        .where(*where)
        .order_by(WebhookDelivery.id.desc())
        .limit(filters["limit"])
        .offset(filters["offset"])
    )
    return {
        "items": [delivery_view(row) for row in rows],
        "total": total,
        "limit": filters["limit"],
        "offset": filters["offset"],
    }


def retry_delivery(session: Session, actor: Principal, webhook_id: int, delivery_id: int) -> dict[str, Any]:
    """Send a failed (or still pending) delivery again now, with a fresh set of attempts; the same delivery
    id, so a receiver that got it before dedupes. A delivered one is refused (409 already_delivered)."""
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id)
        .with_for_update()
    )
    if delivery is None:
        raise NotFound(f"Webhook {webhook_id} has no delivery {delivery_id}.")
    if delivery.status == "delivered":
        session.rollback()
        raise Conflict(f"Delivery {delivery_id} was delivered already.", code="already_delivered")
    before = delivery.status
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, utcnow()
    audit.record(session, actor, "webhook.retry", webhook_id=webhook_id, delivery_id=delivery_id, was=before)
    session.info.setdefault(_PENDING, []).append(delivery.id)  # queued by the after-commit hook
    session.commit()
    return delivery_view(delivery)


def ceil_seconds(moment: datetime) -> datetime:
    """MOMENT rounded up to the whole second (RQ schedules by whole seconds)."""
    whole = math.ceil(moment.timestamp())
    return datetime.fromtimestamp(whole, tz=moment.tzinfo)
