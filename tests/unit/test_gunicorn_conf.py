"""The API's gunicorn settings: each worker freezes what it loaded, and every command line that serves the API
in production loads those settings."""

from __future__ import annotations

import gc
from pathlib import Path

from control_api import gunicorn_conf

REPO = Path(__file__).resolve().parents[2]


def test_a_worker_freezes_what_it_loaded():
    try:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        gunicorn_conf.post_worker_init(object())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_every_production_command_line_loads_them():
    for path in ("roles/control_plane/templates/rayfleet-api@.service.j2", "scripts/run.sh"):
        assert "--config python:control_api.gunicorn_conf" in (REPO / path).read_text(), path
