"""schemas/dumping.dump answers exactly what schema.dump does."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from apiflask import Schema, fields
from marshmallow import post_dump

from control_api.schemas.dumping import dump
from control_api.schemas.nodes import NodeList, NodeOut

AT = datetime(2026, 12, 5, 21, 0, 7, 123456, tzinfo=UTC)


def node_view(number: int, **overrides: object) -> dict[str, object]:
    view: dict[str, object] = {
        "id": number,
        "name": f"node-{number}",
        "public_ip": "198.18.0.1",
        "region": "eu",
        "location_tag": "abroad",
        "status": "active",
        "core": "xray",
        "capacity_score": 100,
        "client_id": "abc",
        "secret_hash": "never shown",
        "last_seen_at": AT,
        "desired_revision": 3,
        "applied_revision": 2,
        "created_at": AT,
        "inbounds": [
            {"profile": "vless-ws-tls", "port": 443, "path": "/ws"},
            {"profile": "vless-tcp-tls", "port": 8443},
        ],
        "tls_server_name": None,
        "tls_self_signed": False,
        "bandwidth_capacity_mbps": None,
        "thresholds": {"latency_ms": 300.0},
        "alert_since": None,
        "alert_breached": {},
        "drain_immediate": False,
        "health": "healthy",
        "sync_state": "syncing",
        "pending_configs": 4,
        "last_metrics": {"cpu": 12.5, "mem": 40, "bandwidth_in": 10, "bandwidth_out": 20, "latency_ms": None, "at": AT},
        "last_sync": {"id": 9, "revision": 2, "status": "succeeded", "rc": 0, "started_at": AT, "finished_at": None},
    }
    view.update(overrides)
    return view


def test_the_node_list_dumps_the_same():
    items = [
        node_view(1),
        node_view(2, last_metrics=None, last_sync=None, public_ip=None),
        node_view(3, capacity_score=True, pending_configs=7.0, tls_self_signed=1, name=b"bytes"),  # coerced
        {key: value for key, value in node_view(4).items() if key not in ("health", "last_sync", "thresholds")},
        SimpleNamespace(**node_view(5)),  # not a dict: marshmallow's own path
    ]
    assert dump(NodeList(), {"items": items}) == NodeList().dump({"items": items})
    assert dump(NodeOut(), items, many=True) == NodeOut(many=True).dump(items)
    assert dump(NodeOut(many=True), None) == NodeOut(many=True).dump(None)


def test_hooks_data_keys_and_defaults_are_honoured():
    class Inner(Schema):
        n = fields.Integer(data_key="N")
        s = fields.String(attribute="other")
        d = fields.String(dump_default="x")
        f = fields.Float(as_string=True)

    class Hooked(Schema):
        v = fields.Integer()

        @post_dump
        def _twice(self, data, **_kwargs):
            return {**data, "v": data["v"] * 2}

    class Outer(Schema):
        inner = fields.Nested(Inner)
        many = fields.List(fields.Nested(Inner(only=("n",))))
        hooked = fields.Nested(Hooked)
        when = fields.DateTime()
        raw = fields.Raw()

    data = {
        "inner": {"n": 1, "other": "o", "f": 1.5},
        "many": [{"n": 2, "other": "p"}, {"n": 3}],
        "hooked": {"v": 4},
        "when": AT,
        "raw": {"a": [1]},
    }
    assert dump(Outer(), data) == Outer().dump(data)
    assert dump(Outer(), {"inner": None, "many": None, "hooked": None, "when": None}) == Outer().dump(
        {"inner": None, "many": None, "hooked": None, "when": None}
    )
