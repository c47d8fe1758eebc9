"""agent.config: KEY=VALUE file + environment (environment wins), readable errors, the secret never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config, parse_env_file

SECRET = "s3cr3t-value-never-shown"
REQUIRED = {
    "RAYFLEET_AGENT_API_URL": "https://api.rayfleet.test/",
    "RAYFLEET_AGENT_CLIENT_ID": "node-7",
    "RAYFLEET_AGENT_CLIENT_SECRET": SECRET,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.env"
    path.write_text(text)
    return path


def test_defaults_from_the_required_settings_only():
    config = load_config(environ=REQUIRED)
    assert config == AgentConfig(
        api_url="https://api.rayfleet.test",  # trailing slash dropped
        client_id="node-7",
        client_secret=SECRET,
        core="xray",
        core_api_address="127.0.0.1:10085",
        core_service="rayfleet-core",
        interval_seconds=60,
        journal_path=Path("/var/lib/rayfleet-agent/journal.jsonl"),
        metrics_port=9810,
        probe_targets=(("api.rayfleet.test", 443),),  # the control API's host and port
        probe_timeout_seconds=2.0,
    )
    assert config.metrics_host == "127.0.0.1"


def test_a_file_with_comments_and_quotes_and_the_environment_overriding_it(tmp_path: Path):
    path = write(
        tmp_path,
        f"""
        # rayfleet agent
        RAYFLEET_AGENT_API_URL=http://10.0.0.1:8080
        RAYFLEET_AGENT_ALLOW_INSECURE_HTTP=true
        RAYFLEET_AGENT_CLIENT_ID = "node-1"
        RAYFLEET_AGENT_CLIENT_SECRET='{SECRET}'
        RAYFLEET_AGENT_CORE=v2ray
        RAYFLEET_AGENT_CORE_API_ADDRESS=127.0.0.1:10086
        RAYFLEET_AGENT_INTERVAL_SECONDS=30
        RAYFLEET_AGENT_JOURNAL_PATH=/tmp/j.jsonl
        RAYFLEET_AGENT_METRICS_PORT=0
        """,
    )
    config = load_config(path, environ={"RAYFLEET_AGENT_INTERVAL_SECONDS": "15", "HOME": "/root"})
    assert (config.api_url, config.client_id, config.client_secret) == ("http://10.0.0.1:8080", "node-1", SECRET)
    assert (config.core, config.core_api_address) == ("v2ray", "127.0.0.1:10086")
    assert config.interval_seconds == 15  # the environment wins
    assert config.journal_path == Path("/tmp/j.jsonl")
    assert config.metrics_port == 0


def test_the_config_path_may_come_from_the_environment(tmp_path: Path):
    path = write(tmp_path, "\n".join(f"{key}={value}" for key, value in REQUIRED.items()))
    assert load_config(environ={"RAYFLEET_AGENT_CONFIG": str(path)}).client_id == "node-7"


def test_the_secret_is_never_in_repr_or_errors(tmp_path: Path):
    config = load_config(environ=REQUIRED)
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    with pytest.raises(ConfigError) as caught:
        load_config(environ={**REQUIRED, "RAYFLEET_AGENT_CORE": "sing-box"})
    assert SECRET not in str(caught.value)
    path = write(tmp_path, f"RAYFLEET_AGENT_CLIENT_SECRET='{SECRET}\n")
    with pytest.raises(ConfigError, match="unbalanced quotes") as caught:
        load_config(path, environ={})
    assert SECRET not in str(caught.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_config(
            environ={
                "RAYFLEET_AGENT_API_URL": "ftp://x",
                "RAYFLEET_AGENT_CORE": "sing-box",
                "RAYFLEET_AGENT_CORE_API_ADDRESS": "203.0.113.5:10085",
                "RAYFLEET_AGENT_CORE_SERVICE": "-rf /",
                "RAYFLEET_AGENT_INTERVAL_SECONDS": "soon",
                "RAYFLEET_AGENT_JOURNAL_PATH": "relative/journal",
                "RAYFLEET_AGENT_METRICS_PORT": "70000",
                "RAYFLEET_AGENT_INTERVALL_SECONDS": "5",
            }
        )
    message = str(caught.value)
    for expected in (
        "RAYFLEET_AGENT_CLIENT_ID is required",
        "RAYFLEET_AGENT_CLIENT_SECRET is required",
        "RAYFLEET_AGENT_API_URL must be an http(s) URL",
        "RAYFLEET_AGENT_CORE must be one of xray, v2ray, got 'sing-box'",
        "RAYFLEET_AGENT_CORE_API_ADDRESS must be a loopback address",
        "RAYFLEET_AGENT_CORE_SERVICE must be a systemd unit name",
        "RAYFLEET_AGENT_INTERVAL_SECONDS must be an integer, got 'soon'",
        "RAYFLEET_AGENT_JOURNAL_PATH must be an absolute path",
        "RAYFLEET_AGENT_METRICS_PORT must be between 0 and 65535, got 70000",
        "unknown setting RAYFLEET_AGENT_INTERVALL_SECONDS",
    ):
        assert expected in message
    assert len(caught.value.problems) == 10


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1:10085", True),
        ("localhost:1", True),
        ("[::1]:10085", True),
        ("127.0.0.1", False),
        ("127.0.0.1:0", False),
        ("127.0.0.1:http", False),
        ("0.0.0.0:10085", False),
    ],
)
def test_core_api_address(address: str, ok: bool):
    environ = {**REQUIRED, "RAYFLEET_AGENT_CORE_API_ADDRESS": address}
    if ok:
        assert load_config(environ=environ).core_api_address == address
    else:
        with pytest.raises(ConfigError, match="CORE_API_ADDRESS"):
            load_config(environ=environ)


def test_malformed_files_are_refused_with_line_numbers(tmp_path: Path):
    with pytest.raises(ConfigError, match="line 2: expected KEY=VALUE"):
        parse_env_file("A=1\nnot a setting\n")
    with pytest.raises(ConfigError, match="line 2: A is set twice"):
        parse_env_file("A=1\nA=2\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.env", environ={})
    (tmp_path / "binary.env").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "binary.env", environ={})
    parsed = parse_env_file("# only a comment\n\nURL=https://x/?a=b=c\nEMPTY=\n")
    assert parsed == {"URL": "https://x/?a=b=c", "EMPTY": ""}


def test_credentials_in_the_api_url_are_refused():
    with pytest.raises(ConfigError, match="must not carry credentials"):
        load_config(environ={**REQUIRED, "RAYFLEET_AGENT_API_URL": "https://node:pw@api.test"})


def test_an_http_api_url_needs_the_explicit_insecure_flag():
    """Issue 13, item 13: the node's secret never crosses the network in the clear by accident."""
    with pytest.raises(ConfigError, match="RAYFLEET_AGENT_API_URL is http://") as refused:
        load_config(environ={**REQUIRED, "RAYFLEET_AGENT_API_URL": "http://api.rayfleet.test"})
    assert "ALLOW_INSECURE_HTTP=true" in str(refused.value)
    allowed = load_config(
        environ={
            **REQUIRED,
            "RAYFLEET_AGENT_API_URL": "http://192.0.2.1:8080",
            "RAYFLEET_AGENT_ALLOW_INSECURE_HTTP": "true",
        }
    )
    assert allowed.allow_insecure_http is True and allowed.api_url == "http://192.0.2.1:8080"
    with pytest.raises(ConfigError, match="must be true or false"):
        load_config(environ={**REQUIRED, "RAYFLEET_AGENT_ALLOW_INSECURE_HTTP": "maybe"})
