"""Per-user traffic from the core's StatsService, through the collection's own gRPC client.

The client is not copied into the agent: it is plugins/module_utils/core_api.py (hand-encoded
messages, needs only grpcio), imported as the plain package `plugins.module_utils.core_api`. That
works in both places the agent runs from:

1. the node: the node_agent role installs `<prefix>/agent/` and, beside it, exactly
   `<prefix>/plugins/__init__.py`, `<prefix>/plugins/module_utils/__init__.py` and
   `<prefix>/plugins/module_utils/core_api.py` (tests/unit/test_agent_node_layout.py);
2. the repository (a checkout, tests): its root is the collection's root, so `plugins/` is there.

Counter names: `user>>>EMAIL>>>traffic>>>uplink|downlink`. Reading with reset=True makes the read and
the reset one step in the core, so each byte is reported once; the caller must journal the result
before anything else (agent.journal).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from plugins.module_utils import core_api as client

log = logging.getLogger(__name__)

USER_PATTERN = "user>>>"
_SEP = ">>>"
_DIRECTIONS = ("uplink", "downlink")


def connect(address: str, core: str, timeout: float = 10.0) -> client.CoreAPI:
    """A CoreAPI for the core's API at ADDRESS (127.0.0.1:PORT); CORE is xray or v2ray. Close it after use."""
    return client.CoreAPI(address, core, timeout=timeout)


def parse_user_stats(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """{counter name: value} -> [{"email", "uplink", "downlink"}] sorted by email, users with no traffic left out.

    Names that are not per-user traffic counters, or carry a non-integer or negative value, are skipped
    (and logged): one odd counter must not cost every other user's report.
    """
    usage: dict[str, dict[str, int]] = {}
    for name, value in stats.items():
        parts = name.split(_SEP) if isinstance(name, str) else []
        # user>>>EMAIL>>>traffic>>>DIRECTION; an email is joined back should it ever contain ">>>".
        if len(parts) < 4 or parts[0] != "user" or parts[-2] != "traffic" or parts[-1] not in _DIRECTIONS:
            log.debug("ignoring counter %r", name)
            continue
        email = _SEP.join(parts[1:-2])
        if not email:
            log.warning("ignoring a traffic counter with an empty email: %r", name)
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            log.warning("ignoring counter %r with value %r", name, value)
            continue
        entry = usage.setdefault(email, {"uplink": 0, "downlink": 0})
        entry[parts[-1]] += value
    return [
        {"email": email, "uplink": counts["uplink"], "downlink": counts["downlink"]}
        for email, counts in sorted(usage.items())
        if counts["uplink"] or counts["downlink"]
    ]


def read_user_traffic(api: Any) -> list[dict[str, Any]]:
    """Read and reset every user's counters: [{"email", "uplink", "downlink"}], zero entries skipped.

    Raises grpc.RpcError (core unreachable) or CoreAPIError (refused); nothing was reset then.
    """
    return parse_user_stats(api.query_stats(USER_PATTERN, reset=True))


def peek_user_traffic(api: Any) -> list[dict[str, Any]]:
    """Every user's counters since the last read_user_traffic(), without resetting them (the quota watch)."""
    return parse_user_stats(api.query_stats(USER_PATTERN, reset=False))
