"""Prometheus metrics: request counts and latencies, plus business gauges read at scrape time."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .database import Database
from .http_errors import error_body
from .services.dashboard import stats


class BusinessCollector(Collector):
    """Reads the dashboard numbers from the database on each scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        session = self.database.session()
        try:
            numbers = stats(session)
        finally:
            self.database.session.remove()
        for name in ("active_users", "active_configs", "pending_payments"):
            yield GaugeMetricFamily(f"rayfleet_{name}", name.replace("_", " ").capitalize(), value=numbers[name])
        nodes = GaugeMetricFamily("rayfleet_nodes", "Nodes by status", labels=["status"])
        for status, count in numbers["nodes_by_status"].items():
            nodes.add_metric([status], count)
        yield nodes


def init_metrics(app: Flask, database: Database, token: str) -> None:
    registry = CollectorRegistry()
    requests = Counter("rayfleet_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry)
    latency = Histogram(
        "rayfleet_http_request_seconds", "HTTP request latency", ["method", "endpoint"], registry=registry
    )
    registry.register(BusinessCollector(database))

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
