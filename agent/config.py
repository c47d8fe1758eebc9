"""Agent settings: a KEY=VALUE file and/or the environment; the environment overrides the file.

The file is the systemd EnvironmentFile format (so the node_agent role can template one file and
use it either way): one `KEY=VALUE` per line, blank lines and lines starting with `#` ignored,
an optional pair of matching single or double quotes around the value (no escapes, no expansion).
Keys are the environment variable names below; an unknown RAYFLEET_AGENT_* key is an error (a typo
would otherwise silently fall back to a default).

    RAYFLEET_AGENT_API_URL            required  https base URL of the control API (http only with the flag below)
    RAYFLEET_AGENT_ALLOW_INSECURE_HTTP  false   true: accept an http:// API URL (the secret then travels in the
                                                clear; for a test network of one's own only)
    RAYFLEET_AGENT_CLIENT_ID          required  the node's agent credentials (POST /api/v1/nodes)
    RAYFLEET_AGENT_CLIENT_SECRET      required  secret: never logged, never in repr() or error messages
    RAYFLEET_AGENT_CORE               xray      xray | v2ray (the core's gRPC package prefix)
    RAYFLEET_AGENT_CORE_API_ADDRESS   127.0.0.1:10085  the core's API; loopback only
    RAYFLEET_AGENT_CORE_SERVICE       rayfleet-core    the core's systemd unit
    RAYFLEET_AGENT_INTERVAL_SECONDS   60        heartbeat period, 1..3600
    RAYFLEET_AGENT_JOURNAL_PATH       /var/lib/rayfleet-agent/journal.jsonl  (absolute)
    RAYFLEET_AGENT_METRICS_PORT       9810      Prometheus port, bound to 127.0.0.1 only; 0 disables
    RAYFLEET_AGENT_PROBE_TARGETS      (the API) comma-separated HOST:PORT ([IPV6]:PORT), at most 8: each heartbeat's
                                                latency_ms is the median TCP connect time to them (probes.py); empty:
                                                the API URL's host and port (443 for https, 80 for http)
    RAYFLEET_AGENT_PROBE_TIMEOUT_SECONDS  2     connect timeout of one probe, 0.1..30
    RAYFLEET_AGENT_ACCESS_LOG         /var/log/rayfleet-core/access.log  the core's access log, read for the
                                                devices each config is used from (access_log.py); absolute;
                                                empty: not read
    RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS  600   a client address counts as a device for this long after its
                                                last connection, 10..86400

RAYFLEET_AGENT_CONFIG names the file when load_config() is given no path.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from .probes import Target, parse_target

PREFIX = "RAYFLEET_AGENT_"
CONFIG_PATH_VAR = PREFIX + "CONFIG"
METRICS_HOST = "127.0.0.1"
CORES = ("xray", "v2ray")
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*$")
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
MAX_PROBE_TARGETS = 8


class ConfigError(ValueError):
    """Missing or malformed settings; the message lists every problem (never a secret's value)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid agent configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AgentConfig:
    api_url: str
    client_id: str
    client_secret: str = field(repr=False)
    core: str = "xray"
    core_api_address: str = "127.0.0.1:10085"
    core_service: str = "rayfleet-core"
    interval_seconds: int = 60
    journal_path: Path = Path("/var/lib/rayfleet-agent/journal.jsonl")
    metrics_port: int = 9810
    allow_insecure_http: bool = False
    probe_targets: tuple[Target, ...] = ()  # load_config() fills in the API's host and port when none are set
    probe_timeout_seconds: float = 2.0
    access_log: Path | None = Path("/var/log/rayfleet-core/access.log")  # None: device counts not measured
    device_window_seconds: int = 600

    @property
    def metrics_host(self) -> str:
        """The metrics endpoint never listens beyond loopback."""
        return METRICS_HOST


def parse_env_file(text: str, source: str = "config file") -> dict[str, str]:
    """KEY=VALUE lines -> dict; raises ConfigError naming the bad lines (values are never quoted back)."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            problems.append(f"{source} line {number}: expected KEY=VALUE with an upper-case KEY")
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
            problems.append(f"{source} line {number}: unbalanced quotes in the value of {key}")
            continue
        if key in values:
            problems.append(f"{source} line {number}: {key} is set twice")
        values[key] = value
    if problems:
        raise ConfigError(problems)
    return values


def _int(raw: str, name: str, low: int, high: int, problems: list[str]) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer, got {raw!r}")
        return None
    if not low <= value <= high:
        problems.append(f"{name} must be between {low} and {high}, got {value}")
        return None
    return value


def _float(raw: str, name: str, low: float, high: float, problems: list[str]) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number, got {raw!r}")
        return None
    if not low <= value <= high:  # also refuses nan
        problems.append(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
        return None
    return value


def _probe_targets(raw: str, name: str, problems: list[str]) -> tuple[Target, ...]:
    targets: list[Target] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            targets.append(parse_target(item))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if len(targets) > MAX_PROBE_TARGETS:
        problems.append(f"{name} may list at most {MAX_PROBE_TARGETS} targets, got {len(targets)}")
    return tuple(targets)


def _api_target(api_url: str) -> Target:
    """The control API's host and port: what the node probes when no targets are set."""
    parts = urlsplit(api_url)
    return str(parts.hostname), parts.port or (443 if parts.scheme == "https" else 80)


def _check_core_api_address(raw: str, name: str, problems: list[str]) -> None:
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        problems.append(f"{name} must be HOST:PORT, got {raw!r}")
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        problems.append(f"{name} must be a loopback address (the core's API never leaves the node), got {raw!r}")


def _check_api_url(raw: str, name: str, problems: list[str], allow_http: bool) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{name} must be an http(s) URL such as https://api.example.com, got {raw!r}")
    elif parts.username or parts.password:
        problems.append(f"{name} must not carry credentials (use CLIENT_ID/CLIENT_SECRET)")
    elif _port_error(parts):
        problems.append(f"{name} has a port that is not 1-65535, got {raw!r}")
    elif parts.scheme == "http" and not allow_http:
        problems.append(
            f"{name} is http://, so the node's secret would cross the network unencrypted: use https, or set "
            f"{PREFIX}ALLOW_INSECURE_HTTP=true on a network of your own (tests)"
        )
    return raw.rstrip("/")


def _port_error(parts: SplitResult) -> bool:
    try:
        return parts.port == 0
    except ValueError:
        return True


def _bool(raw: str, name: str, problems: list[str]) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no", ""):
        return False
    problems.append(f"{name} must be true or false, got {raw!r}")
    return False


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Settings from PATH (or $RAYFLEET_AGENT_CONFIG, if set) overridden by ENVIRON (default os.environ)."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_PATH_VAR):
        path = environ[CONFIG_PATH_VAR]
    values: dict[str, str] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read config file {path}: {exc.strerror or exc}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([f"config file {path} is not UTF-8 text"]) from exc
        values = parse_env_file(text, source=str(path))
    values.update({key: value for key, value in environ.items() if key.startswith(PREFIX)})
    return config_from_values(values)


def config_from_values(values: Mapping[str, str]) -> AgentConfig:
    """AgentConfig from RAYFLEET_AGENT_* VALUES; every problem is reported at once."""
    known = {PREFIX + name.upper() for name in AgentConfig.__dataclass_fields__} | {CONFIG_PATH_VAR}
    problems = [f"unknown setting {key}" for key in sorted(values) if key.startswith(PREFIX) and key not in known]
    kwargs: dict[str, object] = {}

    def get(name: str) -> str | None:
        raw = values.get(PREFIX + name.upper())
        return None if raw is None else raw.strip()

    for name in ("api_url", "client_id", "client_secret"):
        raw = get(name)
        if not raw:
            problems.append(f"{PREFIX}{name.upper()} is required")
        else:
            kwargs[name] = raw
    allow_http = False
    if (raw := get("allow_insecure_http")) is not None:
        allow_http = kwargs["allow_insecure_http"] = _bool(raw, PREFIX + "ALLOW_INSECURE_HTTP", problems)
    if "api_url" in kwargs:
        kwargs["api_url"] = _check_api_url(str(kwargs["api_url"]), PREFIX + "API_URL", problems, allow_http)

    if (raw := get("core")) is not None:
        if raw not in CORES:
            problems.append(f"{PREFIX}CORE must be one of {', '.join(CORES)}, got {raw!r}")
        kwargs["core"] = raw
    if (raw := get("core_api_address")) is not None:
        _check_core_api_address(raw, PREFIX + "CORE_API_ADDRESS", problems)
        kwargs["core_api_address"] = raw
    if (raw := get("core_service")) is not None:
        if not _UNIT.match(raw):
            problems.append(f"{PREFIX}CORE_SERVICE must be a systemd unit name, got {raw!r}")
        kwargs["core_service"] = raw
    if (raw := get("interval_seconds")) is not None:
        kwargs["interval_seconds"] = _int(raw, PREFIX + "INTERVAL_SECONDS", 1, 3600, problems)
    if (raw := get("journal_path")) is not None:
        if not raw or not os.path.isabs(raw):
            problems.append(f"{PREFIX}JOURNAL_PATH must be an absolute path, got {raw!r}")
        kwargs["journal_path"] = Path(raw)
    if (raw := get("metrics_port")) is not None:
        kwargs["metrics_port"] = _int(raw, PREFIX + "METRICS_PORT", 0, 65535, problems)
    kwargs["probe_targets"] = _probe_targets(get("probe_targets") or "", PREFIX + "PROBE_TARGETS", problems)
    if (raw := get("probe_timeout_seconds")) is not None:
        kwargs["probe_timeout_seconds"] = _float(raw, PREFIX + "PROBE_TIMEOUT_SECONDS", 0.1, 30, problems)
    if (raw := get("access_log")) is not None:
        if raw and not os.path.isabs(raw):
            problems.append(f"{PREFIX}ACCESS_LOG must be an absolute path (or empty: not read), got {raw!r}")
        kwargs["access_log"] = Path(raw) if raw else None
    if (raw := get("device_window_seconds")) is not None:
        kwargs["device_window_seconds"] = _int(raw, PREFIX + "DEVICE_WINDOW_SECONDS", 10, 86400, problems)

    if problems:
        raise ConfigError(problems)
    if not kwargs["probe_targets"]:
        kwargs["probe_targets"] = (_api_target(str(kwargs["api_url"])),)
    return AgentConfig(**kwargs)  # type: ignore[arg-type]
