"""The JSON body check that runs before a view's schema parsing (and after its authentication)."""

from __future__ import annotations

from apiflask import abort
from flask import current_app, request


def _json_body_schema() -> object | None:
    """The schema of the matched view's JSON body (APIFlask records @input's json schema as _spec["body"])."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "_spec", {}).get("body")


def check_request_body(after_auth: bool = False) -> None:
    """Before a view that takes a JSON body: the body must be there (422), be labelled JSON (415) and parse (400).

    Without this, a JSON body sent as text/plain read as "no body", so did a missing one (a PATCH succeeded
    doing nothing, though the spec says the body is required), and the few inputs Python's json rejects with
    something other than a JSONDecodeError (nesting past the recursion limit, integers over 4300 digits)
    escaped as 500s.
    """
    if request.routing_exception is not None or _json_body_schema() is None:
        return
    if not after_auth and getattr(current_app.view_functions[request.endpoint], "_rayfleet_kinds", None):
        return  # a protected view: security.require runs this after the token check, so 401/403 come first
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.mimetype and not request.is_json:
        abort(415, f"Send the body as application/json, not {request.mimetype}.")
    if not has_body:
        abort(422, detail={"json": ["A JSON body is required."]})
    if not request.is_json:
        abort(415, "Send the body as application/json (the Content-Type header is missing).")
    try:
        request.get_json()  # cached for the view; a ValueError inside becomes a 400 BadRequest
    except RecursionError:
        abort(400)
