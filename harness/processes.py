"""The fleet's own processes, each started as in production and stopped by its pid: a managed child
with a log file, a dedicated redis-server, gunicorn serving the control API, and an admin API client."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import requests

from harness.podman_node import wait_for
from harness.services import free_port

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"


class ManagedProcess:
    """A child process with its output in a log file; stop() ends it (and only it) by its pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if not self.alive:
            return
        assert self.process is not None
        # The process group is ours (start_new_session): gunicorn's workers go with it; rq's work horse
        # (its own session) is waited for by the worker on SIGTERM (see kill_tree for a hard kill).
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill_tree(self) -> list[int]:
        """SIGKILL the process and every descendant at once, as systemd's KillMode=control-group does to
        a unit's cgroup: the process group is not enough, since rq's work horse calls setsid() and would
        finish its job unharmed. Returns the pids killed (all gone on return)."""
        if not self.alive:
            return []
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        tree = [root, *root.children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _gone, alive = psutil.wait_procs(tree, timeout=10)
        if alive:
            raise RuntimeError(f"{self.name}: still alive after SIGKILL: {[process.pid for process in alive]}")
        self.process.wait()
        return [process.pid for process in tree]

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class RedisServer(ManagedProcess):
    """A dedicated redis-server (no persistence) on a fixed port, which a test may stop and start again."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; install it (scripts/test.sh does)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__("redis-server", argv, dict(os.environ), log)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        super().start()
        wait_for(lambda: _listening(self.port) or not self.alive, f"redis-server did not listen on {self.port}", 30)
        if not self.alive:
            raise RuntimeError(f"redis-server exited:\n{self.tail()}")


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def gunicorn_argv(binds: list[str], workers: int, threads: int) -> list[str]:
    """gunicorn serving `control_api:create_app()` on BINDS (host:port) as production does: its settings module
    (control_api/gunicorn_conf.py), WORKERS x THREADS, a short graceful timeout for tests."""
    argv = [str(VENV_BIN / "gunicorn"), "--workers", str(workers), "--threads", str(threads)]
    for bind in binds:
        argv += ["--bind", bind]
    settings = ["--config", "python:control_api.gunicorn_conf"]
    return [*argv, "--graceful-timeout", "5", *settings, "control_api:create_app()"]


class ApiServer(ManagedProcess):
    """gunicorn `control_api:create_app()` on 127.0.0.1:PORT and GATEWAY:PORT (where the agents reach it)."""

    def __init__(self, env: dict[str, str], gateway: str, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.gateway = gateway
        argv = gunicorn_argv([f"127.0.0.1:{self.port}", f"{gateway}:{self.port}"], workers=2, threads=8)
        super().__init__("control API", argv, env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def node_url(self) -> str:
        return f"http://{self.gateway}:{self.port}"

    def healthy(self) -> bool:
        with requests.Session() as session:
            session.trust_env = False
            try:
                return session.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

    def start(self) -> None:
        super().start()
        wait_for(lambda: self.healthy() or not self.alive, "the control API did not answer", 30)
        if not self.alive:
            raise RuntimeError(f"the control API exited:\n{self.tail()}")


class ApiClient:
    """The control API over HTTP, as an admin."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False  # never an environment proxy between the test and the API

    def login(self, username: str, password: str) -> None:
        body = {"kind": "admin", "username": username, "password": password}
        response = self.call("POST", "/auth/token", json=body, expect=200)
        self.session.headers["Authorization"] = f"Bearer {response['access_token']}"

    def call(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v1{path}", timeout=30, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise AssertionError(f"{method} {path} -> {response.status_code}, expected {expected}: {response.text}")
        return response.json() if response.content else None
