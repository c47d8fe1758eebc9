"""Per-user traffic from the core's StatsService, through the xray role's own gRPC client.

The client is not copied: this module loads `rayfleet_core_api.py` (hand-encoded messages, needs only
grpcio) from the first of these places that has it:

1. next to the agent package — the node layout: the node_agent role installs
   `<prefix>/agent/` and copies roles/xray/module_utils/rayfleet_core_api.py to
   `<prefix>/rayfleet_core_api.py`, beside it;
2. the repo: `roles/xray/module_utils/rayfleet_core_api.py` (running from a checkout, tests).

If a module named `rayfleet_core_api` is already loaded (e.g. by Ansible-style test helpers), it is
reused, so its CoreAPIError class stays one class.

Counter names: `user>>>EMAIL>>>traffic>>>uplink|downlink`. Reading with reset=True makes the read and
the reset one step in the core, so each byte is reported once; the caller must journal the result
before anything else (agent.journal).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

MODULE_NAME = "rayfleet_core_api"
_PACKAGE_DIR = Path(__file__).resolve().parent
CANDIDATES = (
    _PACKAGE_DIR.parent / f"{MODULE_NAME}.py",
    _PACKAGE_DIR.parent / "roles" / "xray" / "module_utils" / f"{MODULE_NAME}.py",
)
USER_PATTERN = "user>>>"
_SEP = ">>>"
_DIRECTIONS = ("uplink", "downlink")


@cache
def client_module() -> ModuleType:
    """The rayfleet_core_api module (CoreAPI, CoreAPIError), loaded from the first CANDIDATES path."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    for path in CANDIDATES:
        if path.is_file():
            spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[MODULE_NAME] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[MODULE_NAME]
                raise
            return module
    raise ImportError(f"{MODULE_NAME}.py not found; looked in: " + ", ".join(str(path) for path in CANDIDATES))


def connect(address: str, core: str, timeout: float = 10.0) -> Any:
    """A CoreAPI for the core's API at ADDRESS (127.0.0.1:PORT); CORE is xray or v2ray. Close it after use."""
    return client_module().CoreAPI(address, core, timeout=timeout)


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
