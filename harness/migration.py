"""Issue 14 through the API of a running fleet (harness/fleet.py): node alerts, thresholds, drains, config
migrations, and what each node must serve. Shared by tests/e2e/test_migration.py and bench/migration.py.

    trip(fleet, node_id)                                   # PATCH /nodes/{id} {"thresholds": {"latency_ms": 0}}
    alert = wait_alert(fleet, node_id, "latency")          # GET /nodes/alerts
    wait_live(fleet, config_ids, to_node_id)               # each config's view: migration.live_on_target
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from harness.fleet import Fleet
from harness.podman_node import wait_for


def set_thresholds(fleet: Fleet, node_id: int, **thresholds: float | None) -> dict[str, Any]:
    """PATCH /nodes/{id} {"thresholds": {...}}: overrides (None = the fleet default again)."""
    return fleet.client.call("PATCH", f"/nodes/{node_id}", json={"thresholds": thresholds}, expect=200)


def trip(fleet: Fleet, node_id: int) -> dict[str, Any]:
    """A latency limit of 0 ms: every real measurement breaches it (after HEALTH_WINDOW_HEARTBEATS)."""
    return set_thresholds(fleet, node_id, latency_ms=0)


def clear(fleet: Fleet, node_id: int) -> dict[str, Any]:
    return set_thresholds(fleet, node_id, latency_ms=None)


def alerts(fleet: Fleet) -> list[dict[str, Any]]:
    return fleet.client.call("GET", "/nodes/alerts", expect=200)["items"]


def alert_of(fleet: Fleet, node_id: int) -> dict[str, Any] | None:
    return next((item for item in alerts(fleet) if item["node_id"] == node_id), None)


def wait_alert(fleet: Fleet, node_id: int, threshold: str | None = None, timeout: float = 60) -> dict[str, Any]:
    """The node's alert once listed (with THRESHOLD among the breached ones, when given)."""

    def listed() -> dict[str, Any] | None:
        alert = alert_of(fleet, node_id)
        if alert is None or (threshold and threshold not in {item["threshold"] for item in alert["breached"]}):
            return None
        return alert

    return wait_for(
        listed,
        lambda: f"node {node_id} is not alerting ({threshold}): {alerts(fleet)}; view {fleet.node_view(node_id)}",
        timeout,
        interval=0.2,
    )


def wait_alert_cleared(fleet: Fleet, node_id: int, timeout: float = 60) -> None:
    wait_for(lambda: alert_of(fleet, node_id) is None, lambda: f"node {node_id} still alerts: {alerts(fleet)}", timeout)


def config_view(fleet: Fleet, config_id: int) -> dict[str, Any]:
    return fleet.client.call("GET", f"/configs/{config_id}", expect=200)


def is_live_on(view: dict[str, Any], node_id: int) -> bool:
    """The config is on NODE_ID and served there: moved and live, or its move already ended (with no
    grace, as after a drain with "now", a move ends in the same step that finds it live)."""
    migration = view.get("migration")
    return view["node_id"] == node_id and (migration is None or bool(migration["live_on_target"]))


def wait_live(fleet: Fleet, config_ids: Iterable[int], to_node_id: int, timeout: float = 180) -> dict[int, float]:
    """Wait until every config's view says it is live on TO_NODE_ID (call it only for configs that are
    elsewhere when it starts); time.time() each was seen."""
    waiting, seen = set(config_ids), {}
    deadline = time.monotonic() + timeout
    while waiting:
        for config_id in sorted(waiting):
            if is_live_on(config_view(fleet, config_id), to_node_id):
                seen[config_id] = time.time()
                waiting.discard(config_id)
        if waiting and time.monotonic() > deadline:
            views = {config_id: config_view(fleet, config_id).get("migration") for config_id in sorted(waiting)[:5]}
            raise TimeoutError(
                f"configs {sorted(waiting)} are not live on node {to_node_id} after {timeout} s: {views}\n"
                f"alerts: {alerts(fleet)}\nworker log:\n{fleet.worker.tail()}"
            )
        time.sleep(0.2)
    return seen


def served_config_ids(fleet: Fleet, node_id: int) -> set[int]:
    """The configs the node must serve now (GET /nodes/{id}/configs as admin; emails are cfg-<id>)."""
    served = fleet.client.call("GET", f"/nodes/{node_id}/configs", expect=200)
    return {int(user["email"].removeprefix("cfg-")) for user in served["users"]}


def link_host(link: str) -> str:
    """The server address of a vless:// link (vmess:// links are base64 JSON: not used here)."""
    return urlsplit(link).hostname or ""


def link_on(view: dict[str, Any], address: str, prefix: str = "vless://") -> str:
    """The config's first PREFIX link that names ADDRESS."""
    links = [link for link in view["links"] if link.startswith(prefix) and link_host(link) == address]
    assert links, f"config {view['id']} has no {prefix} link on {address}: {view['links']}"
    return links[0]


def subscription_links(fleet: Fleet, user_id: int) -> list[str]:
    """What GET /sub/<token> serves the user (the base64 document, decoded)."""
    url = fleet.client.call("GET", f"/users/{user_id}/subscription", expect=200)["subscription_url"]
    served = fleet.client.session.get(url, params={"format": "base64"}, timeout=30)
    assert served.status_code == 200, served.text
    return base64.b64decode(served.text.strip() + "==").decode().split()


def since_epoch(iso: str) -> float:
    """An API timestamp (ISO 8601 with an offset) as time.time() seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
