"""Admins, bot clients and nodes as principals: list, disable, enable, rotate their secrets.

One set of routes per collection (/principals/admins/{admin_id}/disable, …), built by _routes.
"""

from __future__ import annotations

from collections.abc import Callable

from apiflask import APIBlueprint

from ..extensions import db_session
from ..schemas.principals import PrincipalList, PrincipalOut, RotatedSecretOut
from ..security import current_principal, require
from ..services import principals as principal_service
from .common import API_PREFIX, BEARER

bp = APIBlueprint("principals", __name__, url_prefix=f"{API_PREFIX}/principals", tag="Principals")

# collection -> (the id's name in the path, what one of them is called)
COLLECTIONS = {
    "admins": ("admin_id", "admin"),
    "bot-clients": ("bot_client_id", "bot client"),
    "nodes": ("node_id", "node"),
}


def _routes(collection: str, id_name: str, label: str) -> None:
    base = f"/{collection}/<int:{id_name}>"
    endpoint = collection.replace("-", "_")

    def action(verb: str, output: type, summary: str, run: Callable[[int], dict], responses: dict) -> None:
        def view(**ids: int) -> dict:
            return run(ids[id_name])

        view.__name__ = f"{verb.replace('-', '_')}_{endpoint}"
        decorated = bp.doc(summary=summary, security=BEARER, responses={404: f"No such {label}", **responses})(
            bp.output(output)(require("admin")(view))
        )
        bp.post(f"{base}/{verb}")(decorated)

    action(
        "disable",
        PrincipalOut,
        f"Disable a {label}: its tokens stop working on their next request",
        lambda pid: principal_service.set_enabled(db_session(), current_principal(), collection, False, pid),
        {409: "An admin's own account (cannot_disable_self), or the last enabled admin (last_admin)"}
        if collection == "admins"
        else {},
    )
    action(
        "enable",
        PrincipalOut,
        f"Enable a disabled {label}",
        lambda pid: principal_service.set_enabled(db_session(), current_principal(), collection, True, pid),
        {},
    )
    action(
        "rotate-secret",
        RotatedSecretOut,
        f"Give a {label} a new secret, shown once; tokens issued before it stop working"
        + (" (the agent needs it: re-provisioning installs a fresh one)" if collection == "nodes" else ""),
        lambda pid: principal_service.rotate_secret(db_session(), current_principal(), collection, pid),
        {},
    )


for _collection, (_id_name, _label) in COLLECTIONS.items():
    _routes(_collection, _id_name, _label)


@bp.get("/admins")
@require("admin")
@bp.output(PrincipalList)
@bp.doc(summary="Admins, with whether each is disabled", security=BEARER)
def list_admins() -> dict:
    return {"items": principal_service.list_principals(db_session(), "admins")}


@bp.get("/bot-clients")
@require("admin")
@bp.output(PrincipalList)
@bp.doc(summary="Bot clients, with whether each is disabled (nodes: GET /nodes)", security=BEARER)
def list_bot_clients() -> dict:
    return {"items": principal_service.list_principals(db_session(), "bot-clients")}
