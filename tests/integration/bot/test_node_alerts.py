"""Issue 14, the bot's side: /nodes with each node's alert, and admin-audience notifications in the admin chat.

The bot runs for real (polling loop, notifier thread) against the fake Telegram and the real API over HTTP.
The first three tests put chosen alert shapes (every action kind, escaping) through the bot's own API client,
the seam every answer passes, next to the real API's answers; the last one raises and clears a real alert
through the real API's heartbeats (docs/architecture.md, "Health and migration")."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from bot import notifier
from control_api.models import User
from control_api.services import notifications
from tests.conftest import create_node
from tests.integration.bot.conftest import ADMIN_CHAT, ALICE, STAFF
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

BREACHED = [
    {"threshold": "cpu", "value": 97.5, "limit": 85.0, "since": "2026-12-04T20:00:00+00:00"},
    {"threshold": "latency", "value": 250.0, "limit": 200.0, "since": "2026-12-04T20:01:00+00:00"},
]
ACTIONS = [
    {"code": "migrating", "count": 5},
    {"code": "no_healthy_node", "count": 7},
    {"code": "constant_ip_pinned", "count": 2},
]


class ContractOutbox:
    """Admin-audience notifications shaped as the contract says, listed by the bot's API client before the
    real outbox's; their acknowledgements are recorded here, the others go to the real API."""

    FIRST_ID = 10**9

    def __init__(self, api) -> None:
        self._notifications, self._ack = api.notifications, api.ack
        self.notes: list[dict] = []
        self.acked: list[int] = []
        self._lock = threading.Lock()
        api.notifications, api.ack = self.notifications, self.ack

    def add(self, kind: str, payload: dict) -> int:
        with self._lock:
            note_id = self.FIRST_ID + len(self.notes)
            self.notes.append(
                {
                    "id": note_id,
                    "audience": "admins",
                    "user_id": None,
                    "telegram_id": None,
                    "language": None,
                    "kind": kind,
                    "payload": payload,
                    "created_at": "2026-12-04T20:05:00+00:00",
                }
            )
            return note_id

    def notifications(self, limit: int = 50) -> list[dict]:
        with self._lock:
            pending = [note for note in self.notes if note["id"] not in self.acked]
        return pending + self._notifications(limit)

    def ack(self, ids: list[int]) -> int:
        mine = [i for i in ids if i >= self.FIRST_ID]
        real = [i for i in ids if i < self.FIRST_ID]
        taken = self._ack(real) if real else 0
        with self._lock:
            self.acked.extend(mine)
        return taken + len(mine)

    def wait_acked(self, ids: list[int], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if set(ids) <= set(self.acked):
                    return
            time.sleep(0.05)
        raise AssertionError(f"not acknowledged: {sorted(set(ids) - set(self.acked))}")


def _node_id(harness, name: str) -> int:
    from control_api.models import Node

    with harness.db() as session:
        return session.scalar(select(Node.id).where(Node.name == name))


def test_nodes_shows_each_nodes_health_and_the_alert_of_an_alerting_one(harness):
    """Real GET /nodes, joined with GET /nodes/alerts served as the contract shapes it."""
    tg, api = harness.telegram, harness.shop.api
    asked: list[int] = []
    fra = _node_id(harness, "fra-1")
    alert = {
        "node_id": fra,
        "node_name": "fra-1",
        "location_tag": "abroad",
        "region": "eu-central-1",
        "status": "active",
        "since": "2026-12-04T20:00:00+00:00",
        "breached": BREACHED,
        "draining": False,
        "configs": {"dynamic": 12, "constant_ip": 2, "migrating_away": 5},
        "constant_ip_config_ids": [41, 42],
        "actions": ACTIONS,
    }
    api.node_alerts = lambda acting_telegram_id: asked.append(acting_telegram_id) or [alert]

    mark = tg.send_text(STAFF, "/nodes")
    text = tg.reply(STAFF["id"], mark, "<b>Nodes</b>").text
    assert asked == [STAFF["id"]]
    assert "<b>fra-1</b> — active, never seen, " in text and "last heartbeat —" in text
    for line in (
        "⚠️ Alert since 2026-12-04 20:00",
        "• CPU 97.5% (limit 85%), since 2026-12-04 20:00",
        "• latency 250 ms (limit 200 ms), since 2026-12-04 20:01",
        "Configs: 12 dynamic, 2 constant-IP",
        "→ migrating 5",
        "→ no healthy node in tier (7)",
        "→ constant-IP pinned: admin action needed (2)",
    ):
        assert line in text.splitlines(), text

    api.node_alerts = lambda acting_telegram_id: []  # the node recovered
    mark = tg.send_text(STAFF, "/nodes")
    assert "Alert" not in tg.reply(STAFF["id"], mark, "<b>Nodes</b>").text


def test_admin_notifications_reach_the_admin_chat_and_are_acknowledged_beside_the_users(harness):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    outbox = ContractOutbox(harness.shop.api)
    mark = len(tg.events)
    raised = outbox.add("node_alert", {"node_id": 3, "node_name": "de-1", "breached": BREACHED, "actions": ACTIONS})
    with harness.db() as session:  # a user's notification in the real outbox meanwhile
        alice = session.scalar(select(User.id).where(User.telegram_id == ALICE["id"]))
        notifications.notify(session, alice, "expiring", "expiring:test-alerts", config_id=31)
        session.commit()

    text = tg.reply(ADMIN_CHAT, mark, "crossed its limits").text
    assert text.splitlines() == [
        "🚨 <b>Node de-1</b> crossed its limits:",
        "• CPU 97.5% (limit 85%), since 2026-12-04 20:00",
        "• latency 250 ms (limit 200 ms), since 2026-12-04 20:01",
        "→ migrating 5",
        "→ no healthy node in tier (7)",
        "→ constant-IP pinned: admin action needed (2)",
    ]
    tg.reply(ALICE["id"], mark, "Config <b>#31</b> expires")
    cleared = outbox.add("node_alert_cleared", {"node_id": 3, "node_name": "de-1"})
    assert tg.reply(ADMIN_CHAT, mark, "back to normal").text == "✅ Node <b>de-1</b> is back to normal."
    outbox.wait_acked([raised, cleared])
    deadline = time.monotonic() + 10
    while harness.undelivered() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness.undelivered() == 0
    time.sleep(0.5)  # a few more rounds: nothing is sent twice
    assert len(tg.bot_events(ADMIN_CHAT, mark)) == 2, tg.transcript(mark)
    assert all(e.chat in (ADMIN_CHAT, ALICE["id"]) for e in tg.bot_events(since=mark)), tg.transcript(mark)


def test_without_an_admin_chat_admin_notifications_are_acknowledged_unsent(harness, caplog, monkeypatch):
    monkeypatch.setattr(notifier, "_no_admin_chat_logged", threading.Event())  # "once per process", from now
    harness.stop_bot()
    harness.settings = replace(harness.settings, admin_chat_id=None)
    harness.start_bot()
    tg = harness.telegram
    outbox = ContractOutbox(harness.shop.api)
    mark = len(tg.events)
    with caplog.at_level(logging.WARNING, logger="bot.notifier"):
        ids = [
            outbox.add("node_alert", {"node_id": 3, "node_name": "de-1", "breached": BREACHED, "actions": ACTIONS}),
            outbox.add("node_alert_cleared", {"node_id": 3, "node_name": "de-1"}),
        ]
        outbox.wait_acked(ids)
        outbox.wait_acked([outbox.add("node_alert_cleared", {"node_id": 4, "node_name": "fr-2"})])
    assert tg.bot_events(since=mark) == [], tg.transcript(mark)
    warnings = [r for r in caplog.records if "No admin chat" in r.getMessage()]
    assert len(warnings) == 1


def _heartbeats(client, node, cpu: float, count: int = 3) -> None:
    body = {"cpu": cpu, "mem": 30.0, "bandwidth_in": 1000, "bandwidth_out": 1000, "latency_ms": 20.0}
    for _ in range(count):
        response = client.post("/api/v1/nodes/heartbeat", json={**body, "core_active": True}, headers=node.headers)
        assert response.status_code == 200, response.json


def test_a_node_over_its_cpu_limit_alerts_the_admins_and_clears_with_the_real_api(harness, client, store_shop):
    """Contract: 3 heartbeats over HEALTH_CPU_PERCENT=85 raise node_alert, 3 under clear it."""
    tg = harness.telegram
    node = create_node(client, store_shop["admin"], "de-9", public_ip="198.51.100.39")
    mark = len(tg.events)
    _heartbeats(client, node, cpu=97.0)
    harness.sweep()  # the API judges on the heartbeat; the sweep must not undo it

    text = tg.reply(ADMIN_CHAT, mark, "crossed its limits", timeout=20).text
    assert "<b>Node de-9</b>" in text and "• CPU 97% (limit 85%)" in text, text
    mark_nodes = tg.send_text(STAFF, "/nodes")
    listed = tg.reply(STAFF["id"], mark_nodes, "<b>Nodes</b>").text
    de9 = next(block for block in listed.split("\n\n") if block.startswith("<b>de-9</b>"))
    assert "⚠️ Alert since" in de9 and "• CPU 97% (limit 85%)" in de9, listed

    mark = len(tg.events)
    _heartbeats(client, node, cpu=10.0)
    harness.sweep()
    assert tg.reply(ADMIN_CHAT, mark, "back to normal", timeout=20).text == "✅ Node <b>de-9</b> is back to normal."
    deadline = time.monotonic() + 10
    while harness.undelivered() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness.undelivered() == 0
