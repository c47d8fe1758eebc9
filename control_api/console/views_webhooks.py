"""Webhooks: the registered endpoints (never their secrets), each endpoint's delivery log, and a Retry of a
failed or pending delivery.

Retry calls services/webhooks.retry_delivery, as POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/retry does:
the row lock, the audit row `webhook.retry` with the admin as actor, and the queuing by the session's
after-commit hook (jobs/dispatch.init_webhook_dispatch) are the service's, whichever door the retry came through.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, render_template, request, url_for

from ..errors import Conflict
from ..extensions import db_session
from ..services import webhooks as webhook_service
from .session import bp, current_admin, login_required

PAGE = 50
MAX_ENDPOINTS = 200
RETRYABLE = ("failed", "pending")
DELIVERY_DONE = {"retried": "Delivery queued again with a fresh set of attempts."}


def shown_url(url: str) -> str:
    """Host (and port) and path: a URL's query may hold the receiver's own token, so it is never shown."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def _page_number() -> int:
    raw = request.args.get("page", "")
    return max(int(raw) if raw.isdigit() and len(raw) < 7 else 1, 1)


@bp.get("/webhooks")
@login_required
def webhooks():
    listing = webhook_service.list_webhooks(db_session(), {"limit": MAX_ENDPOINTS, "offset": 0})
    return render_template("console/webhooks.html", hooks=listing["items"], total=listing["total"], shown_url=shown_url)


def _deliveries_page(webhook_id: int, error: str | None = None, status: int = 200) -> tuple[str, int]:
    hook = webhook_service.get_webhook(db_session(), webhook_id)
    page = _page_number()
    log: dict[str, Any] = webhook_service.list_deliveries(
        db_session(), webhook_id, {"limit": PAGE, "offset": (page - 1) * PAGE}
    )
    pages = max((log["total"] + PAGE - 1) // PAGE, 1)
    done = None if error else DELIVERY_DONE.get(request.args.get("done", ""))
    html = render_template(
        "console/webhook.html",
        hook=hook,
        log=log,
        page=page,
        pages=pages,
        done=done,
        error=error,
        retryable=RETRYABLE,
        shown_url=shown_url,
    )
    return html, status


@bp.get("/webhooks/<int:webhook_id>")
@login_required
def webhook_detail(webhook_id: int):
    return _deliveries_page(webhook_id)


@bp.post("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/retry")
@login_required
def webhook_retry(webhook_id: int, delivery_id: int):
    try:
        webhook_service.retry_delivery(db_session(), current_admin(), webhook_id, delivery_id)
    except Conflict as error:  # delivered meanwhile: say so, change nothing
        return _deliveries_page(webhook_id, error.message, 409)
    return redirect(url_for("console.webhook_detail", webhook_id=webhook_id, done="retried"))
