"""Subscription tokens never reach a log: the path /sub/<token> is the customer's credential.

redact() is applied to werkzeug's request log (flask run) by a logging filter installed in
create_app, and to gunicorn's access log by control_api.gunicorn_logging.RedactingLogger.
"""

from __future__ import annotations

import logging
import re

_SUBSCRIPTION_PATH = re.compile(r"(/sub/)[^/?#\s\"']+")
REDACTED = r"\1<redacted>"


def redact(text: str) -> str:
    return _SUBSCRIPTION_PATH.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message names a subscription token (its arguments are merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install_request_log_filter() -> None:
    """Once per process: werkzeug's development-server request log goes through RedactingFilter."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())
