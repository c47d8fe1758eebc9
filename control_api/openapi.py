"""Spec building and post-processing: what marshmallow cannot say (oneOf bodies, cross-field rules, path
parameter ranges) and the statuses every operation can return, each in one place."""

from __future__ import annotations

import copy
import re
from typing import Any

from apiflask import APIFlask
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import make_schema_key, resolve_schema_instance

from .schemas.common import MAX_ID, OneOfSchema
from .security import SECURITY_SCHEME
from .services.segments import SEGMENTS
from .services.subscriptions import TOKEN_PATTERN

_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
_GENERIC = {
    400: "The body is not valid JSON or not UTF-8",
    401: "No token, or an invalid, expired or revoked one",
    403: "The token's principal may not use this endpoint",
    404: "No such resource",
    413: "The body is too large",
    415: "The body is not labelled Content-Type: application/json",
}
# Path parameters: `<int:...>` matches ASCII digits up to BIGINT (BoundedIntConverter), else 404;
# a Telegram user id is positive (PUT refuses 0 with 422 invalid_telegram_id, GET finds nobody);
# a subscription token has the shape the server makes (any other is a 404, like an unknown one);
# a segment is one of the services' names.
_PATH_INTEGER = {"minimum": 0, "maximum": MAX_ID}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "telegram_id": {"minimum": 1, "maximum": MAX_ID, "description": "A Telegram user id (positive)."},
    "token": {"pattern": TOKEN_PATTERN, "description": "The subscription's secret token."},
    # `<any(...):segment>`: another name is a 404, like an unknown route.
    "segment": {"enum": list(SEGMENTS), "description": "A customer segment."},
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

    def _generate_spec(self) -> APISpec:
        spec = super()._generate_spec()
        plugin = next((p for p in spec.plugins if isinstance(p, MarshmallowPlugin)), None)
        if plugin is not None and plugin.converter is not None:
            _complete_components(spec, plugin)
        return spec


def _component_name(spec: APISpec, plugin: MarshmallowPlugin, schema_class: type) -> str:
    """The component of SCHEMA_CLASS, registered now if no route has named it yet."""
    name = plugin.converter.refs.get(make_schema_key(schema_class()))  # type: ignore[union-attr]
    if name is None:
        name = schema_class.__name__
        spec.components.schema(name, schema=schema_class)
    return name


def _complete_components(spec: APISpec, plugin: MarshmallowPlugin) -> None:
    """OneOfSchema bodies become `oneOf` (with a `discriminator` when they have one), and every schema's
    `openapi_extra` (a rule across fields, such as "with ban, a reason") joins its component."""
    refs = plugin.converter.refs  # type: ignore[union-attr]
    for key, name in list(refs.items()):
        schema_class = key[0]
        if not issubclass(schema_class, OneOfSchema):
            continue
        choices = {choice: _component_name(spec, plugin, choice) for choice in schema_class.one_of}
        one_of: dict[str, Any] = {
            "description": (schema_class.__doc__ or "").strip(),
            "oneOf": [{"$ref": f"#/components/schemas/{choice}"} for choice in choices.values()],
        }
        if schema_class.discriminator:
            mapping = {value: choices[choice] for value, choice in schema_class.mapping().items()}
            one_of["discriminator"] = {
                "propertyName": schema_class.discriminator,
                "mapping": {value: f"#/components/schemas/{name}" for value, name in mapping.items()},
            }
        spec.components.schemas[name] = one_of
    for key, name in refs.items():
        extra = getattr(key[0], "openapi_extra", None)
        if extra:
            spec.components.schemas[name].update(copy.deepcopy(extra))


def _describe_path_parameter(parameter: dict[str, Any]) -> None:
    schema = parameter.setdefault("schema", {})
    detail = _PATH_PARAMETERS.get(parameter["name"], _PATH_INTEGER if schema.get("type") == "integer" else {})
    schema.update({key: value for key, value in detail.items() if key != "description"})
    if "description" in detail:
        parameter.setdefault("description", detail["description"])


def raw_body(body: dict[str, Any]) -> Any:
    """Document a view's request body that is not JSON (a file's bytes): BODY is its OpenAPI requestBody.
    Put it right under the route decorator; the view reads the body itself."""

    def decorator(view: Any) -> Any:
        view._rayfleet_raw_body = body
        return view

    return decorator


def _raw_bodies(app: APIFlask) -> dict[tuple[str, str], dict[str, Any]]:
    """(OpenAPI path, method) -> requestBody of every view marked with raw_body."""
    found = {}
    for rule in app.url_map.iter_rules():
        body = getattr(app.view_functions.get(rule.endpoint), "_rayfleet_raw_body", None)
        if body is not None:
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods or ():
                found[path, method.lower()] = body
    return found


def init_openapi(app: APIFlask) -> None:
    app.security_schemes = {SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}

    @app.spec_processor
    def _add_generic_responses(spec: dict[str, Any]) -> dict[str, Any]:
        raw = _raw_bodies(app)
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                wanted = []
                if (path, method) in raw:
                    # A file's bytes, read and checked by the view itself (its own 413 and 415).
                    operation["requestBody"] = copy.deepcopy(raw[path, method])
                    wanted += [413, 415]
                elif "requestBody" in operation:
                    # Enforced, with 400/415/422, by api.common.check_request_body.
                    operation["requestBody"]["required"] = True
                    wanted += [400, 413, 415]
                if operation.get("security"):
                    wanted += [401, 403]
                if "{" in path:
                    wanted.append(404)
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path":
                        _describe_path_parameter(parameter)
                for status in wanted:
                    operation["responses"].setdefault(str(status), {"description": _GENERIC[status], **_ERROR_REF})
        # Partial (PATCH) schemas apply no defaults, so they should not advertise any.
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            if name.endswith("Update"):
                for prop in schema.get("properties", {}).values():
                    prop.pop("default", None)
        return spec
