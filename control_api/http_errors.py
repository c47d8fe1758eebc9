"""The one place that turns every error into JSON: domain errors, HTTP errors, validation failures.

Every error response is {"error": <code>, "message": <human text>} plus optional "details".
"""

from __future__ import annotations

import logging
from typing import Any

from apiflask import APIFlask, HTTPError
from werkzeug.exceptions import HTTPException

from .errors import DomainError, RateLimited

log = logging.getLogger(__name__)

# Codes for plain HTTP statuses (routing, parsing, auth library errors).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
}


def error_body(status: int, message: str, code: str | None = None, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code or STATUS_CODES.get(status, "error"), "message": message}
    if details:
        body["details"] = details
    return body


def register_error_handlers(app: APIFlask) -> None:
    @app.error_processor
    def _http_error(error: HTTPError) -> tuple[dict[str, Any], int, dict[str, str]]:
        # APIFlask routes abort(), werkzeug HTTP errors and validation failures here.
        status = error.status_code
        if status == 422 or (status == 400 and isinstance(error.detail, dict) and error.detail):
            return error_body(422, "The request does not match the schema.", details=error.detail), 422, error.headers
        message = error.message or "Error"
        if status == 400:
            message = "The request body is not valid JSON (or not UTF-8)."
        return error_body(status, message, details=error.detail or None), status, error.headers

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> tuple[dict[str, Any], int, dict[str, str]]:
        headers = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(error.retry_after)
        return error_body(error.status, error.message, error.code, error.details), error.status, headers

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[dict[str, Any], int]:
        if isinstance(error, HTTPException):
            status = error.code or 500
            return error_body(status, error.description or "Error"), status
        log.exception("unhandled error")
        return error_body(500, "Internal error; it has been logged."), 500
