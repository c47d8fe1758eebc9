"""What goes into a heartbeat, so that the API can always take it and the journal always drains.

- Journaling: usage entries the API cannot map to a config (an operator's own user in the core,
  anything but `cfg-<id>` and the warm pool's `pool-<id>`) are dropped before anything is written
  (each name logged once), and a period's usage is split into reports of at most
  MAX_USAGE_PER_REPORT entries, so no single report outgrows the API's body limit.
- Sending: reports go in batches bounded by count (the API's limit) and by encoded size; a 413
  halves the size budget for the rest of the process. A batch the API refuses as invalid (422)
  names its bad reports (the error details index them): those are quarantined, the rest resent; when
  the details name none, the batch is halved until the bad report is alone.
- Incidents carry at most the API's detail length.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_REPORTS_PER_HEARTBEAT = 100  # the API's limit (HeartbeatIn.reports)
MAX_DEVICE_ENTRIES = 5000  # the API's limit (HeartbeatIn.devices)
MAX_BATCH_BYTES = 512 * 1024  # under the API's default 1 MiB body limit, with room for the metrics
MIN_BATCH_BYTES = 1024  # a batch always holds at least one report, whatever the budget
MAX_USAGE_PER_REPORT = 2_000  # ≈ 120 KB of JSON
INCIDENT_DETAIL_MAX = 500  # the API's limit (IncidentIn.detail)
INCIDENT_KIND_MAX = 64
CONFIG_EMAIL = re.compile(r"^cfg-[0-9]{1,18}$")
# What usage may name: a config, or an identity of the node's warm pool (the API settles its traffic).
USAGE_EMAIL = re.compile(r"^(?:cfg|pool)-[0-9]{1,18}$")
_WARNED_LIMIT = 1_000  # how many distinct foreign names are remembered for "log once"


class UsageFilter:
    """Drops usage entries the API cannot map (not `cfg-<id>` or `pool-<id>`), logging each name once."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def __call__(self, usage: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        kept = []
        for entry in usage:
            email = str(entry.get("email", ""))
            if USAGE_EMAIL.match(email):
                kept.append(dict(entry))
            elif email not in self._warned and len(self._warned) < _WARNED_LIMIT:
                self._warned.add(email)
                log.warning("the core reports traffic for %r, which is no rayfleet config: not reported", email)
        return kept


def split_usage(usage: list[dict[str, Any]], size: int = MAX_USAGE_PER_REPORT) -> list[list[dict[str, Any]]]:
    """USAGE in chunks of at most SIZE entries (one report each)."""
    return [usage[start : start + size] for start in range(0, len(usage), size)]


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def next_batch(reports: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """The oldest reports that fit in MAX_BYTES and the API's count limit (always at least one)."""
    batch: list[dict[str, Any]] = []
    used = 0
    for report in reports[:MAX_REPORTS_PER_HEARTBEAT]:
        size = encoded_size(report) + 1
        if batch and used + size > max_bytes:
            break
        batch.append(report)
        used += size
    return batch


def refused_indexes(details: Any, batch_size: int) -> set[int]:
    """The batch positions a 422's details name under json.reports (marshmallow indexes list items)."""
    try:
        reports = details["json"]["reports"]
    except (KeyError, TypeError):
        return set()
    if not isinstance(reports, Mapping):
        return set()
    indexes = set()
    for key in reports:
        try:
            index = int(key)
        except (TypeError, ValueError):
            continue
        if 0 <= index < batch_size:
            indexes.add(index)
    return indexes


def bounded_incident(incident: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **incident,
        "kind": str(incident.get("kind", ""))[:INCIDENT_KIND_MAX],
        "detail": str(incident.get("detail", ""))[:INCIDENT_DETAIL_MAX],
    }
