"""The README's run command, for real: scripts/run.sh on the embedded default (SQLite, no Redis)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from harness.services import free_port

REPO = Path(__file__).resolve().parents[2]


class RunScript:
    def __init__(self, data_dir: Path, port: int) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "JWT_"))}
        env.update(RAYFLEET_DATA_DIR=str(data_dir), PORT=str(port), HOST="127.0.0.1")
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

    def request(self, path: str, body: dict | None = None, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, headers=headers)
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
