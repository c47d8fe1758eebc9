"""The README's run command, for real: scripts/run.sh on the embedded default (SQLite, no Redis)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from harness.services import free_port

REPO = Path(__file__).resolve().parents[2]


class RunScript:
    def __init__(self, data_dir: Path, port: int, **extra_env: str) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "JWT_"))}
        env.update(RAYFLEET_DATA_DIR=str(data_dir), PORT=str(port), HOST="127.0.0.1", **extra_env)
        self.base = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "".join(self.lines)
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2) as response:
                    if json.load(response)["status"] == "ok":
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail("run.sh never became healthy:\n" + "".join(self.lines))

    def request(self, path: str, body: dict | None = None, token: str | None = None, method: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.mark.slow
def test_run_script_serves_the_api_on_the_embedded_default(tmp_path):
    data_dir = tmp_path / "data"
    first = RunScript(data_dir, free_port())
    try:
        first.wait_healthy()
        output = "".join(first.lines)
        password = re.search(r"log in as:\s+admin, password (\S+)", output).group(1)
        assert first.request("/api/v1/health")["store"] == "ok (memory)"
        token = first.request("/api/v1/auth/token", {"kind": "admin", "username": "admin", "password": password})[
            "access_token"
        ]
        plans = first.request("/api/v1/plans", token=token)
        assert plans["total"] == 4  # the demo catalogue
        # Without PUBLIC_BASE_URL customers would get loopback subscription URLs: run.sh says so.
        assert "WARNING: PUBLIC_BASE_URL is not set" in output
        # A customer's subscription is fetched; its token (a credential) never reaches the access log.
        user = first.request("/api/v1/users/telegram/4040", {}, token=token, method="PUT")
        url = first.request(f"/api/v1/users/{user['id']}/subscription", token=token)["subscription_url"]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        secret = url.rsplit("/", 1)[1]
        time.sleep(0.5)  # the access log line is written after the response
        assert "/sub/<redacted>" in "".join(first.lines) and secret not in "".join(first.lines)
    finally:
        first.stop()

    # The secret and the database live outside the repo, private to the user.
    assert (data_dir / "rayfleet.sqlite3").exists()
    assert (data_dir / "jwt_secret").stat().st_mode & 0o077 == 0

    second = RunScript(data_dir, free_port())
    try:
        second.wait_healthy()
        assert "the password printed at first run" in "".join(second.lines)
        token = second.request("/api/v1/auth/token", {"kind": "admin", "username": "admin", "password": password})[
            "access_token"
        ]
        assert second.request("/api/v1/plans", token=token)["total"] == 4  # seeding is idempotent
    finally:
        second.stop()


@pytest.mark.slow
def test_the_embedded_default_runs_the_sweep_in_process(tmp_path):
    """No Redis, so no worker and no cron: the API process itself expires configs on schedule."""
    data_dir = tmp_path / "data"
    run = RunScript(data_dir, free_port(), SWEEP_INTERVAL_SECONDS="2")
    try:
        run.wait_healthy()
        password = re.search(r"log in as:\s+admin, password (\S+)", "".join(run.lines)).group(1)
        token = run.request("/api/v1/auth/token", {"kind": "admin", "username": "admin", "password": password})[
            "access_token"
        ]
        assert run.request("/api/v1/health")["sweep"]["mode"] == "in-process"
        plan = run.request("/api/v1/plans", token=token)["items"][0]
        user = run.request("/api/v1/users/telegram/5150", {"username": "sweepme"}, token=token, method="PUT")
        payment = run.request(
            "/api/v1/payments",
            {
                "user_id": user["id"],
                "plan_id": plan["id"],
                "amount_cents": plan["price_cents"],
                "evidence_file_id": "file-1",
                "evidence_unique_id": "unique-1",
            },
            token=token,
        )
        config_id = payment["config"]["id"]  # waiting for a node (there is none), 3 days to run
        # Its time is up (an edit of the test's own database file): the next sweep must expire it.
        with sqlite3.connect(data_dir / "rayfleet.sqlite3") as db:
            db.execute("UPDATE user_configs SET expires_at = '2001-01-01 00:00:00.000000' WHERE id = ?", (config_id,))

        def expired() -> bool:
            return run.request(f"/api/v1/configs/{config_id}", token=token)["status"] == "expired"

        deadline = time.monotonic() + 60
        while not expired():
            assert time.monotonic() < deadline, "the in-process sweep never expired the config"
            time.sleep(0.5)
        # And it keeps running on its schedule.
        first = run.request("/api/v1/health")["sweep"]
        assert first["every_seconds"] == 2 and first["runs"] >= 1 and first["last_run_at"]
        while (later := run.request("/api/v1/health")["sweep"])["runs"] <= first["runs"]:
            assert time.monotonic() < deadline + 30, "the in-process sweep ran only once"
            time.sleep(0.5)
        assert later["last_run_at"] > first["last_run_at"]
    finally:
        run.stop()
