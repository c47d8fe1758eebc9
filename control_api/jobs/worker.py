"""The rq worker class every deployment runs: `rq worker --worker-class control_api.jobs.worker.PreloadedWorker
--with-scheduler nodes default` (WORKER_ARGV: the control_plane role's unit and the e2e harness run it).

RQ's Worker forks a work horse for each job, and the horse imports the job's function by its name (queue.py names
jobs, it never imports them). Those modules pull in SQLAlchemy, the models, the services and ansible-runner: about
1 s of CPU here, which every sync paid in its horse before planning anything, so a sale on an empty pool waited
for it too (docs/runbooks/bench.md). Imported once in the worker's own process, before its first fork, they are
inherited by every horse.

Only modules are loaded here. The WorkerContext (engine, connections, runner) is still built in the horse on
first use (context.worker_context): a database connection must never be shared across a fork.
"""

from __future__ import annotations

import importlib
from typing import Any

from rq import Worker

from .queue import JOB_NAMES, QUEUES, job_module

# `rq` and then these: the worker as every deployment starts it (its `--url` or RQ_REDIS_URL comes from the caller).
WORKER_ARGV = ("worker", "--worker-class", f"{__name__}.PreloadedWorker", "--with-scheduler", *QUEUES)


def job_modules() -> list[str]:
    """The modules of every job the workers run (queue.JOB_NAMES), each once, in a stable order."""
    return sorted({job_module(name) for name in JOB_NAMES})


class PreloadedWorker(Worker):
    """rq's forking Worker, with the job modules imported before the first fork."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for module in job_modules():
            importlib.import_module(module)
