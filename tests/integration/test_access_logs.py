"""Subscription tokens never reach a log (issue 13, item 10): gunicorn's access log with the project's
logger class, and werkzeug's development server, both serving the real app over real HTTP."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from werkzeug.serving import make_server

from control_api import create_app, migrate
from control_api.log_redaction import redact
from harness.services import free_port
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"


def get(url: str) -> int:
    """The HTTP status of GET URL; 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 0


def test_redact_hides_the_token_and_keeps_the_rest():
    line = '127.0.0.1 - - "GET /sub/AbC-123_x?format=clash HTTP/1.1" 200 "https://x/sub/Zz9" "UA"'
    assert (
        redact(line) == '127.0.0.1 - - "GET /sub/<redacted>?format=clash HTTP/1.1" 200 "https://x/sub/<redacted>" "UA"'
    )
    assert redact("GET /api/v1/plans") == "GET /api/v1/plans"


def test_gunicorn_access_log_never_holds_a_subscription_token(tmp_path):
    token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "SWEEP_INTERVAL_SECONDS": "0",
    }
    subprocess.run([str(VENV_BIN / "flask"), "--app", "control_api", "db", "upgrade"], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    port, log = free_port(), tmp_path / "access.log"
    server = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            str(log),
            "--logger-class",
            "control_api.gunicorn_logging.RedactingLogger",
            "control_api:create_app()",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while get(f"http://127.0.0.1:{port}/api/v1/health") != 200:
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        assert get(f"http://127.0.0.1:{port}/sub/{token}?format=singbox") == 404
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log.read_text()
    assert "/sub/<redacted>?format=singbox" in text and "/api/v1/health" in text
    assert token not in text


def test_no_log_holds_a_subscription_token_even_when_the_request_fails(tmp_path, caplog, monkeypatch):
    """werkzeug's development server; first on a database without tables (a 500 and its logged
    exception), then migrated (the ordinary 404)."""
    # Other tests quiet or disable these loggers (the bot's fake Telegram, logging.config users): this one
    # needs their records.
    for name in ("werkzeug", "control_api.http_errors"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    app = create_app(make_settings(f"sqlite:///{tmp_path}/db.sqlite3"))
    server = make_server("127.0.0.1", free_port(), app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = secrets.token_urlsafe(24)
    try:
        # Other tests quiet werkzeug's logger; this one needs its request lines.
        with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="werkzeug"):
            assert get(f"http://127.0.0.1:{server.port}/sub/{token}") == 500
            migrate.upgrade(app.extensions["rayfleet.db"].engine)
            assert get(f"http://127.0.0.1:{server.port}/sub/{token}") == 404
    finally:
        server.shutdown()
        app.extensions["rayfleet.db"].engine.dispose()
    assert "unhandled error" in caplog.text and "/sub/<redacted>" in caplog.text
    assert token not in caplog.text
