"""Settings: one class that reads every environment variable, once, inside create_app()."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The largest proof a bot can fetch from Telegram to upload (the Bot API's download limit).
PROOF_MAX_BYTES_CAP = 20 * 1024 * 1024


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _read_secret(env: dict[str, str], name: str) -> str:
    """Return NAME from the environment, or the content of the file named by NAME_FILE."""
    value = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if not value and path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from exc
    return value


def _parse_rate(text: str, name: str) -> tuple[int, int]:
    """Parse 'COUNT/SECONDS' (e.g. '10/60') into a tuple."""
    try:
        count, seconds = (int(part) for part in text.split("/", 1))
    except ValueError as exc:
        raise SettingsError(f"{name} must look like COUNT/SECONDS, got {text!r}") from exc
    if count < 1 or seconds < 1:
        raise SettingsError(f"{name} needs a positive count and window, got {text!r}")
    return count, seconds


def _parse_int(env: dict[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _parse_percent(env: dict[str, str], name: str, default: int) -> int:
    value = _parse_int(env, name, default)
    if value > 100:
        raise SettingsError(f"{name} is a percent, at most 100, got {value}")
    return value


def _parse_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"SHOP_TIMEZONE must be an IANA time zone such as Asia/Tehran, got {name!r}") from exc
    return name


def _parse_hour(env: dict[str, str], name: str, default: int) -> int:
    value = _parse_int(env, name, default, minimum=-1)
    if value > 23:
        raise SettingsError(f"{name} must be an hour from 0 to 23 (or -1 for never), got {value}")
    return value


def _parse_days(env: dict[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of whole days ('3,1'), largest first, without repeats; empty: none."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        days = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError as exc:
        raise SettingsError(f"{name} must be whole days separated by commas (e.g. 3,1), got {raw!r}") from exc
    if any(day < 1 for day in days):
        raise SettingsError(f"{name} must list days of at least 1, got {raw!r}")
    return tuple(sorted(days, reverse=True))


def _parse_bool(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def node_api_url_problem(url: str, allow_insecure_http: bool) -> str | None:
    """Why provisioning must not hand URL to a node's agent, or None."""
    if not url:
        return (
            "RAYFLEET_NODE_API_URL is not set: the worker needs the API's URL as nodes reach it "
            "to configure the node agent (see .env.example)"
        )
    if url.startswith("http://") and not allow_insecure_http:
        return (
            f"RAYFLEET_NODE_API_URL is {url}: over http:// the agent's secret crosses the network unencrypted. "
            "Use https, or set RAYFLEET_NODE_API_ALLOW_INSECURE_HTTP=true on a network of your own (tests)"
        )
    return None


def _parse_url(text: str, name: str) -> str:
    url = text.strip().rstrip("/")
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise SettingsError(f"{name} must be an http(s) URL without credentials, such as https://api.example.com")
    return url


DEFAULT_INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    jwt_secret_key: str
    access_token_ttl_seconds: int = 900
    login_rate_per_ip: tuple[int, int] = (30, 60)
    login_rate_per_username: tuple[int, int] = (10, 300)
    trusted_proxy_count: int = 0
    metrics_token: str = ""
    max_content_length: int = 1024 * 1024
    log_level: str = "INFO"
    # A node whose last heartbeat is older than this shows health "stale" (3 agent intervals by default).
    node_stale_after_seconds: int = 180
    # The control API's URL as node agents reach it; provisioning writes it into each agent's config.
    node_api_url: str = ""
    # Provisioning refuses an http:// node_api_url (the agent's secret would travel in the clear) unless set.
    node_api_allow_insecure_http: bool = False
    # The API's URL as customers reach it, for subscription URLs (/sub/<token>); empty = the request's host.
    public_base_url: str = ""
    # Sales rules (issue: the original design's numbers).
    trial_data_mb: int = 200
    trial_days: int = 1
    trial_location_tag: str = ""  # empty = any location
    temporary_data_percent: int = 10  # of the plan's data cap, while a payment waits for review
    temporary_days: int = 3
    auto_accept_days: int = 3
    # Payments a customer may have waiting for review at once (each one carries a temporary config).
    max_pending_payments_per_user: int = 1
    # The price of extra data for a paid config's current period (services/renewals.py), per GB (1024 MB).
    extra_data_price_cents_per_gb: int = 100
    # Referrals (services/referrals.py): the referrer's wallet gets this percent of a referred customer's first
    # paid purchase, rounded down to the currency's smallest unit; 0 turns the reward off.
    referral_percent: int = 10
    # Paid configs are warned this many days before they expire, once per threshold per period (the
    # sweep's "expiring" notification, with the days in days_left); none when empty.
    expiry_warning_days: tuple[int, ...] = (3, 1)
    # Auto-renewal (services/auto_renewal.py): an opted-in config is renewed from the balance this many hours
    # before it expires (keep it within the shortest plan's duration, or a renewed period is due again at once).
    auto_renew_hours_before: int = 24
    # Discount codes (services/discounts.py): refused codes (unknown, expired, used up...) counted per customer
    # and per caller (a bot token): past either limit, codes are refused with 429 until the window ends, so a
    # leaked bot token cannot try codes cheaply.
    discount_code_failures_per_user: tuple[int, int] = (5, 600)
    discount_code_failures_per_caller: tuple[int, int] = (100, 600)
    # The embedded default's own cron: the sweep runs in the API process this often (0: never).
    sweep_interval_seconds: int = 300
    # Node health (services/node_health.py): fleet-wide limits, each overridable per node.
    health_latency_ms: int = 200
    health_cpu_percent: int = 85
    health_bandwidth_percent: int = 90
    health_dark_after_seconds: int = 180  # no heartbeat for this long = dark (default: NODE_STALE_AFTER_SECONDS)
    # A limit counts as breached after this many consecutive heartbeats over it, cleared after as many under.
    health_window_heartbeats: int = 3
    # Migration (services/migration.py): configs moved onto one target node per run, and how long the
    # source keeps serving a moved config once the target serves it.
    migration_batch_per_node: int = 50
    migration_grace_seconds: int = 6 * 3600
    node_metrics_retention_days: int = 14
    # Device limits (services/devices.py): an address over the plan's max_devices is refused for the config this
    # long; and how long after its last connection the agents stop counting a device (their
    # RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS), which the customer's message states.
    device_block_cooldown_seconds: int = 600
    device_window_seconds: int = 600
    # Configs within this many MiB of their cap are named to their node's agent, which then watches them
    # between heartbeats (services/heartbeat.quota_watch); 0: not watched.
    quota_watch_mb: int = 1024
    # Webhooks (services/webhooks.py, jobs/webhooks.py): each POST waits this long for an answer; a delivery is
    # tried this many times, the n-th retry after about BACKOFF * 2**(n-1) seconds (with jitter, at most 6 h);
    # a URL that resolves to a loopback, private, link-local or otherwise internal address is refused unless
    # allowed (an admin account must not turn the API into a scanner of internal services).
    webhook_timeout_seconds: int = 5
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: int = 30
    webhook_allow_private_targets: bool = False
    # The shop's time zone (IANA name): the daily report's day, and times shown to admins.
    shop_timezone: str = "UTC"
    # The daily sales report goes to the admin channel after this hour, shop time, for the day before (-1: never).
    daily_report_hour: int = 9
    # Payment proofs (services/proofs.py): the largest file the bot may upload (413 above it); the directory they
    # are stored in (created 0700, one file per proof named by a random id; empty: "proofs" in the app's instance
    # folder; set it for the API and the worker alike in production, the sweep deletes old files); and how many
    # days after a payment was decided its proof file is deleted.
    proof_max_bytes: int = 5 * 1024 * 1024
    proof_storage_dir: str = ""
    proof_retention_days: int = 90
    # The web console (/admin): a session ends after this many seconds without a request, and its cookie is
    # marked Secure on every response when set (otherwise only when the request came over https).
    console_idle_timeout_seconds: int = 1800
    console_cookie_secure: bool = False
    # The warm identity pool (services/identity_pool.py): identities per protocol each provisioning or active node
    # serves before any sale, so a config sold on it works before the API answers; 0 turns the pool off (the
    # next sync retires what is left).
    identity_pool_size: int = 20
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True when running without Redis: blocklist, rate limits and jobs stay in-process."""
        return not self.redis_url

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, instance_path: str | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        # The app's instance folder (Flask's, beside the package) whatever the working directory, so a worker
        # finds the same SQLite file and proof files as the API.
        instance_path = instance_path or str(DEFAULT_INSTANCE_PATH)
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            # The embedded default: a SQLite file next to the app's instance data.
            database_url = f"sqlite:///{Path(instance_path).resolve() / 'rayfleet.sqlite3'}"
        jwt_secret_key = _read_secret(env, "JWT_SECRET_KEY")
        if len(jwt_secret_key) < 32:
            raise SettingsError(
                "JWT_SECRET_KEY (or JWT_SECRET_KEY_FILE) must hold at least 32 characters; "
                "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return cls(
            database_url=database_url,
            redis_url=env.get("REDIS_URL", "").strip(),
            jwt_secret_key=jwt_secret_key,
            access_token_ttl_seconds=_parse_int(env, "ACCESS_TOKEN_TTL_SECONDS", 900, minimum=1),
            login_rate_per_ip=_parse_rate(env.get("LOGIN_RATE_LIMIT_PER_IP", "30/60"), "LOGIN_RATE_LIMIT_PER_IP"),
            login_rate_per_username=_parse_rate(
                env.get("LOGIN_RATE_LIMIT_PER_USERNAME", "10/300"), "LOGIN_RATE_LIMIT_PER_USERNAME"
            ),
            trusted_proxy_count=_parse_int(env, "TRUSTED_PROXY_COUNT", 0),
            metrics_token=_read_secret(env, "METRICS_TOKEN"),
            max_content_length=_parse_int(env, "MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            node_stale_after_seconds=_parse_int(env, "NODE_STALE_AFTER_SECONDS", 180, minimum=1),
            node_api_url=_parse_url(env.get("RAYFLEET_NODE_API_URL", ""), "RAYFLEET_NODE_API_URL"),
            node_api_allow_insecure_http=_parse_bool(env, "RAYFLEET_NODE_API_ALLOW_INSECURE_HTTP"),
            public_base_url=_parse_url(env.get("PUBLIC_BASE_URL", ""), "PUBLIC_BASE_URL"),
            trial_data_mb=_parse_int(env, "TRIAL_DATA_MB", 200, minimum=1),
            trial_days=_parse_int(env, "TRIAL_DAYS", 1, minimum=1),
            trial_location_tag=env.get("TRIAL_LOCATION_TAG", "").strip(),
            temporary_data_percent=_parse_int(env, "TEMPORARY_DATA_PERCENT", 10, minimum=1),
            temporary_days=_parse_int(env, "TEMPORARY_DAYS", 3, minimum=1),
            auto_accept_days=_parse_int(env, "AUTO_ACCEPT_DAYS", 3, minimum=1),
            max_pending_payments_per_user=_parse_int(env, "MAX_PENDING_PAYMENTS_PER_USER", 1, minimum=1),
            extra_data_price_cents_per_gb=_parse_int(env, "EXTRA_DATA_PRICE_CENTS_PER_GB", 100, minimum=1),
            referral_percent=_parse_percent(env, "REFERRAL_PERCENT", 10),
            expiry_warning_days=_parse_days(env, "EXPIRY_WARNING_DAYS", (3, 1)),
            auto_renew_hours_before=_parse_int(env, "AUTO_RENEW_HOURS_BEFORE", 24, minimum=1),
            discount_code_failures_per_user=_parse_rate(
                env.get("DISCOUNT_CODE_FAILURES_PER_USER", "5/600"), "DISCOUNT_CODE_FAILURES_PER_USER"
            ),
            discount_code_failures_per_caller=_parse_rate(
                env.get("DISCOUNT_CODE_FAILURES_PER_CALLER", "100/600"), "DISCOUNT_CODE_FAILURES_PER_CALLER"
            ),
            sweep_interval_seconds=_parse_int(env, "SWEEP_INTERVAL_SECONDS", 300),
            health_latency_ms=_parse_int(env, "HEALTH_LATENCY_MS", 200, minimum=1),
            health_cpu_percent=_parse_int(env, "HEALTH_CPU_PERCENT", 85, minimum=1),
            health_bandwidth_percent=_parse_int(env, "HEALTH_BANDWIDTH_PERCENT", 90, minimum=1),
            health_dark_after_seconds=_parse_int(
                env,
                "HEALTH_DARK_AFTER_SECONDS",
                _parse_int(env, "NODE_STALE_AFTER_SECONDS", 180, minimum=1),
                minimum=1,
            ),
            health_window_heartbeats=_parse_int(env, "HEALTH_WINDOW_HEARTBEATS", 3, minimum=1),
            migration_batch_per_node=_parse_int(env, "MIGRATION_BATCH_PER_NODE", 50, minimum=1),
            migration_grace_seconds=_parse_int(env, "MIGRATION_GRACE_SECONDS", 6 * 3600),
            node_metrics_retention_days=_parse_int(env, "NODE_METRICS_RETENTION_DAYS", 14, minimum=1),
            device_block_cooldown_seconds=_parse_int(
                env, "DEVICE_BLOCK_COOLDOWN_SECONDS", 600, minimum=10, maximum=7 * 86400
            ),
            device_window_seconds=_parse_int(env, "DEVICE_WINDOW_SECONDS", 600, minimum=10, maximum=86400),
            quota_watch_mb=_parse_int(env, "QUOTA_WATCH_MB", 1024, minimum=0, maximum=1024 * 1024),
            webhook_timeout_seconds=_parse_int(env, "WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1, maximum=30),
            webhook_max_attempts=_parse_int(env, "WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=25),
            webhook_backoff_seconds=_parse_int(env, "WEBHOOK_BACKOFF_SECONDS", 30, minimum=1, maximum=3600),
            webhook_allow_private_targets=_parse_bool(env, "WEBHOOK_ALLOW_PRIVATE_TARGETS"),
            shop_timezone=_parse_timezone(env.get("SHOP_TIMEZONE", "UTC").strip() or "UTC"),
            daily_report_hour=_parse_hour(env, "DAILY_REPORT_HOUR", 9),
            proof_max_bytes=_parse_int(
                env, "PROOF_MAX_BYTES", 5 * 1024 * 1024, minimum=1024, maximum=PROOF_MAX_BYTES_CAP
            ),
            proof_storage_dir=env.get("PROOF_STORAGE_DIR", "").strip() or str(Path(instance_path).resolve() / "proofs"),
            proof_retention_days=_parse_int(env, "PROOF_RETENTION_DAYS", 90, minimum=1, maximum=3650),
            console_idle_timeout_seconds=_parse_int(
                env, "CONSOLE_IDLE_TIMEOUT_SECONDS", 1800, minimum=60, maximum=7 * 86400
            ),
            console_cookie_secure=_parse_bool(env, "CONSOLE_COOKIE_SECURE"),
            identity_pool_size=_parse_int(env, "IDENTITY_POOL_SIZE", 20, minimum=0, maximum=1000),
        )
