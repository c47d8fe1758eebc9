"""The webhook delivery job: `deliver_webhook_job(delivery_id)`, queued after the commit that wrote the
delivery (services/webhooks.py), by the attempt before it (its backoff), or by the sweep.

One attempt: take the row under its lock (held during the POST, so no two jobs send one delivery at once),
refuse an internal target unless WEBHOOK_ALLOW_PRIVATE_TARGETS (checked again on the very addresses the
connection uses, against DNS rebinding), POST the signed body (no redirects, no proxies from the environment,
WEBHOOK_TIMEOUT_SECONDS), record the outcome and commit, then schedule the next attempt if one is due. A
delivery is marked delivered in the transaction that held its lock, so it is delivered at most once as far as
we can tell; a receiver dedupes on X-Rayfleet-Delivery for the rest (an answer lost on the way back).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from ..models import utcnow
from ..services import webhooks
from .context import WorkerContext, worker_context
from .queue import ensure_queue

log = logging.getLogger(__name__)

USER_AGENT = "rayfleet-webhooks/1"
INTERNAL_TARGET = "refused: the URL resolves to an internal address (WEBHOOK_ALLOW_PRIVATE_TARGETS is off)"


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
            status_code, error = post(outgoing, policy.timeout_seconds, policy.allow_private_targets)
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


def post(
    outgoing: webhooks.Outgoing, timeout_seconds: float, allow_private: bool = True
) -> tuple[int | None, str | None]:
    """POST the signed body; (status code, None) for any answer that is 2xx, (status code or None, error) else.
    Unless ALLOW_PRIVATE, the connection goes only to addresses checked when it is opened (CheckedAdapter)."""
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
        if not allow_private:
            for scheme in ("http://", "https://"):
                session.mount(scheme, CheckedAdapter())
        try:
            response = session.post(
                outgoing.url, data=outgoing.body, headers=headers, timeout=timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as exc:
            if _caused_by_internal_target(exc):
                return None, INTERNAL_TARGET
            return None, f"no answer: {type(exc).__name__}"
        response.close()
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def target_problem(url: str, allow_private: bool) -> str | None:
    """Why the job must not POST to URL (it resolves to a loopback, private, link-local, multicast or otherwise
    non-global address), or None. A name that does not resolve now is left to the POST (retried). The POST
    checks again what it connects to: a name may resolve elsewhere a moment later (DNS rebinding)."""
    if allow_private:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    if any(is_internal(str(info[4][0])) for info in infos):
        return INTERNAL_TARGET
    return None


def is_internal(address_text: str) -> bool:
    """Whether an address (as getaddrinfo gives it) is loopback, private, link-local, multicast or otherwise
    not global; an IPv4-mapped IPv6 address is judged as its IPv4 address."""
    address = ipaddress.ip_address(address_text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class InternalTargetError(OSError):
    """The webhook's host resolved, when connecting, to an internal address."""


def checked_addresses(host: str, port: int) -> list[str]:
    """HOST's addresses, resolved once, for a connection to use as they are: InternalTargetError if any is
    internal (as target_problem judges), socket.gaierror if it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if any(is_internal(address) for address in addresses):
        raise InternalTargetError(INTERNAL_TARGET)
    return addresses


class _CheckedConnectionMixin:
    """Connects only to the addresses checked_addresses() approved in the same step: the name is not resolved
    a second time, so it cannot point elsewhere between the check and the connect. TLS still verifies the
    certificate for the URL's host name (urllib3 takes that from .host, which this leaves alone)."""

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        try:
            addresses = checked_addresses(conn._dns_host, conn.port)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        except InternalTargetError as exc:
            raise NewConnectionError(conn, str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError as exc:
                failure = ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.")
                failure.__cause__ = exc
            except OSError as exc:
                failure = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
                failure.__cause__ = exc
        assert failure is not None  # getaddrinfo returns at least one address or raises
        raise failure


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to global addresses, checked as they are opened."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def _caused_by_internal_target(exc: BaseException) -> bool:
    """Whether InternalTargetError is somewhere in EXC's chain (requests wraps urllib3's errors in its own)."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, InternalTargetError):
            return True
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return False
