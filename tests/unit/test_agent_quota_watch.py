"""The agent's quota watch: between heartbeats, the configs the API named as close to their cap have their
counters read (never reset) every QUOTA_CHECK_SECONDS, and the next round starts as soon as one reaches the
bytes it had left."""

from __future__ import annotations

from typing import Any

from agent.__main__ import QUOTA_CHECK_SECONDS, Agent
from agent.config import config_from_values

REQUIRED = {
    "RAYFLEET_AGENT_API_URL": "https://api.example.net",
    "RAYFLEET_AGENT_CLIENT_ID": "node-1",
    "RAYFLEET_AGENT_CLIENT_SECRET": "s" * 32,
}


class Core:
    """The core's stats: each read adds STEP bytes of downlink to cfg-1 (a download in progress)."""

    def __init__(self, step: int) -> None:
        self.step, self.down, self.resets = step, 0, 0

    def query_stats(self, pattern: str, reset: bool = False) -> dict[str, Any]:
        self.down += self.step
        if reset:
            self.resets += 1
        return {"user>>>cfg-1>>>traffic>>>downlink": self.down, "user>>>cfg-2>>>traffic>>>downlink": 5}


def agent_with(core: Core) -> Agent:
    return Agent(config_from_values(REQUIRED), None, None, core=core, collector=object())  # type: ignore[arg-type]


def test_the_next_round_starts_when_a_watched_config_reaches_its_cap():
    core = Core(step=400)
    agent = agent_with(core)
    agent.quota_watch = {"cfg-1": 1000}
    slept: list[float] = []
    agent.wait_for_next_round(60, sleep=slept.append)
    assert slept == [QUOTA_CHECK_SECONDS] * 3  # 400, 800, 1200 >= 1000: the third check ends the wait
    assert core.resets == 0, "the watch must never reset the counters the journal reads"
    assert agent.quota_watch == {}  # reported once; the next answer names it again if still served


def test_without_a_watch_or_below_the_caps_the_interval_is_slept_whole():
    agent = agent_with(Core(step=1))
    slept: list[float] = []
    agent.wait_for_next_round(2, sleep=slept.append)
    assert len(slept) == 1 and 1.9 < slept[0] <= 2

    agent.quota_watch = {"cfg-2": 10}  # cfg-2 stays at 5 bytes
    slept.clear()
    agent.wait_for_next_round(0.2, sleep=lambda seconds: slept.append(seconds))
    assert agent.quota_watch == {"cfg-2": 10}


def test_a_core_that_cannot_be_read_never_ends_the_wait_early():
    class Down:
        def query_stats(self, pattern: str, reset: bool = False) -> dict[str, Any]:
            raise OSError("connection refused")

    agent = agent_with(Down())  # type: ignore[arg-type]
    agent.quota_watch = {"cfg-1": 1}
    assert agent.cap_reached() is False and agent.quota_watch == {"cfg-1": 1}
