"""The app's job queue: what request handlers hand to services as their dispatch callables."""

from __future__ import annotations

from flask import current_app

from .queue import JobQueue


def job_queue() -> JobQueue:
    """The app's queue (RQ with Redis, in-process threads without), built on first use."""
    queue = current_app.extensions.get("rayfleet.jobs")
    if queue is None:
        queue = current_app.extensions["rayfleet.jobs"] = JobQueue.from_settings(
            current_app.extensions["rayfleet.settings"]
        )
    return queue
