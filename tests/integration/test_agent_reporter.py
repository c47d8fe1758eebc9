"""The agent's delivery against the real control API (PostgreSQL + Redis, served over HTTP):
traffic survives an API outage in the journal and is counted exactly once when the API returns."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from agent.__main__ import Agent
from agent.config import config_from_values
from agent.journal import Journal
from agent.reporter import DeliveryError, Reporter
from control_api import create_app
from control_api.models import Node, NodeMetric, Usage, User, UserConfig
from harness.services import free_port


class LiveAPI:
    """The app on a real HTTP port, which a test can stop and start again on the same port."""

    def __init__(self, app) -> None:
        self.app, self.port, self.server = app, free_port(), None

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class StaticHost:
    def collect(self) -> dict[str, float]:
        return {"cpu_percent": 3.0, "mem_percent": 20.0, "bandwidth_in_bps": 10.0, "bandwidth_out_bps": 20.0}


@pytest.fixture
def live(app):
    api = LiveAPI(app)
    api.start()
    yield api
    if api.server is not None:
        api.stop()


def make_config(app, node_id: int) -> int:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        user = User(telegram_id=8801, subscription_token="agent-test-token")
        session.add(user)
        session.flush()
        config = UserConfig(user_id=user.id, node_id=node_id, uuid="8b7c6d5e-4f3a-4b2c-9d1e-0f1a2b3c4d5e", kind="full")
        session.add(config)
        session.commit()
        return config.id


def usage_rows(app) -> tuple[int, int]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        count, down = session.execute(select(func.count(), func.coalesce(func.sum(Usage.bytes_out), 0))).one()
        return int(count), int(down)


def stored_latencies(app) -> list[float | None]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        return list(session.scalars(select(NodeMetric.latency_ms)))


def agent_for(live, principals, tmp_path) -> Agent:
    config = config_from_values(
        {
            "RAYFLEET_AGENT_API_URL": live.url,
            "RAYFLEET_AGENT_ALLOW_INSECURE_HTTP": "true",  # a loopback test server
            "RAYFLEET_AGENT_CLIENT_ID": principals.node.identifier,
            "RAYFLEET_AGENT_CLIENT_SECRET": principals.node.secret,
            "RAYFLEET_AGENT_JOURNAL_PATH": str(tmp_path / "journal.jsonl"),
            "RAYFLEET_AGENT_CORE_SERVICE": "rayfleet-core-not-on-this-machine",
        }
    )
    return Agent(config, Journal(config.journal_path), Reporter(config, timeout=3), collector=StaticHost())


def test_traffic_survives_an_api_outage_and_is_counted_once(app, live, principals, tmp_path):
    config_id = make_config(app, principals.node.principal_id)
    agent = agent_for(live, principals, tmp_path)
    report = {"period_start": "2026-11-26T10:00:00+00:00", "period_end": "2026-11-26T10:01:00+00:00"}
    agent.journal.append({**report, "usage": [{"email": f"cfg-{config_id}", "uplink": 100, "downlink": 5000}]})

    live.stop()
    for _ in range(3):  # several heartbeats while the control plane is down
        assert agent.tick() is False
    assert len(agent.journal.pending()) == 1
    assert agent.failures == 3

    live.start()
    assert agent.tick() is True
    assert agent.journal.pending() == []
    assert usage_rows(app) == (1, 5000)
    # The agent probed the API it reached (its default probe target): a real connect time was stored.
    stored = stored_latencies(app)
    assert stored and all(latency is not None and 0 <= latency < 3000 for latency in stored)


def test_a_lost_answer_redelivers_and_the_api_counts_it_once(app, live, principals, tmp_path):
    config_id = make_config(app, principals.node.principal_id)
    agent = agent_for(live, principals, tmp_path)
    agent.journal.append(
        {
            "period_start": "2026-11-26T10:00:00+00:00",
            "period_end": "2026-11-26T10:01:00+00:00",
            "usage": [{"email": f"cfg-{config_id}", "uplink": 1, "downlink": 777}],
        }
    )
    # The API stores the report, but the agent never learns it (as if the response was lost).
    answer = agent.reporter.send(agent.heartbeat())
    assert len(answer["accepted"]) == 1
    assert len(agent.journal.pending()) == 1
    assert agent.tick() is True  # redelivered: the API says duplicate, the journal lets it go
    assert agent.journal.pending() == []
    assert usage_rows(app) == (1, 777)


def test_a_revoked_token_is_replaced_and_bad_credentials_fail_clearly(app, live, principals, tmp_path):
    agent = agent_for(live, principals, tmp_path)
    assert agent.tick() is True
    token = agent.reporter._token
    agent.reporter.session.post(f"{live.url}/api/v1/auth/revoke", headers={"Authorization": f"Bearer {token}"})
    assert agent.tick() is True  # logged in again after the 401
    assert agent.reporter._token != token

    wrong = replace(agent.config, client_secret="not-the-secret")
    with pytest.raises(DeliveryError, match="login refused with HTTP 401"):
        Reporter(wrong, timeout=3).send(agent.heartbeat())


def write_journal(path, reports) -> None:
    """A journal as a long outage leaves it (one JSON report a line), written in one go."""
    path.write_text("".join(json.dumps(report) + "\n" for report in reports))


def usage_report(report_id: str, config_id: int, downlink: int, **overrides) -> dict:
    return {
        "report_id": report_id,
        "period_start": "2026-11-26T10:00:00+00:00",
        "period_end": "2026-11-26T10:01:00+00:00",
        "usage": [{"email": f"cfg-{config_id}", "uplink": 1, "downlink": downlink}],
        **overrides,
    }


def test_a_journal_of_ten_thousand_reports_drains_after_a_long_outage(app, live, principals, tmp_path):
    """Issue 13, item 7: batches the API accepts, several per round, until the journal is empty."""
    config_id = make_config(app, principals.node.principal_id)
    agent = agent_for(live, principals, tmp_path)
    write_journal(agent.journal.path, [usage_report(f"r{n}", config_id, 10) for n in range(10_000)])
    rounds = 0
    while agent.journal.pending():
        assert agent.tick() is True
        rounds += 1
        assert rounds < 50, "the journal does not drain"
    assert usage_rows(app) == (10_000, 100_000)
    assert agent.metrics.journal_pending == 0


def test_a_poisoned_report_is_quarantined_and_does_not_block_the_rest(app, live, principals, tmp_path):
    config_id = make_config(app, principals.node.principal_id)
    agent = agent_for(live, principals, tmp_path)
    poisoned = usage_report("bad-1", config_id, 999, period_end="2026-11-26T09:00:00+00:00")  # ends before it starts
    foreign = usage_report("mixed-1", config_id, 5)
    foreign["usage"].append({"email": "ops@example", "uplink": 1, "downlink": 1})  # the operator's own core user
    write_journal(
        agent.journal.path,
        [usage_report("good-1", config_id, 10), poisoned, foreign, usage_report("good-2", config_id, 20)],
    )
    assert agent.tick() is True
    assert agent.journal.pending() == []
    assert usage_rows(app) == (3, 35)  # good-1, the cfg entry of mixed-1, good-2
    quarantined = agent.journal.quarantined()
    assert [report["report_id"] for report in quarantined] == ["bad-1"]
    assert "422" in quarantined[0]["quarantine_reason"]
    assert agent.metrics.quarantined == 1
    # Nothing is resent forever: the next round sends metrics only, and succeeds.
    assert agent.tick() is True and agent.metrics.quarantined == 1


def test_batches_shrink_when_the_api_says_too_large(settings, principals, tmp_path):
    small = create_app(replace(settings, max_content_length=24 * 1024))
    api = LiveAPI(small)
    api.start()
    try:
        config_id = make_config(small, principals.node.principal_id)
        agent = agent_for(api, principals, tmp_path)
        padding = [{"email": f"cfg-{config_id}", "uplink": 1, "downlink": 1}] * 20  # ≈ 1 KB a report
        reports = [{**usage_report(f"big{n}", config_id, 1), "usage": padding} for n in range(300)]
        write_journal(agent.journal.path, reports)
        rounds = 0
        while agent.journal.pending():
            assert agent.tick() is True
            rounds += 1
            assert rounds < 20
        assert agent.max_batch_bytes < 24 * 1024  # learnt from the 413s
        assert agent.journal.quarantined() == []
        assert usage_rows(small) == (300 * 20, 300 * 20)
    finally:
        api.stop()
        small.extensions["rayfleet.db"].engine.dispose()


def test_the_metrics_arrive_even_when_no_report_can(app, live, principals, tmp_path):
    config_id = make_config(app, principals.node.principal_id)
    agent = agent_for(live, principals, tmp_path)
    write_journal(agent.journal.path, [usage_report("bad-only", config_id, 1, period_end="2000-01-01T00:00:00+00:00")])
    assert agent.tick() is True
    with app.app_context():
        node = app.extensions["rayfleet.db"].session().get(Node, principals.node.principal_id)
        assert node.last_seen_at is not None
    assert [report["report_id"] for report in agent.journal.quarantined()] == ["bad-only"]
