"""Spec post-processing: document the statuses every operation can return, in one place."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask

from .security import SECURITY_SCHEME

_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
_GENERIC = {
    400: "The body is not valid JSON or not UTF-8",
    401: "No token, or an invalid, expired or revoked one",
    403: "The token's principal may not use this endpoint",
    404: "No such resource",
    413: "The body is too large",
}


def init_openapi(app: APIFlask) -> None:
    app.security_schemes = {SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}

    @app.spec_processor
    def _add_generic_responses(spec: dict[str, Any]) -> dict[str, Any]:
        for path, operations in spec.get("paths", {}).items():
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                wanted = []
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                    wanted += [400, 413]
                if operation.get("security"):
                    wanted += [401, 403]
                if "{" in path:
                    wanted.append(404)
                for status in wanted:
                    operation["responses"].setdefault(str(status), {"description": _GENERIC[status], **_ERROR_REF})
        return spec
