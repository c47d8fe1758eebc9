"""Prometheus metrics: request counts and latencies, plus business gauges read at scrape time."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import Settings
from .database import Database
from .http_errors import error_body
from .jobs.queue import queue_figures
from .models import THRESHOLDS, utcnow
from .services.dashboard import stats
from .services.monitoring import node_figures, payment_figures
from .services.node_health import HealthPolicy

log = logging.getLogger(__name__)


class BusinessCollector(Collector):
    """Reads the dashboard numbers, the fleet's per-node figures and the payments from the database, and the
    job queues from Redis (production mode only), on each scrape. The series are listed in docs/monitoring.md."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.policy = HealthPolicy.from_settings(settings)
        # Short timeouts: a dead Redis must not hold the scrape (rayfleet_queue_up says it is down).
        self.redis = (
            redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
            if settings.redis_url
            else None
        )

    def collect(self) -> Iterator[Metric]:
        session = self.database.session()
        try:
            numbers = stats(session)
            now = utcnow()
            nodes = node_figures(session, self.policy)
            payments = payment_figures(session, now)
        finally:
            self.database.session.remove()
        for name in ("active_users", "active_configs", "pending_payments"):
            yield GaugeMetricFamily(f"rayfleet_{name}", name.replace("_", " ").capitalize(), value=numbers[name])
        by_status = GaugeMetricFamily("rayfleet_nodes", "Nodes by status", labels=["status"])
        for status, count in numbers["nodes_by_status"].items():
            by_status.add_metric([status], count)
        yield by_status
        yield from _payment_families(payments)
        yield from _node_families(nodes)
        if self.redis is not None:
            yield from _queue_families(self.redis)


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _payment_families(payments: dict[str, Any]) -> Iterator[Metric]:
    count = _gauge("rayfleet_payments", "Payments by status and purpose (all time)", ["status", "purpose"])
    amount = _gauge(
        "rayfleet_payments_amount_cents",
        "Sum of payment amounts by status and purpose, in the shop's smallest currency unit (all time)",
        ["status", "purpose"],
    )
    for key, value in payments["counts"].items():
        count.add_metric(list(key), value)
        amount.add_metric(list(key), payments["amounts"][key])
    yield count
    yield amount
    yield GaugeMetricFamily(
        "rayfleet_pending_payments_overdue", "Payments pending review for more than a day", value=payments["overdue"]
    )
    yield GaugeMetricFamily(
        "rayfleet_oldest_pending_payment_age_seconds",
        "How long the oldest pending payment has waited (0: none pending)",
        value=payments["oldest_pending_age_seconds"],
    )


def _node_families(nodes: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per node (label `node`: its unique name). A family without a value for a node has no series for it."""
    info = _gauge(
        "rayfleet_node_info", "1 per node, with its status and place", ["node", "status", "location", "region", "core"]
    )
    families = {
        "heartbeat": _gauge(
            "rayfleet_node_last_heartbeat_timestamp_seconds", "Unix time of the last heartbeat", ["node"]
        ),
        "cpu": _gauge("rayfleet_node_cpu_percent", "CPU use at the last heartbeat", ["node"]),
        "mem": _gauge("rayfleet_node_memory_percent", "Memory use at the last heartbeat", ["node"]),
        "traffic": _gauge(
            "rayfleet_node_bandwidth_bytes_per_second",
            "Interface throughput at the last heartbeat",
            ["node", "direction"],
        ),
        "bandwidth": _gauge(
            "rayfleet_node_bandwidth_percent",
            "The busier direction as a percent of bandwidth_capacity_mbps (nodes with a capacity)",
            ["node"],
        ),
        "latency": _gauge(
            "rayfleet_node_probe_latency_seconds",
            "Median TCP connect time to the probe targets at the last heartbeat",
            ["node"],
        ),
        "cpu_limit": _gauge("rayfleet_node_cpu_limit_percent", "The node's CPU health limit", ["node"]),
        "bandwidth_limit": _gauge(
            "rayfleet_node_bandwidth_limit_percent",
            "The node's bandwidth health limit (nodes with a capacity)",
            ["node"],
        ),
        "latency_limit": _gauge(
            "rayfleet_node_probe_latency_limit_seconds", "The node's latency health limit", ["node"]
        ),
        "dark_limit": _gauge(
            "rayfleet_node_heartbeat_limit_seconds",
            "Silence after which the node is dark (nodes expected to heartbeat: active, draining, offline)",
            ["node"],
        ),
        "alert": _gauge(
            "rayfleet_node_alert",
            "1 while the API holds the threshold breached (hysteresis applied)",
            ["node", "threshold"],
        ),
        "lag": _gauge("rayfleet_node_sync_lag_revisions", "Revisions the node has not applied yet", ["node"]),
        "failing": _gauge("rayfleet_node_sync_failing", "1 when the node lags and its last sync run failed", ["node"]),
        "configs": _gauge("rayfleet_node_configs", "Configs placed on the node, by status", ["node", "status"]),
    }
    for node in nodes:
        name = node["name"]
        info.add_metric([name, node["status"], node["location_tag"], node["region"], node["core"]], 1)
        if node["last_seen_at"] is not None:
            families["heartbeat"].add_metric([name], node["last_seen_at"].timestamp())
        metric, values, limits = node["metric"], node["values"], node["limits"]
        if metric is not None:
            families["cpu"].add_metric([name], metric.cpu)
            families["mem"].add_metric([name], metric.mem)
            families["traffic"].add_metric([name, "in"], metric.bandwidth_in)
            families["traffic"].add_metric([name, "out"], metric.bandwidth_out)
            if values.get("bandwidth") is not None:
                families["bandwidth"].add_metric([name], values["bandwidth"])
            if metric.latency_ms is not None:
                families["latency"].add_metric([name], metric.latency_ms / 1000)
        families["cpu_limit"].add_metric([name], limits["cpu"])
        families["latency_limit"].add_metric([name], limits["latency"] / 1000)
        if limits["bandwidth"] is not None:
            families["bandwidth_limit"].add_metric([name], limits["bandwidth"])
        if node["watched"]:
            families["dark_limit"].add_metric([name], limits["dark"])
        for threshold in THRESHOLDS:
            families["alert"].add_metric([name, threshold], 1 if threshold in node["breached"] else 0)
        families["lag"].add_metric([name], node["sync_lag"])
        families["failing"].add_metric([name], 1 if node["sync_state"] == "failing" else 0)
        for status, count in node["configs"].items():
            families["configs"].add_metric([name, status], count)
    yield info
    yield from families.values()


def _queue_families(connection: redis.Redis) -> Iterator[Metric]:
    try:
        figures = queue_figures(connection)
    except redis.RedisError as exc:
        log.warning("metrics: the job queues could not be read (%s)", type(exc).__name__)
        yield GaugeMetricFamily("rayfleet_queue_up", "1 when Redis answered for the job queues", value=0)
        return
    yield GaugeMetricFamily("rayfleet_queue_up", "1 when Redis answered for the job queues", value=1)
    jobs = _gauge(
        "rayfleet_queue_jobs", "RQ jobs by queue and state (queued, started, scheduled, failed)", ["queue", "state"]
    )
    for queue, states in figures["queues"].items():
        for state, count in states.items():
            jobs.add_metric([queue, state], count)
    yield jobs
    yield GaugeMetricFamily("rayfleet_queue_workers", "Live RQ workers", value=figures["workers"])


def init_metrics(app: Flask, database: Database, settings: Settings) -> None:
    token = settings.metrics_token
    registry = CollectorRegistry()
    requests = Counter("rayfleet_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry)
    latency = Histogram(
        "rayfleet_http_request_seconds", "HTTP request latency", ["method", "endpoint"], registry=registry
    )
    registry.register(BusinessCollector(database, settings))

    @app.before_request
    def _start_timer() -> None:
        g.rayfleet_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        # The endpoint name (not the raw path) keeps label cardinality bounded.
        endpoint = request.endpoint or "unmatched"
        requests.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("rayfleet_started")
        if started is not None:
            latency.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    @app.doc(hide=True)
    def metrics() -> Response:
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_body(401, "A metrics token is required."), 401
        elif not _from_this_machine():
            return error_body(
                401, "Set METRICS_TOKEN to scrape /metrics from another machine (it is open to loopback only)."
            ), 401
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _from_this_machine() -> bool:
    """A direct loopback client. A request that came through a proxy (Forwarded or X-Forwarded-For set)
    does not count: behind a local reverse proxy every client would otherwise look local."""
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
