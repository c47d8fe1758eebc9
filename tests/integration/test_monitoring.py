"""deploy/monitoring (issue 18, item 2) with Debian's real Prometheus: promtool checks the committed scrape
config and rules and runs the rules' unit tests; the committed dashboards are what build.py generates; and a
Prometheus of the test's own (temp TSDB, a free loopback port: never the packaged service on :9090) scrapes a
gunicorn-served API with its metrics token and a node agent's /metrics, with the committed prometheus.yml
(only its targets and intervals changed). The business gauges it stores are the ones the API's data implies,
and every dashboard query and alert rule names only metrics present in that live scrape."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from agent.metrics import AgentMetrics, start_metrics_server
from control_api import create_app
from control_api.models import Node
from harness.services import free_port
from tests.conftest import JWT_TEST_KEY, create_admin, create_bot, make_settings, reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
VENV_BIN = Path(sys.prefix) / "bin"
NODE = "mon-1"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: apt-get install prometheus (scripts/test.sh does)"
    return path


def copy_of_monitoring(tmp: Path, token: str) -> Path:
    """deploy/monitoring as shipped, plus the token file an operator writes beside prometheus.yml."""
    target = tmp / "monitoring"
    shutil.copytree(MONITORING, target, ignore=shutil.ignore_patterns("metrics-token", "__pycache__"))
    (target / "metrics-token").write_text(token + "\n")
    return target


def promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_checks_the_config_and_the_rules_and_runs_their_unit_tests(tmp_path):
    directory = copy_of_monitoring(tmp_path, "any-token")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=directory)
    assert "16 rules found" in promtool("check", "rules", "rules/rayfleet.yml", cwd=directory)
    tests = sorted(path.name for path in (directory / "rules" / "tests").glob("*.yml"))
    out = promtool("test", "rules", *(f"rules/tests/{name}" for name in tests), cwd=directory)
    assert out.count("SUCCESS") == len(tests) and "FAILED" not in out


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    alerts = {rule["alert"] for group in load_rules()["groups"] for rule in group["rules"]}
    cases: dict[str, list[bool]] = {}
    for path in (MONITORING / "rules" / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    assert set(cases) == alerts
    for alert, fired in cases.items():
        assert True in fired and False in fired, f"{alert}: needs a firing and a not-firing case"


def load_build():
    spec = importlib.util.spec_from_file_location("dashboards_build", MONITORING / "dashboards" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboards_are_what_build_py_generates():
    rendered = load_build().render()
    committed = {path.name: path.read_text() for path in (MONITORING / "grafana" / "dashboards").glob("*.json")}
    assert committed == rendered, "run: .venv/bin/python deploy/monitoring/dashboards/build.py"


# --- metric names out of PromQL --------------------------------------------------------------------------

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and numbers left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings, with any $variable in them
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if match.group() in KEYWORDS or expr[match.end() :].lstrip().startswith("("):
            continue
        names.add(match.group())
    return names


def test_metric_names_are_read_out_of_promql():
    assert metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / 100') == {"a_bucket"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(b[5m]))) > 1e3") == {"b"}
    assert metric_names('time() - c > d and on (job, node) e{status=~"a|b"} or vector(0)') == {"c", "d", "e"}
    assert metric_names('f{node="$node"} offset 5m') == {"f"}


def dashboard_queries() -> list[str]:
    queries = []
    for dashboard in load_build().DASHBOARDS.values():
        data = dashboard().to_json_data()
        for panel in data["panels"]:
            queries += [target.expr for target in panel.targets]
        for template in data["templating"].list:
            queries.append(re.sub(r"^label_values\((\w+),.*\)$", r"\1", template.query))
    return queries


def load_rules() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "rules" / "rayfleet.yml").read_text())


# --- the live stack -----------------------------------------------------------------------------------------


@dataclass
class Stack:
    api_url: str
    prometheus_url: str
    token: str
    admin_headers: dict[str, str]

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["data"]["result"]


def wait_for(check, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out: {what}")


def answers(url: str, **kwargs: Any) -> bool:
    try:
        return requests.get(url, timeout=2, **kwargs).status_code == 200
    except requests.RequestException:
        return False


class Http:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.session = base, requests.Session()
        self.session.trust_env = False
        self.session.headers.update(headers)

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/api/v1{path}", timeout=30, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


def seed_through_the_api(api_url: str, app, admin, bot) -> None:
    """A node with a capacity, two customers who each paid (two pending payments, two temporary configs), the
    node's sync of them acknowledged by its agent (the configs active), and one heartbeat."""
    as_admin, as_bot = Http(api_url, admin.headers), Http(api_url, bot.headers)
    node = as_admin.call(
        "POST",
        "/nodes",
        201,
        json={
            "name": NODE,
            "region": "eu",
            "location_tag": "local",
            "core": "v2ray",
            "public_ip": "203.0.113.50",
            "tls_server_name": "mon.rayfleet.test",
            "inbounds": [{"profile": "vless-tcp-tls", "port": 443}],
        },
    )
    as_admin.call("PATCH", f"/nodes/{node['id']}", 200, json={"bandwidth_capacity_mbps": 100})
    with app.app_context():  # what the provision job does once the node is up
        session = app.extensions["rayfleet.db"].session()
        session.get(Node, node["id"]).status = "active"
        session.commit()
    plan = {"name": "Month", "location_tag": "local", "duration_days": 30, "max_devices": 2}
    plan = as_admin.call("POST", "/plans", 201, json={**plan, "data_limit_mb": 1024, "price_cents": 1500})
    for telegram_id in (8101, 8102):
        user = as_bot.call("PUT", f"/users/telegram/{telegram_id}", 201, json={"username": f"u{telegram_id}"})
        evidence = f"proof-{telegram_id}"
        body = {"user_id": user["id"], "plan_id": plan["id"], "amount_cents": 1500, "evidence_file_id": evidence}
        as_bot.call("POST", "/payments", 201, json={**body, "evidence_unique_id": f"unique-{evidence}"})
    login = {"kind": "node", "client_id": node["client_id"], "client_secret": node["client_secret"]}
    agent = Http(api_url, {})
    agent.session.headers["Authorization"] = (
        "Bearer " + agent.call("POST", "/auth/token", 200, json=login)["access_token"]
    )
    revision = as_admin.call("GET", f"/nodes/{node['id']}", 200)["desired_revision"]
    agent.call("POST", f"/nodes/{node['id']}/configs/sync", 200, json={"revision": revision})
    beat = {"cpu": 42.5, "mem": 30.0, "bandwidth_in": 1_000_000, "bandwidth_out": 2_500_000, "latency_ms": 12.0}
    agent.call("POST", "/nodes/heartbeat", 200, json={**beat, "core_active": True, "reports": []})


def prometheus_config(directory: Path, api_port: int, agent_port: int) -> Path:
    """The committed prometheus.yml with the test's targets, plain HTTP on loopback, and 1 s intervals."""
    config = yaml.safe_load((directory / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["rayfleet-api"]
    api.update(
        scheme="http",
        scrape_interval="1s",
        scrape_timeout="1s",
        static_configs=[{"targets": [f"127.0.0.1:{api_port}"]}],
    )
    jobs["rayfleet-agents"]["scrape_interval"] = "1s"
    agents = [{"targets": [f"127.0.0.1:{agent_port}"], "labels": {"node": NODE}}]  # a tunnel's local end
    (directory / "targets" / "agents.yml").write_text(yaml.safe_dump(agents))
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack(migrated_postgres: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("monitoring")
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()
    token = secrets.token_urlsafe(32)
    directory = copy_of_monitoring(tmp, token)
    app = create_app(make_settings(migrated_postgres, redis_url))
    client = app.test_client()
    admin, bot = create_admin(app, client, "monitor-admin"), create_bot(app, client, "monitor-bot")
    env = {
        **os.environ,
        "DATABASE_URL": migrated_postgres,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": JWT_TEST_KEY,
        "METRICS_TOKEN_FILE": str(directory / "metrics-token"),
        "SWEEP_INTERVAL_SECONDS": "0",
        "RAYFLEET_NODE_API_URL": "https://api.rayfleet.test",
        "LOG_LEVEL": "WARNING",
    }
    api_port, prometheus_port = free_port(), free_port()
    api_log, prometheus_log = (tmp / "gunicorn.log").open("wb"), (tmp / "prometheus.log").open("wb")
    argv = [str(VENV_BIN / "gunicorn"), "--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{api_port}"]
    api = subprocess.Popen(
        [*argv, "control_api:create_app()"], cwd=REPO, env=env, stdout=api_log, stderr=subprocess.STDOUT
    )
    agent_metrics = AgentMetrics()
    agent_metrics.heartbeat_succeeded(time.time(), 0.05)
    agent_metrics.observe_core(True)
    agent_metrics.add_traffic([{"uplink": 1000, "downlink": 5000}])
    agent_server = start_metrics_server(agent_metrics, 0)
    prometheus = None
    try:
        api_url = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: answers(f"{api_url}/api/v1/health") or api.poll() is not None, "gunicorn", 60)
        assert api.poll() is None, (tmp / "gunicorn.log").read_text()
        seed_through_the_api(api_url, app, admin, bot)
        config = prometheus_config(directory, api_port, agent_server.server_address[1])
        prometheus = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=prometheus_log,
            stderr=subprocess.STDOUT,
        )
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_for(lambda: answers(f"{prometheus_url}/-/ready") or prometheus.poll() is not None, "prometheus", 60)
        assert prometheus.poll() is None, (tmp / "prometheus.log").read_text()
        yield Stack(api_url, prometheus_url, token, admin.headers)
    finally:
        for process in (prometheus, api):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        agent_server.shutdown()
        agent_server.server_close()
        api_log.close()
        prometheus_log.close()
        app.extensions["rayfleet.db"].engine.dispose()


def scraped(stack: Stack) -> list[dict[str, Any]]:
    """Both targets, once each has been scraped successfully."""

    def up() -> list[dict[str, Any]] | None:
        targets = requests.get(f"{stack.prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return targets if len(targets) == 2 and all(target["health"] == "up" for target in targets) else None

    return wait_for(up, "both targets scraped", 60)


def test_prometheus_scrapes_the_api_with_its_token_and_the_agent(stack: Stack):
    jobs = {target["labels"]["job"]: target for target in scraped(stack)}
    assert set(jobs) == {"rayfleet-api", "rayfleet-agents"}
    assert jobs["rayfleet-agents"]["labels"]["node"] == NODE
    # The token is what let Prometheus in: without it the API refuses (a loopback client is not enough).
    assert requests.get(f"{stack.api_url}/metrics", timeout=10).status_code == 401
    assert answers(f"{stack.api_url}/metrics", headers={"Authorization": f"Bearer {stack.token}"})


def single(stack: Stack, promql: str) -> float:
    results = wait_for(lambda: stack.query(promql), f"a sample of {promql}", 30)
    assert len(results) == 1, results
    return float(results[0]["value"][1])


def test_business_gauges_hold_what_the_api_did(stack: Stack):
    scraped(stack)
    stats = Http(stack.api_url, stack.admin_headers).call("GET", "/dashboard/stats", 200)
    assert stats["pending_payments"] == 2 and stats["active_configs"] == 2
    assert single(stack, 'rayfleet_pending_payments{job="rayfleet-api"}') == 2
    assert single(stack, "rayfleet_active_configs") == 2
    assert single(stack, 'sum(rayfleet_payments_amount_cents{status="pending"})') == 3000
    assert single(stack, f'rayfleet_node_cpu_percent{{node="{NODE}"}}') == 42.5
    assert single(stack, f'rayfleet_node_configs{{node="{NODE}",status="active"}}') == 2
    assert single(stack, f'rayfleet_node_bandwidth_percent{{node="{NODE}"}}') == 20.0
    assert single(stack, f'rayfleet_agent_heartbeats_sent_total{{node="{NODE}"}}') == 1
    assert single(stack, 'rayfleet_queue_up{job="rayfleet-api"}') == 1


def live_names(stack: Stack) -> set[str]:
    scraped(stack)
    return {series["metric"]["__name__"] for series in stack.query('group by (__name__) ({__name__=~".+"})')}


def test_every_dashboard_query_names_only_scraped_metrics(stack: Stack):
    names = live_names(stack)
    queries = dashboard_queries()
    used = set().union(*(metric_names(query) for query in queries))
    assert len(queries) > 40 and len(used) > 30
    missing = {query: sorted(metric_names(query) - names) for query in queries if metric_names(query) - names}
    assert not missing, missing


def test_every_alert_rule_names_only_scraped_metrics_and_loads(stack: Stack):
    names = live_names(stack)
    exprs = {rule["alert"]: rule["expr"] for group in load_rules()["groups"] for rule in group["rules"]}
    missing = {alert: sorted(metric_names(expr) - names) for alert, expr in exprs.items() if metric_names(expr) - names}
    assert not missing, missing

    def evaluated() -> list[dict[str, Any]] | None:
        groups = requests.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return (
            rules if len(rules) == len(exprs) and all(rule["lastEvaluation"][:4] != "0001" for rule in rules) else None
        )

    rules = wait_for(evaluated, "every rule evaluated", 30)
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    # Nothing is wrong with this little fleet but a missing worker (no rq worker runs here): pending, not firing yet.
    firing = {rule["name"] for rule in rules if rule["state"] == "firing"}
    assert firing == set(), firing
