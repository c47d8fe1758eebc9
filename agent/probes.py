"""The node's latency: the median TCP connect time to its probe targets, standard library only.

What a heartbeat's `latency_ms` means: the median, over the targets that answered, of the time a TCP
handshake from this node to HOST:PORT took (one network round trip plus the target's accept), by
default to the control API. It is the node's view of the network, not a customer's latency to the
node. A name is resolved before the clock starts (DNS is not part of the measure); each connection is
closed as soon as it is open, nothing is sent. Targets are probed one after another, so a round
takes at most len(targets) x timeout.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterable

Target = tuple[str, int]


def parse_target(raw: str) -> Target:
    """ "host:port" or "[v6]:port" -> (host, port); ValueError with a readable reason otherwise."""
    text = raw.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise ValueError(f"expected [IPV6]:PORT, got {raw!r}")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected HOST:PORT (an IPv6 address in brackets), got {raw!r}")
    if not host or any(char.isspace() or char in "/[]@" for char in host):
        raise ValueError(f"expected HOST:PORT with a host name or address, got {raw!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port must be 1-65535, got {raw!r}")
    return host, int(port)


def format_target(target: Target) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_seconds(target: Target, timeout: float) -> float | None:
    """Seconds one TCP connect to TARGET took (its first resolved address), None when it failed."""
    host, port = target
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]
    except (OSError, IndexError):
        return None
    started = time.monotonic()
    try:
        with socket.create_connection(address[:2], timeout=timeout):
            return time.monotonic() - started
    except OSError:  # refused, unreachable, timed out
        return None


def probe_latency_ms(targets: Iterable[Target], timeout: float) -> float | None:
    """The median connect time to TARGETS in ms (0.1 ms), over those that answered; None when none did."""
    times = [seconds for target in targets if (seconds := connect_seconds(target, timeout)) is not None]
    if not times:
        return None
    return round(statistics.median(times) * 1000, 1)
