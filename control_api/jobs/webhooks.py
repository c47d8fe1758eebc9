"""The webhook delivery job: `deliver_webhook_job(delivery_id)`, queued after the commit that wrote the
delivery (services/webhooks.py), by the attempt before it (its backoff), or by the sweep.

One attempt: take the row under its lock (held during the POST, so no two jobs send one delivery at once),
refuse an internal target unless WEBHOOK_ALLOW_PRIVATE_TARGETS, POST the signed body (no redirects, no
proxies from the environment, WEBHOOK_TIMEOUT_SECONDS), record the outcome and commit, then schedule the
next attempt if one is due. A delivery is marked delivered in the transaction that held its lock, so it is
delivered at most once as far as we can tell; a receiver dedupes on X-Rayfleet-Delivery for the rest (an
answer lost on the way back).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from ..models import utcnow
from ..services import webhooks
from .context import WorkerContext, worker_context
from .queue import ensure_queue

log = logging.getLogger(__name__)

USER_AGENT = "rayfleet-webhooks/1"


def deliver_webhook_job(delivery_id: int, context: WorkerContext | None = None) -> dict[str, Any]:
    ctx = context or worker_context()
    policy = ctx.webhook_policy
    with ctx.session_factory() as session:
        outgoing = webhooks.claim(session, delivery_id, utcnow())
        if outgoing is None:
            session.rollback()
            return {"delivery_id": delivery_id, "sent": False}
        problem = target_problem(outgoing.url, policy.allow_private_targets)
        if problem is not None:
            status_code, error, final = None, problem, True
        else:
            status_code, error = post(outgoing, policy.timeout_seconds)
            final = False
        next_at = webhooks.record_attempt(
            session, delivery_id, policy, utcnow(), status_code=status_code, error=error, final=final
        )
        attempts = outgoing.attempts + 1
        session.commit()
    queue = ensure_queue(ctx)
    if next_at is not None and queue is not None:  # without a queue, the sweep queues it when due
        queue.enqueue_webhook_delivery(delivery_id, attempts, webhooks.ceil_seconds(next_at))
    log.info("webhook delivery %s attempt %s: %s", delivery_id, attempts, status_code if error is None else error)
    return {"delivery_id": delivery_id, "sent": problem is None, "status_code": status_code}


def post(outgoing: webhooks.Outgoing, timeout_seconds: float) -> tuple[int | None, str | None]:
    """POST the signed body; (status code, None) for any answer that is 2xx, (status code or None, error) else."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Rayfleet-Event": outgoing.event,
        "X-Rayfleet-Delivery": str(outgoing.delivery_id),
        "X-Rayfleet-Timestamp": str(timestamp),
        "X-Rayfleet-Signature": webhooks.sign(outgoing.secret, timestamp, outgoing.body),
    }
    with requests.Session() as session:
        session.trust_env = False  # no proxy or .netrc from the environment: the URL alone decides
        try:
            response = session.post(
                outgoing.url, data=outgoing.body, headers=headers, timeout=timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as exc:
            return None, f"no answer: {type(exc).__name__}"
        response.close()
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def target_problem(url: str, allow_private: bool) -> str | None:
    """Why the job must not POST to URL (it resolves to a loopback, private, link-local, multicast or otherwise
    non-global address), or None. A name that does not resolve now is left to the POST (retried)."""
    if allow_private:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return "refused: the URL resolves to an internal address (WEBHOOK_ALLOW_PRIVATE_TARGETS is off)"
    return None
