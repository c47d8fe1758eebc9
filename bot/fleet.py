"""How nodes and their alerts read in Telegram: the admins' /nodes, and node_alert(_cleared) in the admin chat.

Every string from the API goes through bot.i18n.t (escaped for HTML, Latin wrapped in direction marks inside
Persian) or through plain(); a piece already formatted that way is passed on as `raw`. Values the bot does not
know (a new status, threshold or action from a newer API) are shown as they are, never dropped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from .i18n import CATALOGS, DEFAULT_LANGUAGE, ltr, t

THRESHOLDS = ("cpu", "latency", "bandwidth", "dark")
ACTIONS = ("migrating", "no_healthy_node", "constant_ip_pinned")
MESSAGE_LIMIT = 4000  # Telegram takes 4096 characters per message; longer lists are split between nodes


def plain(value: Any, language: str) -> str:
    """An API string as Telegram HTML, as t() would render it."""
    return ltr(html.escape(str(value), quote=False), language)


def number(value: Any) -> str:
    """97.5 -> "97.5", 85.0 -> "85", None -> "—"."""
    if value is None:
        return "—"
    try:
        text = f"{float(value):.1f}"
    except (TypeError, ValueError):
        return str(value)
    return text[:-2] if text.endswith(".0") else text


def when(value: Any) -> str:
    """An API timestamp to the minute (UTC, as the API gives it)."""
    return str(value or "—")[:16].replace("T", " ")


def _named(language: str, prefix: str, value: Any) -> str:
    key = f"{prefix}_{value}"
    return t(language, key) if key in CATALOGS[DEFAULT_LANGUAGE] else plain(value, language)


def breach_line(language: str, breach: dict[str, Any]) -> str:
    """One crossed threshold: its value against its limit, and since when."""
    kind = breach.get("threshold")
    key = f"threshold_{kind}" if kind in THRESHOLDS else "threshold_other"
    text = t(language, key, name=kind, value=number(breach.get("value")), limit=number(breach.get("limit")))
    if breach.get("since"):
        return t(language, "alert_breach_since", raw=text, since=when(breach["since"]))
    return t(language, "alert_breach", raw=text)


def action_line(language: str, action: dict[str, Any]) -> str:
    code, count = action.get("code"), action.get("count", 0)
    if code in ACTIONS:
        return t(language, f"action_{code}", count=count)
    return t(language, "action_other", code=code, count=count)


def alert_lines(language: str, alert: dict[str, Any]) -> list[str]:
    """An alert as lines: since when, each crossed threshold, the config counts, then the actions."""
    breached = alert.get("breached") or []
    header = "admin_node_alert" if breached or not alert.get("draining") else "admin_node_draining"
    lines = [t(language, header, since=when(alert.get("since")))]
    lines.extend(breach_line(language, breach) for breach in breached)
    configs = alert.get("configs")
    if configs:
        lines.append(
            t(language, "admin_node_configs", dynamic=configs.get("dynamic", 0), constant=configs.get("constant_ip", 0))
        )
    lines.extend(action_line(language, action) for action in alert.get("actions") or [])
    return lines


def node_block(language: str, node: dict[str, Any], alert: dict[str, Any] | None) -> str:
    """One node for /nodes: name, status, health, sync state; its last CPU and latency; its alert, if any."""
    head = t(
        language,
        "admin_node_head",
        name=node.get("name"),
        raw=t(language, "list_sep").join(
            (
                _named(language, "node_status", node.get("status")),
                _named(language, "node_health", node.get("health")),
                _named(language, "node_sync", node.get("sync_state")),
            )
        ),
    )
    metrics = node.get("last_metrics") or {}
    seen = []
    if metrics.get("cpu") is not None:
        seen.append(t(language, "admin_node_cpu", value=number(metrics["cpu"])))
    if metrics.get("latency_ms") is not None:
        seen.append(t(language, "admin_node_latency", value=number(metrics["latency_ms"])))
    seen.append(t(language, "admin_node_heartbeat", at=when(node.get("last_seen_at"))))
    lines = [head, t(language, "list_sep").join(seen)]
    if alert:
        lines.extend(alert_lines(language, alert))
    return "\n".join(lines)


def nodes_messages(language: str, nodes: list[dict[str, Any]], alerts: dict[Any, dict[str, Any]]) -> list[str]:
    """The /nodes answer: one message, or several split between nodes when it would be too long for Telegram."""
    if not nodes:
        return [t(language, "admin_nodes_header") + "\n\n" + t(language, "admin_nodes_none")]
    blocks = [node_block(language, node, alerts.get(node.get("id"))) for node in nodes]
    return _pack(t(language, "admin_nodes_header"), blocks)


def _pack(header: str, blocks: Iterable[str]) -> list[str]:
    messages, current = [], header
    for block in blocks:
        if len(current) + 2 + len(block) > MESSAGE_LIMIT and current:
            messages.append(current)
            current = block[:MESSAGE_LIMIT]
        else:
            current = f"{current}\n\n{block}" if current else block
    messages.append(current)
    return messages


def alert_notification(language: str, kind: str, payload: dict[str, Any]) -> str:
    """The admin chat's text for node_alert (what crossed, what is done) and node_alert_cleared."""
    name = payload.get("node_name") or payload.get("node_id")
    if kind == "node_alert_cleared":
        return t(language, "notify_node_alert_cleared", name=name)
    lines = [t(language, "notify_node_alert", name=name)]
    lines.extend(breach_line(language, breach) for breach in payload.get("breached") or [])
    lines.extend(action_line(language, action) for action in payload.get("actions") or [])
    return "\n".join(lines)
