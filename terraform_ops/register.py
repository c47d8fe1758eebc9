"""Register the nodes Terraform built in the control API, idempotently.

Running it twice creates nothing new: a node whose name is already taken is compared, not created.
The API hands back agent credentials when it creates a node; they are dropped on the spot (never
printed, logged or stored): the provision job (``POST /nodes/{id}/provision``, ``--provision``)
gives the node's agent fresh ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from .inventory import NodeSpec

API_PREFIX = "/api/v1"
Progress = Callable[[str], None]


class ApiError(RuntimeError):
    """The control API said no (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ControlApi:
    """The few admin endpoints registration needs, over HTTP (like the bot: no database access)."""

    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def login_admin(self, username: str, password: str) -> None:
        body = self._call("POST", "/auth/token", json={"kind": "admin", "username": username, "password": password})
        self.use_token(body["access_token"])

    def use_token(self, token: str) -> None:
        self.session.headers["Authorization"] = f"Bearer {token}"

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._call("GET", "/nodes")["items"]

    def create_node(self, body: Mapping[str, Any]) -> dict[str, Any]:
        created = self._call("POST", "/nodes", json=dict(body), expect=201)
        created.pop("client_secret", None)  # the provision job issues the agent's credentials
        return created

    def provision(self, node_id: int) -> bool:
        return bool(self._call("POST", f"/nodes/{node_id}/provision", expect=202)["queued"])

    def _call(self, method: str, path: str, json: Any = None, expect: int = 200) -> Any:
        url = f"{self.base_url}{API_PREFIX}{path}"
        try:
            response = self.session.request(method, url, json=json, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(f"{method} {path}: {exc}") from exc
        if response.status_code != expect:
            try:
                error = response.json()
            except ValueError:
                error = {}
            message = error.get("message") or response.text[:200]
            status = response.status_code
            raise ApiError(f"{method} {path}: HTTP {status}: {message}", status, error.get("error"))
        return response.json()


@dataclass
class RegistrationResult:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Registered under the same name but different: {name: {field: (in the API, from Terraform)}}.
    differs: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    provisioned: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.unchanged)} unchanged, {len(self.differs)} differ, "
            f"{len(self.provisioned)} provisioning queued"
        )


@dataclass(frozen=True)
class NodeDefaults:
    """What Terraform does not know about a node: its core and what it serves."""

    core: str = "xray"
    inbounds: tuple[Mapping[str, Any], ...] = ()
    tls_server_name: str | None = None  # a template: "{name}.vpn.example.com"

    def body(self, node: NodeSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": node.name,
            "region": node.region,
            "location_tag": node.location_tag,
            "public_ip": node.public_ip,
            "core": self.core,
        }
        if self.inbounds:
            body["inbounds"] = [dict(inbound) for inbound in self.inbounds]
        if self.tls_server_name:
            body["tls_server_name"] = self.tls_server_name.format(name=node.name, region=node.region)
        return body


COMPARED = ("region", "location_tag", "public_ip", "core")


def register_nodes(
    api: ControlApi,
    nodes: Iterable[NodeSpec],
    *,
    defaults: NodeDefaults | None = None,
    provision: bool = False,
    progress: Progress | None = print,
) -> RegistrationResult:
    """Create each node the API does not have; compare the ones it has. ``provision`` queues the
    provision job for the nodes created by this run (existing ones are left alone)."""
    say = progress or (lambda _line: None)
    defaults = defaults or NodeDefaults()
    result = RegistrationResult()
    registered = {node["name"]: node for node in api.list_nodes()}
    for node in nodes:
        body = defaults.body(node)
        existing = registered.get(node.name)
        if existing is None:
            try:
                created = api.create_node(body)
            except ApiError as exc:
                if exc.code != "node_name_taken":
                    raise
                # Someone registered it since we listed: compare with what is there now.
                existing = {item["name"]: item for item in api.list_nodes()}[node.name]
            else:
                result.created.append(node.name)
                say(f"created   {node.name} (id {created['id']}, {node.public_ip}, {node.location_tag}/{node.region})")
                if provision:
                    queued = api.provision(created["id"])
                    result.provisioned.append(node.name)
                    say(f"provision {node.name}: job {'queued' if queued else 'already waiting'}")
                continue
        differences = {key: (existing.get(key), body[key]) for key in COMPARED if existing.get(key) != body[key]}
        if differences:
            result.differs[node.name] = differences
            detail = ", ".join(f"{key}: API {was!r}, Terraform {now!r}" for key, (was, now) in differences.items())
            say(f"DIFFERS   {node.name} (id {existing['id']}): {detail} — left as is; fix the node in the API")
        else:
            result.unchanged.append(node.name)
            say(f"unchanged {node.name} (id {existing['id']})")
    return result
