"""What the agent journals and sends (agent/delivery.py): only usage the API can map, reports of a bounded
size, batches bounded by count and bytes, the refused reports named from a 422, incidents cut to the
API's limit. The same against the real API: tests/integration/test_agent_reporter.py."""

from __future__ import annotations

import logging

import pytest

from agent import delivery
from agent.delivery import (
    INCIDENT_DETAIL_MAX,
    MAX_REPORTS_PER_HEARTBEAT,
    UsageFilter,
    bounded_incident,
    encoded_size,
    next_batch,
    refused_indexes,
    split_usage,
)
from agent.metrics import AgentMetrics
from tests.unit.test_agent_metrics import make_agent, unit  # noqa: F401 - the fixture


def entry(email: str, down: int = 1) -> dict:
    return {"email": email, "uplink": 0, "downlink": down}


def test_unmappable_usage_is_dropped_and_each_name_logged_once(caplog):
    keep = UsageFilter()
    with caplog.at_level(logging.WARNING):
        first = keep([entry("cfg-1"), entry("ops@example"), entry("cfg-x"), entry("cfg-22"), entry("pool-x")])
        second = keep([entry("ops@example"), entry("cfg-3"), entry("pool-7")])  # the warm pool's identities
    assert [item["email"] for item in first] == ["cfg-1", "cfg-22"]
    assert [item["email"] for item in second] == ["cfg-3", "pool-7"]
    assert caplog.text.count("ops@example") == 1 and caplog.text.count("cfg-x") == 1


def test_a_big_period_becomes_several_reports():
    usage = [entry(f"cfg-{n}") for n in range(4_500)]
    chunks = split_usage(usage)
    assert [len(chunk) for chunk in chunks] == [2_000, 2_000, 500]
    assert [item for chunk in chunks for item in chunk] == usage


def test_batches_are_bounded_by_count_and_by_bytes():
    reports = [{"report_id": f"r{n}", "usage": [entry("cfg-1")] * 10} for n in range(300)]
    assert len(next_batch(reports, 10**9)) == MAX_REPORTS_PER_HEARTBEAT
    one = encoded_size(reports[0]) + 1
    assert len(next_batch(reports, 5 * one)) == 5
    assert len(next_batch(reports, 1)) == 1  # never empty: one report always goes


def test_the_refused_reports_are_read_from_a_422():
    details = {"json": {"reports": {"2": {"period_end": ["Must not be before period_start."]}, "7": {}}}}
    assert refused_indexes(details, 5) == {2}  # 7 is past the batch
    assert refused_indexes({"json": {"cpu": ["bad"]}}, 5) == set()
    assert refused_indexes(None, 5) == set()


def test_incidents_are_cut_to_the_apis_limit():
    long = bounded_incident({"kind": "core_restart_failed", "at": "x", "detail": "y" * 5_000})
    assert len(long["detail"]) == INCIDENT_DETAIL_MAX


def test_the_agent_journals_only_mappable_usage_in_bounded_reports(tmp_path, unit, monkeypatch):  # noqa: F811
    monkeypatch.setattr("agent.__main__.split_usage", lambda usage: delivery.split_usage(usage, 3))
    agent, _reporter, core = make_agent(tmp_path, AgentMetrics())
    core.stats = {f"user>>>cfg-{n}>>>traffic>>>downlink": 10 for n in range(1, 8)}
    core.stats["user>>>admin@ops>>>traffic>>>downlink"] = 99
    agent.record_traffic()
    reports = agent.journal.pending()
    assert [len(report["usage"]) for report in reports] == [3, 3, 1]
    assert all(item["email"].startswith("cfg-") for report in reports for item in report["usage"])
    # The agent's own traffic counter still sees everything the core served.
    assert agent.metrics.traffic["downlink"] == 7 * 10 + 99


def test_a_long_incident_never_blocks_the_heartbeat(tmp_path, unit, monkeypatch):  # noqa: F811
    agent, reporter, _core = make_agent(tmp_path, AgentMetrics())
    unit.state = "failed"
    monkeypatch.setattr(
        "agent.__main__.heal_core",
        lambda _service: {"kind": "core_restart_failed", "at": "2026-01-01T00:00:00+00:00", "detail": "z" * 9_000},
    )
    assert agent.tick() is True
    assert len(reporter.sent[-1]["incidents"][0]["detail"]) == INCIDENT_DETAIL_MAX


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR, logger="rayfleet.agent")
