"""The heartbeat's fast load (schemas/heartbeat_load.py) against HeartbeatIn's marshmallow load: the same data for
every body it takes, and every body it does not take goes to marshmallow (so errors are the schema's own)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from control_api.schemas.heartbeat_load import fast_load
from control_api.schemas.nodes import HeartbeatIn, TrafficReportIn

WHEN = TrafficReportIn._declared_fields["period_start"]


def _base() -> dict[str, Any]:
    return {
        "cpu": 12.5,
        "mem": 40,
        "bandwidth_in": 1000,
        "bandwidth_out": 0,
        "latency_ms": 8.25,
        "core_active": True,
        "incidents": [],
        "reports": [
            {
                "report_id": "9b2f6c1e-4d3a-4f0e-8a51-2c7d9e0b1a33",
                "period_start": "2026-12-05T10:00:00.123456+00:00",
                "period_end": "2026-12-05T10:01:00Z",
                "usage": [
                    {"email": "cfg-1", "uplink": 0, "downlink": 10**15},
                    {"email": "cfg-42", "uplink": 5, "downlink": 7},
                ],
            }
        ],
        "devices": [],
    }


def _variant(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = _base()
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DROP = object()
REPORT, ENTRY = ("reports", 0), ("reports", 0, "usage", 0)
SAMPLES = [
    _base(),
    {"cpu": 0, "mem": 100, "bandwidth_in": 0, "bandwidth_out": 10**13, "core_active": False},
    _variant(("latency_ms",), None),
    _variant(("latency_ms",), _DROP),
    _variant(("latency_ms",), 600_000),
    _variant(("latency_ms",), 600_000.5),
    _variant(("latency_ms",), -1),
    _variant(("incidents",), _DROP),
    _variant(("devices",), _DROP),
    _variant(("reports",), _DROP),
    _variant(("reports",), []),
    _variant(("cpu",), 100.0001),
    _variant(("cpu",), -0.1),
    _variant(("cpu",), "12"),
    _variant(("cpu",), True),
    _variant(("cpu",), None),
    _variant(("cpu",), math.nan),
    _variant(("cpu",), math.inf),
    _variant(("cpu",), _DROP),
    _variant(("mem",), 7),
    _variant(("bandwidth_in",), 5.0),
    _variant(("bandwidth_in",), 5.5),
    _variant(("bandwidth_in",), "5"),
    _variant(("bandwidth_in",), -1),
    _variant(("bandwidth_in",), 10**13 + 1),
    _variant(("bandwidth_out",), True),
    _variant(("core_active",), 1),
    _variant(("core_active",), "true"),
    _variant(("extra",), 1),
    _variant(("incidents",), [{"kind": "core_restarted", "at": "2026-12-05T10:00:00Z", "detail": "x"}]),
    _variant(("devices",), [{"email": "cfg-1", "count": 1}]),
    _variant(("reports",), {}),
    _variant(("reports",), [None]),
    _variant((*REPORT, "report_id"), ""),
    _variant((*REPORT, "report_id"), "a" * 64),
    _variant((*REPORT, "report_id"), "a" * 65),
    _variant((*REPORT, "report_id"), "-a"),
    _variant((*REPORT, "report_id"), "a\n"),
    _variant((*REPORT, "report_id"), "ä"),
    _variant((*REPORT, "report_id"), 5),
    _variant((*REPORT, "period_start"), "2026-12-05T10:00:00"),
    _variant((*REPORT, "period_start"), "2026-12-05T12:00:00+02:00"),
    _variant((*REPORT, "period_start"), "2026-12-05T10:02:00Z"),
    _variant((*REPORT, "period_start"), "2026-12-05"),
    _variant((*REPORT, "period_start"), "yesterday"),
    _variant((*REPORT, "period_start"), 1733392800),
    _variant((*REPORT, "period_end"), _DROP),
    _variant((*REPORT, "usage"), []),
    _variant((*REPORT, "usage"), None),
    _variant((*REPORT, "extra"), 1),
    _variant((*ENTRY, "email"), "cfg-"),
    _variant((*ENTRY, "email"), "cfg-1\n"),
    _variant((*ENTRY, "email"), "cfg-" + "9" * 18),
    _variant((*ENTRY, "email"), "cfg-" + "9" * 19),
    _variant((*ENTRY, "email"), "user@example.com"),
    _variant((*ENTRY, "email"), "pool-7"),  # a warm pool identity's traffic
    _variant((*ENTRY, "email"), "pool-"),
    _variant((*ENTRY, "uplink"), 10**15 + 1),
    _variant((*ENTRY, "uplink"), 3.0),
    _variant((*ENTRY, "downlink"), -5),
    _variant((*ENTRY, "downlink"), _DROP),
    _variant((*ENTRY, "extra"), 0),
    [],
    None,
    "heartbeat",
]


def _marshmallow(body: Any) -> tuple[str, Any]:
    try:
        return "ok", Schema.load(HeartbeatIn(), copy.deepcopy(body))
    except ValidationError as exc:
        return "error", exc.messages


@pytest.mark.parametrize("body", SAMPLES)
def test_the_fast_load_takes_only_what_the_schema_takes_and_yields_the_same(body: Any) -> None:
    fast = fast_load(copy.deepcopy(body), WHEN)
    outcome, expected = _marshmallow(body)
    if fast is not None:
        assert outcome == "ok" and fast == expected
    # Whatever the fast path leaves, the schema's load answers (data or errors) exactly as marshmallow does.
    try:
        loaded: tuple[str, Any] = ("ok", HeartbeatIn().load(copy.deepcopy(body)))
    except ValidationError as exc:
        loaded = ("error", exc.messages)
    assert loaded == (outcome, expected)


def test_the_usual_heartbeat_takes_the_fast_path() -> None:
    assert fast_load(_base(), WHEN) is not None
    assert fast_load(SAMPLES[1], WHEN) is not None
