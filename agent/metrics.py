"""The agent's own Prometheus endpoint: http://127.0.0.1:<metrics_port>/metrics, standard library only.

Nodes have no prometheus_client (no pip on nodes), so the text exposition format (version 0.0.4) is
written here: a handful of counters and gauges kept by AgentMetrics under a lock, rendered on each
scrape by a ThreadingHTTPServer in a daemon thread. Any other path answers 404; only GET/HEAD exist.

    rayfleet_agent_heartbeats_sent_total                     counter  heartbeats the API accepted (2xx)
    rayfleet_agent_heartbeats_failed_total                   counter  heartbeats not delivered
    rayfleet_agent_consecutive_failures                      gauge    failures since the last delivery
    rayfleet_agent_journal_pending_reports                   gauge    traffic reports not yet acknowledged
    rayfleet_agent_last_heartbeat_success_timestamp_seconds  gauge    unix time of the last delivery (0: never)
    rayfleet_agent_last_heartbeat_latency_seconds            gauge    round trip of the last delivery
    rayfleet_agent_probe_latency_seconds                     gauge    median TCP connect time to the probe
                                                                      targets at the last heartbeat (NaN: none answered)
    rayfleet_agent_core_up                                   gauge    1 when the core's unit is active
    rayfleet_agent_core_restarts_total                       counter  restarts of a dead core by the agent
    rayfleet_agent_traffic_bytes_total{direction}            counter  user bytes read from the core
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import METRICS_HOST

log = logging.getLogger(__name__)

PREFIX = "rayfleet_agent_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATH = "/metrics"
DIRECTIONS = ("uplink", "downlink")

# name (without prefix) -> (type, help)
_FAMILIES: dict[str, tuple[str, str]] = {
    "heartbeats_sent_total": ("counter", "Heartbeats the control API accepted."),
    "heartbeats_failed_total": ("counter", "Heartbeats that were not delivered."),
    "consecutive_failures": ("gauge", "Failed heartbeats since the last delivered one."),
    "journal_pending_reports": ("gauge", "Traffic reports in the journal not yet acknowledged by the API."),
    "last_heartbeat_success_timestamp_seconds": ("gauge", "Unix time of the last delivered heartbeat (0: never)."),
    "last_heartbeat_latency_seconds": ("gauge", "Round trip of the last delivered heartbeat."),
    "probe_latency_seconds": (
        "gauge",
        "Median TCP connect time to the probe targets at the last heartbeat (NaN when none answered or before any).",
    ),
    "core_up": ("gauge", "1 when the core's systemd unit is active, else 0."),
    "core_restarts_total": ("counter", "Restarts of a dead core by the agent."),
    "traffic_bytes_total": ("counter", "User traffic read from the core, by direction."),
    "reports_quarantined_total": (
        "counter",
        "Traffic reports the API refused for good, set aside in the quarantine file.",
    ),
}


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class AgentMetrics:
    """The agent's counters and gauges; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.heartbeats_sent = 0
        self.heartbeats_failed = 0
        self.consecutive_failures = 0
        self.journal_pending = 0
        self.last_success_timestamp = 0.0
        self.last_latency_seconds = 0.0
        self.probe_latency_seconds = math.nan
        self.core_up = False
        self.core_restarts = 0
        self.traffic = dict.fromkeys(DIRECTIONS, 0)
        self.quarantined = 0

    def heartbeat_succeeded(self, at: float, latency_seconds: float) -> None:
        with self._lock:
            self.heartbeats_sent += 1
            self.consecutive_failures = 0
            self.last_success_timestamp = at
            self.last_latency_seconds = latency_seconds

    def observe_probe(self, latency_ms: float | None) -> None:
        with self._lock:
            self.probe_latency_seconds = math.nan if latency_ms is None else latency_ms / 1000

    def heartbeat_failed(self) -> None:
        with self._lock:
            self.heartbeats_failed += 1
            self.consecutive_failures += 1

    def observe_core(self, up: bool, incidents: Iterable[Mapping[str, Any]] = ()) -> None:
        restarted = sum(1 for incident in incidents if incident.get("kind") == "core_restarted")
        with self._lock:
            self.core_up = up
            self.core_restarts += restarted

    def add_traffic(self, usage: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for entry in usage:
                for direction in DIRECTIONS:
                    self.traffic[direction] += int(entry.get(direction, 0))

    def reports_quarantined(self, count: int) -> None:
        with self._lock:
            self.quarantined += count

    def set_journal_pending(self, count: int) -> None:
        with self._lock:
            self.journal_pending = count

    def render(self) -> str:
        """The Prometheus text exposition format, one sample per line, ending with a newline."""
        with self._lock:
            samples: dict[str, list[tuple[str, float]]] = {
                "heartbeats_sent_total": [("", self.heartbeats_sent)],
                "heartbeats_failed_total": [("", self.heartbeats_failed)],
                "consecutive_failures": [("", self.consecutive_failures)],
                "journal_pending_reports": [("", self.journal_pending)],
                "last_heartbeat_success_timestamp_seconds": [("", self.last_success_timestamp)],
                "last_heartbeat_latency_seconds": [("", self.last_latency_seconds)],
                "probe_latency_seconds": [("", self.probe_latency_seconds)],
                "core_up": [("", 1 if self.core_up else 0)],
                "core_restarts_total": [("", self.core_restarts)],
                "traffic_bytes_total": [(f'{{direction="{d}"}}', self.traffic[d]) for d in DIRECTIONS],
                "reports_quarantined_total": [("", self.quarantined)],
            }
        lines: list[str] = []
        for name, (kind, help_text) in _FAMILIES.items():
            full = PREFIX + name
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
            lines += [f"{full}{labels} {_number(value)}" for labels, value in samples[name]]
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server_version = "rayfleet-agent"
    metrics: AgentMetrics  # set on the subclass made by start_metrics_server()

    def _answer(self, head_only: bool) -> None:
        if self.path.split("?", 1)[0] != PATH:
            body, status, content_type = b"not found\n", 404, "text/plain; charset=utf-8"
        else:
            body, status, content_type = self.metrics.render().encode(), 200, CONTENT_TYPE
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("metrics %s - " + format, self.address_string(), *args)


def start_metrics_server(metrics: AgentMetrics, port: int, host: str = METRICS_HOST) -> ThreadingHTTPServer:
    """Serve METRICS on http://HOST:PORT/metrics from a daemon thread; PORT 0 picks a free port (tests).

    Returns the server: `server.server_address[1]` is the port, `server.shutdown()` stops it.
    """
    handler = type("MetricsHandler", (_Handler,), {"metrics": metrics})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="rayfleet-agent-metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d%s", host, server.server_address[1], PATH)
    return server
