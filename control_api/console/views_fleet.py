"""Overview (the dashboard numbers and charts) and Nodes (state and the admin's actions on them)."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from ..extensions import db_session
from ..jobs.dispatch import job_queue
from ..services import alerts as alert_service
from ..services import dashboard as dashboard_service
from ..services import nodes as node_service
from ..services import placement, reports, trends
from ..services import principals as principal_service
from ..services.node_health import HealthPolicy
from . import charts
from .session import bp, console_settings, current_admin, login_required

# What a finished action says on the page it returns to (fixed texts: nothing from the query is shown).
NODE_DONE = {
    "provision": "Provisioning queued.",
    "provision_coalesced": "A provisioning job for this node was already waiting.",
    "drain": "Draining: no new sales, its dynamic configs are moving.",
    "undrain": "Back in sales.",
    "disable": "Disabled: its agent's token stops working.",
    "enable": "Enabled.",
}


def _policy() -> HealthPolicy:
    return HealthPolicy.from_settings(console_settings())


@bp.get("/")
@login_required
def overview():
    session = db_session()
    stats = dashboard_service.stats(session)
    today = reports.sales_report(session, reports.window(None, None))
    sales = trends.daily_sales(session, days=30)
    day_labels = [row["day"].strftime("%m-%d") for row in sales]
    traffic = trends.traffic_per_node(session, days=14)
    nodes = node_service.list_nodes(session, current_admin(), None, console_settings().node_stale_after_seconds)
    names = {node["id"]: node["name"] for node in nodes}
    metrics = trends.node_metrics(session, hours=24, points=48)
    cpu_labels, cpu_series, bw_series = _metric_series(metrics, names)
    configs = trends.configs_by_status(session)
    chart_list = [
        charts.bar_chart(day_labels, [row["count"] for row in sales], title="Payments approved per day (30 days)"),
        charts.bar_chart(
            day_labels,
            [row["revenue_cents"] for row in sales],
            fmt=charts.money,
            title="Revenue per day (30 days)",
        ),
        charts.bar_chart(list(configs), list(configs.values()), title="Configs by status (now)"),
        charts.line_chart(
            [d.strftime("%m-%d") for d in traffic["days"]],
            traffic["series"],
            fmt=charts.human_bytes,
            title="Traffic per node per day (14 days)",
        ),
        charts.line_chart(cpu_labels, cpu_series, fmt=lambda v: f"{v:.0f}%", title="Node CPU (24 hours)"),
        charts.line_chart(cpu_labels, bw_series, fmt=charts.human_rate, title="Node bandwidth (24 hours)"),
    ]
    return render_template(
        "console/overview.html", stats=stats, today=today, charts=chart_list, money=charts.money, nodes=nodes
    )


def _metric_series(metrics: dict, names: dict[int, str]) -> tuple[list[str], dict, dict]:
    """Per node name, CPU and bandwidth on a shared time axis (the buckets of the busiest node)."""
    longest = max(metrics.values(), key=len, default=[])
    labels = [point["at"].strftime("%H:%M") for point in longest]
    cpu = {names.get(node_id, f"node {node_id}"): [p["cpu"] for p in points] for node_id, points in metrics.items()}
    bandwidth = {
        names.get(node_id, f"node {node_id}"): [p["bandwidth_bps"] for p in points]
        for node_id, points in metrics.items()
    }
    return labels, cpu, bandwidth


@bp.get("/nodes")
@login_required
def nodes():
    session = db_session()
    items = node_service.list_nodes(session, current_admin(), None, console_settings().node_stale_after_seconds)
    alerts = {alert["node_id"]: alert for alert in alert_service.list_alerts(session, current_admin(), None, _policy())}
    metrics = trends.node_metrics(session, hours=24, points=48)
    loads = placement.node_loads(session)
    rows = []
    for node in items:
        points = metrics.get(node["id"], [])
        rows.append(
            {
                "node": node,
                "alert": alerts.get(node["id"]),
                "load": loads.get(node["id"], 0),
                "cpu_spark": charts.sparkline([p["cpu"] for p in points], top=100),
                "bw_spark": charts.sparkline([p["bandwidth_bps"] for p in points]),
            }
        )
    done = NODE_DONE.get(request.args.get("done", ""))
    return render_template("console/nodes.html", rows=rows, done=done, human_rate=charts.human_rate)


@bp.post("/nodes/<int:node_id>/provision")
@login_required
def node_provision(node_id: int):
    queued = node_service.request_provisioning(
        db_session(), current_admin(), node_id, job_queue().enqueue_provision, console_settings()
    )
    return redirect(url_for("console.nodes", done="provision" if queued else "provision_coalesced"))


@bp.post("/nodes/<int:node_id>/drain")
@login_required
def node_drain(node_id: int):
    node_service.drain_node(
        db_session(),
        current_admin(),
        node_id,
        request.form.get("now") == "true",
        job_queue().enqueue_migration,
        console_settings().node_stale_after_seconds,
    )
    return redirect(url_for("console.nodes", done="drain"))


@bp.post("/nodes/<int:node_id>/undrain")
@login_required
def node_undrain(node_id: int):
    node_service.undrain_node(db_session(), current_admin(), node_id, console_settings().node_stale_after_seconds)
    return redirect(url_for("console.nodes", done="undrain"))


@bp.post("/nodes/<int:node_id>/<any(disable, enable):verb>")
@login_required
def node_enable(node_id: int, verb: str):
    principal_service.set_enabled(db_session(), current_admin(), "nodes", verb == "enable", principal_id=node_id)
    return redirect(url_for("console.nodes", done=verb))
