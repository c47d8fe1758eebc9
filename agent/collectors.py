"""Host metrics (psutil) and the core unit's health (systemd).

psutil cannot tell a systemd unit's state, so unit_status() and heal_core() call `systemctl` with a
fixed argv and a validated unit name (no shell).
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*$")
# `systemctl is-active` states after which a restart is the cure. Transitional states settle by
# themselves; "unknown" (no systemd, no bus) must not trigger a blind restart.
DEAD_STATES = frozenset({"inactive", "failed"})
SYSTEMCTL_TIMEOUT = 30.0


@dataclass(frozen=True)
class NetSample:
    """Byte counters per network interface (loopback excluded) at a monotonic time."""

    at: float
    received: Mapping[str, int] = field(default_factory=dict)
    sent: Mapping[str, int] = field(default_factory=dict)


def net_sample() -> NetSample:
    counters = psutil.net_io_counters(pernic=True)
    nics = {name: value for name, value in counters.items() if name != "lo"}
    return NetSample(
        at=time.monotonic(),
        received={name: value.bytes_recv for name, value in nics.items()},
        sent={name: value.bytes_sent for name, value in nics.items()},
    )


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    total = 0
    for nic, value in after.items():
        previous = before.get(nic)
        if previous is None:
            continue  # a new interface: this sample is its baseline (its total may span days)
        # A counter that went down was reset (driver reload, interface recreated): all of VALUE was
        # counted since then. Never negative.
        total += value if value < previous else value - previous
    return total


def bandwidth(before: NetSample, after: NetSample) -> dict[str, float]:
    """{"in": bytes/s, "out": bytes/s} between two samples; zeros when no time passed."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return {"in": 0.0, "out": 0.0}
    return {
        "in": _delta(before.received, after.received) / elapsed,
        "out": _delta(before.sent, after.sent) / elapsed,
    }


class HostCollector:
    """cpu %, memory % and bandwidth since the previous collect() (the first one primes the counters)."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only starts psutil's measurement
        self._last = net_sample()

    def collect(self) -> dict[str, float]:
        sample = net_sample()
        rates = bandwidth(self._last, sample)
        self._last = sample
        return {
            "cpu_percent": float(psutil.cpu_percent(interval=None)),
            "mem_percent": float(psutil.virtual_memory().percent),
            "bandwidth_in_bps": rates["in"],
            "bandwidth_out_bps": rates["out"],
        }


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemctl")
    if binary is None:
        raise FileNotFoundError("systemctl not found on PATH")
    argv = [binary, *args]
    return subprocess.run(  # noqa: S603 - fixed argv, no shell, the unit name is validated by the callers
        argv, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False
    )


def check_unit_name(service: str) -> str:
    if not _UNIT.match(service):
        raise ValueError(f"not a systemd unit name: {service!r}")
    return service


def unit_status(service: str) -> str:
    """`systemctl is-active SERVICE`: active, inactive, failed, activating, … or "unknown"."""
    check_unit_name(service)
    try:
        result = _systemctl("is-active", service)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def heal_core(service: str, now: datetime.datetime | None = None) -> dict[str, Any] | None:
    """Restart SERVICE if it is inactive or failed; None otherwise, else an incident for the heartbeat.

    kind is "core_restarted" when `systemctl restart` succeeded, "core_restart_failed" when it did not.
    """
    status = unit_status(service)
    if status not in DEAD_STATES:
        return None
    at = (now or datetime.datetime.now(datetime.UTC)).isoformat()
    try:
        result = _systemctl("restart", service)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"kind": "core_restart_failed", "at": at, "detail": f"{service} was {status}; restart: {exc}"}
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip()[:500]
        return {
            "kind": "core_restart_failed",
            "at": at,
            "detail": f"{service} was {status}; restart exited {result.returncode}: {reason}",
        }
    return {"kind": "core_restarted", "at": at, "detail": f"{service} was {status}; restarted"}
