"""The app's job queue (what request handlers hand to services as their dispatch callables), and the
embedded default's in-process sweep."""

from __future__ import annotations

import threading

from flask import Flask, current_app

from .queue import JobQueue
from .sweep import EmbeddedSweeper


def job_queue() -> JobQueue:
    """The app's queue (RQ with Redis, in-process threads without), built on first use."""
    queue = current_app.extensions.get("rayfleet.jobs")
    if queue is None:
        queue = current_app.extensions["rayfleet.jobs"] = JobQueue.from_settings(
            current_app.extensions["rayfleet.settings"]
        )
    return queue


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
