"""Domain errors: what services raise when a business rule says no. Plain Python (no Flask): the HTTP
layer (http_errors.py) turns each into a JSON response with the status its class names."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule said no. Subclasses fix the HTTP status; the code names the rule."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class InvalidInput(DomainError):
    status, code = 422, "validation_error"


class PayloadTooLarge(DomainError):
    status, code = 413, "payload_too_large"


class UnsupportedMedia(DomainError):
    status, code = 415, "unsupported_media_type"


class ServiceUnavailable(DomainError):
    status, code = 503, "service_unavailable"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
