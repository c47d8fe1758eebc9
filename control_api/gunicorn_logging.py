"""gunicorn's access log without subscription tokens: `gunicorn --logger-class
control_api.gunicorn_logging.RedactingLogger …` (scripts/run.sh and the production unit use it)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .log_redaction import redact


class RedactingLogger(Logger):
    """Every access-log atom (request line, path, query, referer, raw environ values) is redacted."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            key: redact(value) if isinstance(value, str) else value
            for key, value in super().atoms(resp, req, environ, request_time).items()
        }
