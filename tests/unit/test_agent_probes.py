"""agent.probes: the heartbeat's latency_ms is the median TCP connect time to the probe targets.

Real sockets on loopback only, on ports the kernel picks (bound to 127.0.0.1 port 0).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from agent import probes
from agent.config import ConfigError, config_from_values, load_config
from agent.metrics import AgentMetrics
from agent.probes import format_target, parse_target, probe_latency_ms
from tests.unit.test_agent_metrics import make_agent, parse, unit  # noqa: F401 - the fixture

REQUIRED = {
    "RAYFLEET_AGENT_API_URL": "https://api.rayfleet.test/",
    "RAYFLEET_AGENT_CLIENT_ID": "node-7",
    "RAYFLEET_AGENT_CLIENT_SECRET": "s3cret",
}


@pytest.fixture
def listeners() -> Iterator[list[tuple[str, int]]]:
    """Three listening sockets on loopback (the kernel completes the handshakes; nobody accepts)."""
    sockets = []
    for _ in range(3):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        sockets.append(server)
    yield [server.getsockname()[:2] for server in sockets]
    for server in sockets:
        server.close()


@pytest.fixture
def refused() -> tuple[str, int]:
    """A loopback port nothing listens on: bound and closed again, so a connect there is refused."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()[:2]
    probe.close()
    return address


def test_the_median_over_the_targets_that_answered(listeners, monkeypatch):
    latency = probe_latency_ms(listeners, timeout=2)
    assert latency is not None and 0 <= latency < 1000
    assert latency == round(latency, 1)

    # The median, in ms rounded to 0.1: three targets taking 5, 1 and 30 ms give 5.0.
    fake = dict(zip(listeners, (0.005, 0.001, 0.030), strict=True))
    monkeypatch.setattr(probes, "connect_seconds", lambda target, timeout: fake[target])
    assert probe_latency_ms(listeners, timeout=2) == 5.0
    fake[listeners[0]] = 0.00123
    assert probe_latency_ms(listeners[:2], timeout=2) == 1.1  # even count: the mean of the middle two


def test_a_refused_target_is_skipped_and_all_refused_is_none(listeners, refused):
    assert probes.connect_seconds(refused, timeout=2) is None
    assert probe_latency_ms([refused, listeners[0]], timeout=2) is not None
    assert probe_latency_ms([refused, refused], timeout=2) is None
    assert probe_latency_ms([], timeout=2) is None
    assert probe_latency_ms([("name.invalid", 443)], timeout=2) is None  # unresolvable (RFC 6761): failed


def test_a_target_that_never_accepts_times_out():
    """A listener whose accept queue is full: Linux drops further SYNs, so the connect times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    target = server.getsockname()[:2]
    clients = []
    try:
        for _ in range(8):  # fill the queue: each connection the kernel completes stays unaccepted
            client = socket.socket()
            client.settimeout(0.3)
            try:
                client.connect(target)
            except TimeoutError:
                client.close()
                break
            clients.append(client)
        else:
            pytest.skip("this kernel kept completing handshakes to a full accept queue")
        started = time.monotonic()
        assert probe_latency_ms([target], timeout=0.3) is None
        assert 0.25 <= time.monotonic() - started < 3
    finally:
        for client in clients:
            client.close()
        server.close()


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("api.example.com:443", ("api.example.com", 443)),
        (" 192.0.2.7:8443 ", ("192.0.2.7", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[::1]:1", ("::1", 1)),
    ],
)
def test_targets_are_host_port(raw, target):
    assert parse_target(raw) == target
    assert parse_target(format_target(target)) == target


@pytest.mark.parametrize(
    "raw", ["api.example.com", "api.example.com:", ":443", "host:0", "host:65536", "host:https", "2001:db8::1:443",
            "[2001:db8::1]", "[192.0.2.7]:80", "a b:80", "user@host:80"],
)  # fmt: skip
def test_malformed_targets_are_refused(raw):
    with pytest.raises(ValueError, match=r"expected|port"):
        parse_target(raw)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://api.rayfleet.test/", ("api.rayfleet.test", 443)),
        ("https://api.rayfleet.test:8443/base", ("api.rayfleet.test", 8443)),
        ("http://192.0.2.1", ("192.0.2.1", 80)),
        ("http://[2001:db8::5]:8080", ("2001:db8::5", 8080)),
    ],
)
def test_the_default_target_is_the_control_api(url, target):
    config = load_config(
        environ={**REQUIRED, "RAYFLEET_AGENT_API_URL": url, "RAYFLEET_AGENT_ALLOW_INSECURE_HTTP": "true"}
    )
    assert config.probe_targets == (target,)
    assert config.probe_timeout_seconds == 2.0
    blank = load_config(environ={**REQUIRED, "RAYFLEET_AGENT_PROBE_TARGETS": " , "})
    assert blank.probe_targets == (("api.rayfleet.test", 443),)


def test_explicit_targets_and_timeout():
    config = config_from_values(
        {
            **REQUIRED,
            "RAYFLEET_AGENT_PROBE_TARGETS": "de.example.net:443, [2001:db8::9]:8443,192.0.2.7:80",
            "RAYFLEET_AGENT_PROBE_TIMEOUT_SECONDS": "0.5",
        }
    )
    assert config.probe_targets == (("de.example.net", 443), ("2001:db8::9", 8443), ("192.0.2.7", 80))
    assert config.probe_timeout_seconds == 0.5


def test_bad_probe_settings_give_readable_problems():
    with pytest.raises(ConfigError) as caught:
        config_from_values(
            {
                **REQUIRED,
                "RAYFLEET_AGENT_PROBE_TARGETS": "ok.example:443,nope,host:70000," + ",".join(["h:1"] * 8),
                "RAYFLEET_AGENT_PROBE_TIMEOUT_SECONDS": "60",
            }
        )
    assert caught.value.problems == [
        "RAYFLEET_AGENT_PROBE_TARGETS: expected HOST:PORT (an IPv6 address in brackets), got 'nope'",
        "RAYFLEET_AGENT_PROBE_TARGETS: the port must be 1-65535, got 'host:70000'",
        "RAYFLEET_AGENT_PROBE_TARGETS may list at most 8 targets, got 9",
        "RAYFLEET_AGENT_PROBE_TIMEOUT_SECONDS must be between 0.1 and 30, got '60'",
    ]
    for timeout in ("soon", "nan", "0"):
        with pytest.raises(ConfigError, match="PROBE_TIMEOUT_SECONDS must be"):
            config_from_values({**REQUIRED, "RAYFLEET_AGENT_PROBE_TIMEOUT_SECONDS": timeout})
    with pytest.raises(ConfigError, match="API_URL has a port that is not 1-65535"):
        config_from_values({**REQUIRED, "RAYFLEET_AGENT_API_URL": "https://api.rayfleet.test:0"})


def test_each_heartbeat_carries_the_probes_latency(tmp_path, unit):  # noqa: F811 - the fixture
    metrics = AgentMetrics()
    agent, reporter, _ = make_agent(tmp_path, metrics)
    asked: list[tuple[object, float]] = []
    answers = iter([12.5, None])

    def fake_probe(targets, timeout):
        asked.append((targets, timeout))
        return next(answers)

    agent.probe = fake_probe
    assert agent.tick()
    assert reporter.sent[-1]["latency_ms"] == 12.5
    assert parse(metrics.render())["rayfleet_agent_probe_latency_seconds"] == pytest.approx(0.0125)
    assert asked == [(agent.config.probe_targets, agent.config.probe_timeout_seconds)]
    assert agent.config.probe_targets == (("127.0.0.1", 9),)  # the API URL's host and port

    assert agent.tick()  # measured again each heartbeat; nothing answered this time
    assert reporter.sent[-1]["latency_ms"] is None
    assert "rayfleet_agent_probe_latency_seconds NaN" in metrics.render()
