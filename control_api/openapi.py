"""Spec post-processing: document the statuses every operation can return, in one place."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import make_schema_key, resolve_schema_instance

from .security import SECURITY_SCHEME

_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
_GENERIC = {
    400: "The body is not valid JSON or not UTF-8",
    401: "No token, or an invalid, expired or revoked one",
    403: "The token's principal may not use this endpoint",
    404: "No such resource",
    413: "The body is too large",
    415: "The body is not labelled Content-Type: application/json",
}


class RayfleetAPIFlask(APIFlask):
    """APIFlask that registers each schema once.

    APIFlask walks routes shortest path first, so a list envelope (PlanList) registers its nested item
    schema (PlanOut) through apispec before APIFlask registers PlanOut itself; APIFlask then adds a
    duplicate "PlanOut1". Reusing apispec's existing name keeps one component per schema.
    """

    def _register_schema_and_get_ref(self, spec: APISpec, registered: dict[int, str], schema_obj: Any) -> dict:
        plugin = next((p for p in spec.plugins if isinstance(p, MarshmallowPlugin)), None)
        if plugin is not None and plugin.converter is not None:
            try:
                name = plugin.converter.refs.get(make_schema_key(resolve_schema_instance(schema_obj)))
            except (TypeError, ValueError):
                name = None
            if name:
                return {"$ref": f"#/components/schemas/{name}"}
        return super()._register_schema_and_get_ref(spec, registered, schema_obj)


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
                    # Enforced, with 400/415/422, by api.common.check_request_body.
                    operation["requestBody"]["required"] = True
                    wanted += [400, 413, 415]
                if operation.get("security"):
                    wanted += [401, 403]
                if "{" in path:
                    wanted.append(404)
                for status in wanted:
                    operation["responses"].setdefault(str(status), {"description": _GENERIC[status], **_ERROR_REF})
        # Partial (PATCH) schemas apply no defaults, so they should not advertise any.
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            if name.endswith("Update"):
                for prop in schema.get("properties", {}).values():
                    prop.pop("default", None)
        return spec
