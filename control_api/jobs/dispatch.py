"""The app's job queue (what request handlers hand to services as their dispatch callables), and the
embedded default's in-process sweep."""

from __future__ import annotations

import threading
from datetime import datetime

from flask import Flask, current_app

from ..services.webhooks import dispatch_after_commit
from .queue import JobQueue
from .sweep import EmbeddedSweeper


def job_queue() -> JobQueue:
    """The app's queue (RQ with Redis, in-process threads without), built on first use."""
    return app_queue(current_app._get_current_object())  # type: ignore[attr-defined]


def app_queue(app: Flask) -> JobQueue:
    queue = app.extensions.get("rayfleet.jobs")
    if queue is None:
        with _queue_lock:
            queue = app.extensions.get("rayfleet.jobs")
            if queue is None:
                queue = app.extensions["rayfleet.jobs"] = JobQueue.from_settings(app.extensions["rayfleet.settings"])
    return queue


_queue_lock = threading.Lock()


def init_webhook_dispatch(app: Flask) -> None:
    """After each commit of the app's sessions, queue the webhook deliveries it wrote (services/webhooks.py)."""

    def enqueue(delivery_id: int, attempts: int, at: datetime | None) -> None:
        app_queue(app).enqueue_webhook_delivery(delivery_id, attempts, at)

    dispatch_after_commit(app.extensions["rayfleet.db"].session.session_factory, enqueue)


_sweeper_lock = threading.Lock()


def init_embedded_sweep(app: Flask) -> None:
    """On the embedded default (no Redis, so no worker and no cron), the first request starts the
    sweep in this process (jobs/sweep.EmbeddedSweeper). Not at create_app: the CLI builds the app too."""
    settings = app.extensions["rayfleet.settings"]
    if not settings.embedded or settings.sweep_interval_seconds <= 0:
        return

    @app.before_request
    def _start_sweeper() -> None:
        if "rayfleet.sweeper" in app.extensions:
            return
        with _sweeper_lock:
            if "rayfleet.sweeper" not in app.extensions:
                sweeper = EmbeddedSweeper(settings, job_queue(), settings.sweep_interval_seconds)
                app.extensions["rayfleet.sweeper"] = sweeper
                sweeper.start()


def sweep_status() -> dict[str, object]:
    """Where the sweep runs, and for the in-process one when it last ran (health)."""
    sweeper = current_app.extensions.get("rayfleet.sweeper")
    if sweeper is not None:
        return sweeper.status()
    settings = current_app.extensions["rayfleet.settings"]
    if not settings.embedded:
        return {"mode": "rq cron"}
    return {"mode": "in-process" if settings.sweep_interval_seconds > 0 else "off"}
