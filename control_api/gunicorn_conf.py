"""gunicorn settings for the API's workers: `gunicorn --config python:control_api.gunicorn_conf …` (scripts/run.sh,
the production unit and the benches' harness use it).

post_worker_init freezes what the worker holds once the app is loaded (modules, the SQLAlchemy metadata and
compiled caches, the schemas): they live as long as the worker, and without this every full collection walks all
of them again. Measured on `GET /nodes` with 1,000 nodes: a full collection every 7 or 8 requests took 80 to
110 ms each, the whole p95/p99 tail; frozen, under 3 ms (docs/runbooks/bench.md).
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(_worker: Any) -> None:
    gc.freeze()
