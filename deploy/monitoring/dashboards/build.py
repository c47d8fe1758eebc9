"""Grafana dashboards for rayfleet, generated with grafanalib (docs/monitoring.md).

    .venv/bin/python deploy/monitoring/dashboards/build.py          # writes ../grafana/dashboards/*.json
    .venv/bin/python deploy/monitoring/dashboards/build.py --check  # exit 1 if the committed JSON differs

Three dashboards: the fleet overview, one node in detail (a `node` variable), and sales. Every query names
metrics the control API or the node agent exports (tests/integration/test_monitoring.py checks each one
against a live scrape). The datasource is the one provisioned by grafana/provisioning/datasources/, by uid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, Panel, Stat, Target, Template, Templating, Time, TimeSeries

OUT = Path(__file__).resolve().parents[1] / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "rayfleet-prometheus"}
NODE = '{node="$node"}'


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def stat(title: str, expr: str, legend: str = "", unit: str = "none", description: str = "") -> Stat:
    return Stat(
        title=title, description=description, dataSource=DATASOURCE, targets=[target(expr, legend)], format=unit
    )


def series(title: str, *queries: tuple[str, str], unit: str = "short", description: str = "") -> TimeSeries:
    refs = "ABCDEFGH"
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(queries)],
        unit=unit,
    )


def laid_out(panels: Iterable[Panel], per_row: int = 4, height: int = 8) -> list[Panel]:
    """Place PANELS on Grafana's 24-column grid: stats 6 wide (4 a row), time series 12 wide (2 a row)."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        width = 24 // per_row if isinstance(panel, Stat) else 12
        h = 4 if isinstance(panel, Stat) else height
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        panel.gridPos = GridPos(h=h, w=width, x=x, y=y)
        placed.append(panel)
        x, row_height = x + width, max(row_height, h)
    return placed


def dashboard(uid: str, title: str, panels: list[Panel], templates: list[Template] | None = None) -> Dashboard:
    return Dashboard(
        uid=uid,
        title=title,
        tags=["rayfleet"],
        timezone="utc",
        refresh="1m",
        time=Time("now-24h", "now"),
        templating=Templating(templates or []),
        panels=laid_out(panels),
    ).auto_panel_ids()


def fleet_overview() -> Dashboard:
    return dashboard(
        "rayfleet-fleet",
        "rayfleet: fleet overview",
        [
            stat("Active configs", "rayfleet_active_configs"),
            stat("Active customers", "rayfleet_active_users"),
            stat("Payments pending review", "rayfleet_pending_payments"),
            stat("Pending over a day", "rayfleet_pending_payments_overdue"),
            stat("Nodes by status", "rayfleet_nodes", "{{status}}"),
            stat(
                "Open node alerts", "sum(rayfleet_node_alert)", description="Breached thresholds, as the API holds them"
            ),
            stat("Nodes out of sync", "count(rayfleet_node_sync_lag_revisions > 0) or vector(0)"),
            stat("RQ workers", "rayfleet_queue_workers"),
            series("CPU per node", ("rayfleet_node_cpu_percent", "{{node}}"), unit="percent"),
            series("Probe latency per node", ("rayfleet_node_probe_latency_seconds", "{{node}}"), unit="s"),
            series(
                "Throughput per node",
                ("rayfleet_node_bandwidth_bytes_per_second", "{{node}} {{direction}}"),
                unit="Bps",
            ),
            series(
                "Seconds since the last heartbeat",
                ("time() - rayfleet_node_last_heartbeat_timestamp_seconds", "{{node}}"),
                unit="s",
            ),
            series("Configs per node", ('rayfleet_node_configs{status="active"}', "{{node}}")),
            series("Job queues", ("rayfleet_queue_jobs", "{{queue}} {{state}}")),
            series(
                "API requests by status",
                ("sum by (status) (rate(rayfleet_http_requests_total[5m]))", "{{status}}"),
                unit="reqps",
            ),
            series(
                "API latency p95",
                ("histogram_quantile(0.95, sum by (le) (rate(rayfleet_http_request_seconds_bucket[5m])))", "p95"),
                unit="s",
            ),
        ],
    )


def node_detail() -> Dashboard:
    node = Template(
        name="node",
        label="Node",
        query="label_values(rayfleet_node_info, node)",
        dataSource=DATASOURCE,
        type="query",
        refresh=2,
        sort=1,
    )
    return dashboard(
        "rayfleet-node",
        "rayfleet: node detail",
        [
            stat("Status", f"rayfleet_node_info{NODE}", "{{status}} · {{location}} · {{core}}"),
            stat("Revisions behind", f"rayfleet_node_sync_lag_revisions{NODE}"),
            stat("Sync failing", f"rayfleet_node_sync_failing{NODE}"),
            stat("Since last heartbeat", f"time() - rayfleet_node_last_heartbeat_timestamp_seconds{NODE}", unit="s"),
            series(
                "CPU and its limit",
                (f"rayfleet_node_cpu_percent{NODE}", "cpu"),
                (f"rayfleet_node_cpu_limit_percent{NODE}", "limit"),
                unit="percent",
            ),
            series("Memory", (f"rayfleet_node_memory_percent{NODE}", "memory"), unit="percent"),
            series(
                "Probe latency and its limit",
                (f"rayfleet_node_probe_latency_seconds{NODE}", "latency"),
                (f"rayfleet_node_probe_latency_limit_seconds{NODE}", "limit"),
                unit="s",
            ),
            series(
                "Bandwidth use and its limit",
                (f"rayfleet_node_bandwidth_percent{NODE}", "busier direction"),
                (f"rayfleet_node_bandwidth_limit_percent{NODE}", "limit"),
                unit="percent",
                description="Only for a node with bandwidth_capacity_mbps",
            ),
            series("Throughput", (f"rayfleet_node_bandwidth_bytes_per_second{NODE}", "{{direction}}"), unit="Bps"),
            series("Configs by status", (f"rayfleet_node_configs{NODE}", "{{status}}")),
            series("Open alerts (API's judgement)", (f"rayfleet_node_alert{NODE}", "{{threshold}}")),
            series(
                "Agent: user traffic",
                (f"rate(rayfleet_agent_traffic_bytes_total{NODE}[5m])", "{{direction}}"),
                unit="Bps",
                description="From the agent's own endpoint (the rayfleet-agents job); empty without it",
            ),
            series(
                "Agent: heartbeat delivery",
                (f"rate(rayfleet_agent_heartbeats_sent_total{NODE}[5m])", "sent"),
                (f"rate(rayfleet_agent_heartbeats_failed_total{NODE}[5m])", "failed"),
                (f"rayfleet_agent_journal_pending_reports{NODE}", "journal backlog"),
            ),
            series(
                "Agent: core",
                (f"rayfleet_agent_core_up{NODE}", "core up"),
                (f"increase(rayfleet_agent_core_restarts_total{NODE}[1h])", "restarts in the hour"),
            ),
        ],
        [node],
    )


def sales() -> Dashboard:
    approved = 'status="approved"'
    return dashboard(
        "rayfleet-sales",
        "rayfleet: sales",
        [
            stat("Active configs", "rayfleet_active_configs"),
            stat("Active customers", "rayfleet_active_users"),
            stat("Payments pending review", "rayfleet_pending_payments"),
            stat("Oldest pending payment", "rayfleet_oldest_pending_payment_age_seconds", unit="s"),
            series(
                "Approved payments per day",
                (f"sum by (purpose) (delta(rayfleet_payments{{{approved}}}[1d]))", "{{purpose}}"),
            ),
            series(
                "Revenue per day (currency units)",
                (f"sum by (purpose) (delta(rayfleet_payments_amount_cents{{{approved}}}[1d])) / 100", "{{purpose}}"),
            ),
            series(
                "Rejected payments per day",
                ('sum by (purpose) (delta(rayfleet_payments{status="rejected"}[1d]))', "{{purpose}}"),
            ),
            series(
                "Customers and configs",
                ("rayfleet_active_users", "customers"),
                ("rayfleet_active_configs", "configs"),
            ),
        ],
    )


DASHBOARDS = {"fleet-overview.json": fleet_overview, "node-detail.json": node_detail, "sales.json": sales}


def render() -> dict[str, str]:
    """File name -> the dashboard's JSON, as committed."""
    return {
        name: json.dumps(build().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [
            name for name, text in rendered.items() if not (OUT / name).is_file() or (OUT / name).read_text() != text
        ]
        if stale:
            print(f"out of date: {', '.join(stale)}; run {Path(__file__).name} without --check", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
