"""The agent's delivery against the real control API (PostgreSQL + Redis, served over HTTP):
traffic survives an API outage in the journal and is counted exactly once when the API returns."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from agent.__main__ import Agent
from agent.config import config_from_values
from agent.journal import Journal
from agent.reporter import DeliveryError, Reporter
from control_api.models import Usage, User, UserConfig
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


def agent_for(live, principals, tmp_path) -> Agent:
    config = config_from_values(
        {
            "RAYFLEET_AGENT_API_URL": live.url,
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
    assert agent.last_latency_ms is not None


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
