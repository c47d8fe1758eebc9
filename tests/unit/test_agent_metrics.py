"""agent.metrics: the agent's own /metrics (standard library only), scraped over real HTTP after fake ticks."""

from __future__ import annotations

import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import __main__ as agent_main
from agent.__main__ import Agent
from agent.config import config_from_values
from agent.journal import Journal
from agent.metrics import CONTENT_TYPE, AgentMetrics, start_metrics_server
from agent.reporter import DeliveryError

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value}; every family has HELP and TYPE before its samples."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            typed.add(name)
            continue
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert match["name"] in typed, f"{match['name']} has no TYPE line"
        samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    return samples


class FakeReporter:
    def __init__(self) -> None:
        self.fail = False
        self.sent: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise DeliveryError("the control API is unreachable: ConnectionError")
        self.sent.append(body)
        ids = [report["report_id"] for report in body["reports"]]
        return {"accepted": ids, "duplicates": [], "desired_revision": 0}


class FakeCore:
    def __init__(self) -> None:
        self.stats: dict[str, int] = {}

    def query_stats(self, pattern: str, reset: bool) -> dict[str, int]:
        assert pattern == "user>>>" and reset
        stats, self.stats = self.stats, {}
        return stats


class StaticHost:
    def collect(self) -> dict[str, float]:
        return {"cpu_percent": 1.0, "mem_percent": 2.0, "bandwidth_in_bps": 0.0, "bandwidth_out_bps": 0.0}


class FakeUnit:
    """Stands in for systemctl: the core's state, and what a restart does to it."""

    def __init__(self) -> None:
        self.state = "active"

    def status(self, service: str) -> str:
        return self.state

    def heal(self, service: str) -> dict[str, Any] | None:
        if self.state not in ("inactive", "failed"):
            return None
        self.state = "active"
        return {"kind": "core_restarted", "at": "2026-01-01T00:00:00+00:00", "detail": f"{service} restarted"}


@pytest.fixture
def unit(monkeypatch: pytest.MonkeyPatch) -> FakeUnit:
    fake = FakeUnit()
    monkeypatch.setattr(agent_main, "unit_status", fake.status)
    monkeypatch.setattr(agent_main, "heal_core", fake.heal)
    return fake


@pytest.fixture
def served() -> Iterator[tuple[AgentMetrics, str]]:
    metrics = AgentMetrics()
    server = start_metrics_server(metrics, 0)
    host, port = server.server_address[:2]
    yield metrics, f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        return parse(response.read().decode())


def make_agent(tmp_path: Path, metrics: AgentMetrics) -> tuple[Agent, FakeReporter, FakeCore]:
    config = config_from_values(
        {
            "RAYFLEET_AGENT_API_URL": "http://127.0.0.1:9",
            "RAYFLEET_AGENT_ALLOW_INSECURE_HTTP": "true",
            "RAYFLEET_AGENT_CLIENT_ID": "node-1",
            "RAYFLEET_AGENT_CLIENT_SECRET": "s3cret-value",
            "RAYFLEET_AGENT_JOURNAL_PATH": str(tmp_path / "journal.jsonl"),
        }
    )
    reporter, core = FakeReporter(), FakeCore()
    agent = Agent(
        config,
        Journal(config.journal_path),
        reporter,  # type: ignore[arg-type]
        core=core,
        collector=StaticHost(),
        metrics=metrics,
        probe=lambda targets, timeout: 4.2,  # ms; probes.py is tested on its own
    )
    return agent, reporter, core


def test_the_server_binds_loopback_only_and_starts_at_zero(served):
    _, base = served
    assert base.startswith("http://127.0.0.1:")
    values = scrape(base)
    assert math.isnan(values.pop("rayfleet_agent_probe_latency_seconds"))  # nothing measured yet
    assert values == {
        "rayfleet_agent_heartbeats_sent_total": 0,
        "rayfleet_agent_heartbeats_failed_total": 0,
        "rayfleet_agent_consecutive_failures": 0,
        "rayfleet_agent_journal_pending_reports": 0,
        "rayfleet_agent_last_heartbeat_success_timestamp_seconds": 0,
        "rayfleet_agent_last_heartbeat_latency_seconds": 0,
        "rayfleet_agent_core_up": 0,
        "rayfleet_agent_core_restarts_total": 0,
        'rayfleet_agent_traffic_bytes_total{direction="uplink"}': 0,
        'rayfleet_agent_traffic_bytes_total{direction="downlink"}': 0,
        "rayfleet_agent_reports_quarantined_total": 0,
    }


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/x", "/../metrics"])
def test_any_other_path_is_404(served, path):
    _, base = served
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(base + path, timeout=5)
    assert error.value.code == 404


def test_ticks_move_the_counters(served, tmp_path, unit):
    metrics, base = served
    agent, reporter, core = make_agent(tmp_path, metrics)

    core.stats = {"user>>>cfg-1>>>traffic>>>uplink": 100, "user>>>cfg-1>>>traffic>>>downlink": 5000}
    assert agent.tick()
    values = scrape(base)
    assert values["rayfleet_agent_heartbeats_sent_total"] == 1
    assert values["rayfleet_agent_core_up"] == 1
    assert values['rayfleet_agent_traffic_bytes_total{direction="uplink"}'] == 100
    assert values['rayfleet_agent_traffic_bytes_total{direction="downlink"}'] == 5000
    assert values["rayfleet_agent_journal_pending_reports"] == 0
    assert values["rayfleet_agent_last_heartbeat_success_timestamp_seconds"] > 1_700_000_000
    assert 0 <= values["rayfleet_agent_last_heartbeat_latency_seconds"] < 5
    assert values["rayfleet_agent_probe_latency_seconds"] == pytest.approx(0.0042)
    delivered_at = values["rayfleet_agent_last_heartbeat_success_timestamp_seconds"]

    # The API goes away: two failures, the reports stay in the journal and are counted as pending.
    reporter.fail = True
    core.stats = {"user>>>cfg-2>>>traffic>>>uplink": 7}
    assert not agent.tick()
    core.stats = {"user>>>cfg-2>>>traffic>>>downlink": 11}
    assert not agent.tick()
    values = scrape(base)
    assert values["rayfleet_agent_heartbeats_sent_total"] == 1
    assert values["rayfleet_agent_heartbeats_failed_total"] == 2
    assert values["rayfleet_agent_consecutive_failures"] == 2
    assert values["rayfleet_agent_journal_pending_reports"] == 2
    assert values['rayfleet_agent_traffic_bytes_total{direction="uplink"}'] == 107
    assert values['rayfleet_agent_traffic_bytes_total{direction="downlink"}'] == 5011
    assert values["rayfleet_agent_last_heartbeat_success_timestamp_seconds"] == delivered_at

    # The core died meanwhile; the API is back: the agent restarts the core and delivers everything.
    unit.state = "failed"
    reporter.fail = False
    assert agent.tick()
    values = scrape(base)
    assert values["rayfleet_agent_heartbeats_sent_total"] == 2
    assert values["rayfleet_agent_heartbeats_failed_total"] == 2
    assert values["rayfleet_agent_consecutive_failures"] == 0
    assert values["rayfleet_agent_journal_pending_reports"] == 0
    assert values["rayfleet_agent_core_restarts_total"] == 1
    assert values["rayfleet_agent_core_up"] == 1
    assert reporter.sent[-1]["incidents"][0]["kind"] == "core_restarted"
    assert len(reporter.sent[-1]["reports"]) == 2


def test_a_core_that_stays_down_reads_zero_and_is_not_counted_as_restarted(tmp_path, unit):
    metrics = AgentMetrics()
    agent, _, _ = make_agent(tmp_path, metrics)
    unit.state = "activating"  # not dead: no restart, but not up either
    assert agent.tick()
    values = parse(metrics.render())
    assert values["rayfleet_agent_core_up"] == 0
    assert values["rayfleet_agent_core_restarts_total"] == 0


def test_main_serves_metrics_unless_the_port_is_zero_or_once(monkeypatch, tmp_path):
    started: list[int] = []
    monkeypatch.setattr(agent_main, "start_metrics_server", lambda metrics, port, host: started.append(port))
    monkeypatch.setattr(agent_main.Agent, "run_forever", lambda self: None)
    monkeypatch.setattr(agent_main.Agent, "tick", lambda self: True)
    monkeypatch.setattr(agent_main.core_api, "connect", lambda address, core: None)
    for key in [key for key in os.environ if key.startswith("RAYFLEET_AGENT_")]:
        monkeypatch.delenv(key)
    config = tmp_path / "agent.env"
    base = (
        "RAYFLEET_AGENT_API_URL=http://127.0.0.1:9\nRAYFLEET_AGENT_ALLOW_INSECURE_HTTP=true\n"
        "RAYFLEET_AGENT_CLIENT_ID=n\nRAYFLEET_AGENT_CLIENT_SECRET=s\n"
        f"RAYFLEET_AGENT_JOURNAL_PATH={tmp_path / 'journal.jsonl'}\n"
    )
    config.write_text(base + "RAYFLEET_AGENT_METRICS_PORT=9911\n")
    assert agent_main.main(["--config", str(config)]) == 0
    assert agent_main.main(["--config", str(config), "--once"]) == 0
    config.write_text(base + "RAYFLEET_AGENT_METRICS_PORT=0\n")
    assert agent_main.main(["--config", str(config)]) == 0
    assert started == [9911]


def test_an_unexpected_error_costs_one_round_not_the_process(tmp_path, unit):
    metrics = AgentMetrics()
    agent, reporter, _ = make_agent(tmp_path, metrics)
    reporter.send = lambda body: {"unexpected": "answer"}  # no accepted/duplicates: a KeyError in tick()
    assert agent.safe_tick() is False
    assert agent.failures == 1
    assert parse(metrics.render())["rayfleet_agent_heartbeats_failed_total"] == 1
