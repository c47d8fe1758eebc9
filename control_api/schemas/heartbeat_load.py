"""HeartbeatIn.load's fast path: the usual heartbeat (metrics and traffic reports, no incidents, no devices) read
without marshmallow's per-field machinery, which costs a tenth of a heartbeat's CPU.

It accepts only what it can vouch for, each check at least as strict as the schema's: plain JSON types, no
unknown keys, every value in range. Anything else (including every invalid body) returns None and goes through
marshmallow, so errors and edge cases (5.0 for an integer, a string for a float...) keep the schema's own
answers. tests/unit/test_heartbeat_load.py holds its output equal to the schema's.
"""

from __future__ import annotations

import math
import re
from typing import Any

from marshmallow import ValidationError
from marshmallow.fields import Field

_TOP = frozenset(
    ("cpu", "mem", "bandwidth_in", "bandwidth_out", "latency_ms", "core_active", "incidents", "reports", "devices")
)
_REQUIRED = ("cpu", "mem", "bandwidth_in", "bandwidth_out", "core_active")
_REPORT = frozenset(("report_id", "period_start", "period_end", "usage"))
_ENTRY = frozenset(("email", "uplink", "downlink"))
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # slug(64), ASCII only
_EMAIL = re.compile(r"(cfg|pool)-[0-9]{1,18}")  # as UserTrafficIn.email
_MAX_REPORTS, _MAX_USAGE = 100, 100_000


def _percent(value: Any) -> float | None:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= 100:
        return None
    return float(value)


def _whole(value: Any, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def fast_load(data: Any, when: Field) -> dict[str, Any] | None:
    """DATA as HeartbeatIn().load(DATA) returns it, or None when DATA is not a plain, valid heartbeat. WHEN: the
    schema's AwareDateTime field, which parses the report periods (the one parser of the two readings)."""
    if type(data) is not dict or not data.keys() <= _TOP or any(key not in data for key in _REQUIRED):
        return None
    cpu, mem = _percent(data["cpu"]), _percent(data["mem"])
    if cpu is None or mem is None or type(data["core_active"]) is not bool:
        return None
    if not (_whole(data["bandwidth_in"], 10**13) and _whole(data["bandwidth_out"], 10**13)):
        return None
    latency = data.get("latency_ms")
    if latency is not None:
        if type(latency) not in (int, float) or not math.isfinite(latency) or not 0 <= latency <= 600_000:
            return None
        latency = float(latency)
    if data.get("incidents", []) != [] or data.get("devices", []) != []:
        return None
    reports = data.get("reports", [])
    if type(reports) is not list or len(reports) > _MAX_REPORTS:
        return None
    loaded = []
    for report in reports:
        report = _report(report, when)
        if report is None:
            return None
        loaded.append(report)
    return {
        "cpu": cpu,
        "mem": mem,
        "bandwidth_in": data["bandwidth_in"],
        "bandwidth_out": data["bandwidth_out"],
        "latency_ms": latency,
        "core_active": data["core_active"],
        "incidents": [],
        "reports": loaded,
        "devices": [],
    }


def _report(report: Any, when: Field) -> dict[str, Any] | None:
    if type(report) is not dict or report.keys() != _REPORT:
        return None
    report_id, usage = report["report_id"], report["usage"]
    if type(report_id) is not str or _SLUG.fullmatch(report_id) is None:
        return None
    if type(usage) is not list or len(usage) > _MAX_USAGE:
        return None
    if type(report["period_start"]) is not str or type(report["period_end"]) is not str:
        return None
    try:
        start, end = when.deserialize(report["period_start"]), when.deserialize(report["period_end"])
    except ValidationError:
        return None
    if end < start:
        return None
    entries = []
    for entry in usage:
        if type(entry) is not dict or entry.keys() != _ENTRY:
            return None
        email, uplink, downlink = entry["email"], entry["uplink"], entry["downlink"]
        if type(email) is not str or _EMAIL.fullmatch(email) is None:
            return None
        if not (_whole(uplink, 10**15) and _whole(downlink, 10**15)):
            return None
        entries.append({"email": email, "uplink": uplink, "downlink": downlink})
    return {"report_id": report_id, "period_start": start, "period_end": end, "usage": entries}
