"""The control plane alone, as production runs it, for benches: PostgreSQL and Redis (services.py), the schema
migrated, gunicorn serving `control_api:create_app()` on loopback, and an admin API client. No worker, no nodes:
the caller simulates what talks to the API."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.fleet import create_admin
from harness.podman_node import wait_for
from harness.processes import VENV_BIN, ApiClient, ManagedProcess, gunicorn_argv
from harness.services import free_port, postgres_server, redis_server


@dataclass
class ControlPlane:
    database_url: str
    redis_url: str
    env: dict[str, str]
    api: ManagedProcess
    url: str
    client: ApiClient  # logged in as an admin


@contextlib.contextmanager
def control_plane(workdir: Path, workers: int = 2, threads: int = 4, **env_overrides: str) -> Iterator[ControlPlane]:
    """Yield a migrated PostgreSQL + Redis and gunicorn serving the API on 127.0.0.1 (WORKERS x THREADS)."""
    from control_api import migrate
    from control_api.database import make_engine

    with postgres_server() as database_url, redis_server() as redis_url:
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "LOGIN_RATE_LIMIT_PER_IP": "1000000/60",
            "LOGIN_RATE_LIMIT_PER_USERNAME": "1000000/60",
            "LOG_LEVEL": "WARNING",
            "ACCESS_TOKEN_TTL_SECONDS": "7200",
            "HEALTH_CPU_PERCENT": "100",  # the simulated nodes' metrics never alert by accident
            "RAYFLEET_NODE_API_URL": f"http://127.0.0.1:{port}",
            "RAYFLEET_NODE_API_ALLOW_INSECURE_HTTP": "true",
            "PYTHONUNBUFFERED": "1",
            **env_overrides,
        }
        for name in ("JWT_SECRET_KEY_FILE", "TEST_DATABASE_URL", "TEST_REDIS_URL"):
            env.pop(name, None)
        argv = gunicorn_argv([f"127.0.0.1:{port}"], workers, threads)
        api = ManagedProcess("control API", argv, env, workdir / "api.log")
        api.start()
        try:
            url = f"http://127.0.0.1:{port}"
            client = ApiClient(url)
            wait_for(lambda: _healthy(client) or not api.alive, "the control API did not answer", 60)
            if not api.alive:
                raise RuntimeError(f"the control API exited:\n{api.tail()}")
            client.login(*create_admin(env, "bench-admin"))
            yield ControlPlane(database_url, redis_url, env, api, url, client)
        finally:
            api.stop()


def _healthy(client: ApiClient) -> bool:
    try:
        return client.session.get(f"{client.base_url}/api/v1/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False
