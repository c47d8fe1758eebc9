import pytest

from control_api.config import Settings, SettingsError

KEY = "k" * 40


def test_defaults_are_the_embedded_mode(tmp_path):
    settings = Settings.from_env({"JWT_SECRET_KEY": KEY}, instance_path=str(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path / 'rayfleet.sqlite3'}"
    assert settings.embedded and settings.redis_url == ""
    assert settings.login_rate_per_ip == (30, 60)
    assert settings.referral_percent == 10
    assert Settings.from_env({"JWT_SECRET_KEY": KEY, "REFERRAL_PERCENT": "0"}).referral_percent == 0  # off


def test_every_setting_is_read_from_the_environment(tmp_path):
    env = {
        "JWT_SECRET_KEY": KEY,
        "DATABASE_URL": "postgresql+psycopg2://u@h/db",
        "REDIS_URL": "redis://h:1/0",
        "ACCESS_TOKEN_TTL_SECONDS": "60",
        "LOGIN_RATE_LIMIT_PER_IP": "5/10",
        "LOGIN_RATE_LIMIT_PER_USERNAME": "2/30",
        "DISCOUNT_CODE_FAILURES_PER_USER": "3/60",
        "DISCOUNT_CODE_FAILURES_PER_CALLER": "50/120",
        "TRUSTED_PROXY_COUNT": "1",
        "METRICS_TOKEN": "m",
        "LOG_LEVEL": "debug",
    }
    settings = Settings.from_env(env, instance_path=str(tmp_path))
    assert not settings.embedded
    assert settings.access_token_ttl_seconds == 60
    assert settings.login_rate_per_ip == (5, 10) and settings.login_rate_per_username == (2, 30)
    assert settings.discount_code_failures_per_user == (3, 60)
    assert settings.discount_code_failures_per_caller == (50, 120)
    assert settings.trusted_proxy_count == 1 and settings.metrics_token == "m" and settings.log_level == "DEBUG"


def test_device_limit_settings(tmp_path):
    defaults = Settings.from_env({"JWT_SECRET_KEY": KEY}, instance_path=str(tmp_path))
    assert (defaults.device_block_cooldown_seconds, defaults.device_window_seconds) == (600, 600)
    env = {"JWT_SECRET_KEY": KEY, "DEVICE_BLOCK_COOLDOWN_SECONDS": "900", "DEVICE_WINDOW_SECONDS": "300"}
    settings = Settings.from_env(env, instance_path=str(tmp_path))
    assert (settings.device_block_cooldown_seconds, settings.device_window_seconds) == (900, 300)


def test_webhook_settings(tmp_path):
    defaults = Settings.from_env({"JWT_SECRET_KEY": KEY}, instance_path=str(tmp_path))
    assert (defaults.webhook_timeout_seconds, defaults.webhook_max_attempts, defaults.webhook_backoff_seconds) == (
        5,
        8,
        30,
    )
    assert defaults.webhook_allow_private_targets is False
    env = {
        "JWT_SECRET_KEY": KEY,
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_MAX_ATTEMPTS": "3",
        "WEBHOOK_BACKOFF_SECONDS": "1",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    }
    settings = Settings.from_env(env, instance_path=str(tmp_path))
    assert (settings.webhook_timeout_seconds, settings.webhook_max_attempts, settings.webhook_backoff_seconds) == (
        2,
        3,
        1,
    )
    assert settings.webhook_allow_private_targets is True


def test_secret_may_come_from_a_file(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(KEY + "\n")
    assert Settings.from_env({"JWT_SECRET_KEY_FILE": str(secret_file)}).jwt_secret_key == KEY


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "JWT_SECRET_KEY"),
        ({"JWT_SECRET_KEY": "short"}, "at least 32"),
        ({"JWT_SECRET_KEY_FILE": "/nonexistent/secret"}, "cannot be read"),
        ({"JWT_SECRET_KEY": KEY, "LOGIN_RATE_LIMIT_PER_IP": "ten"}, "COUNT/SECONDS"),
        ({"JWT_SECRET_KEY": KEY, "LOGIN_RATE_LIMIT_PER_IP": "0/60"}, "positive"),
        ({"JWT_SECRET_KEY": KEY, "ACCESS_TOKEN_TTL_SECONDS": "0"}, "at least 1"),
        ({"JWT_SECRET_KEY": KEY, "TRUSTED_PROXY_COUNT": "x"}, "integer"),
        ({"JWT_SECRET_KEY": KEY, "REFERRAL_PERCENT": "101"}, "at most 100"),
        ({"JWT_SECRET_KEY": KEY, "REFERRAL_PERCENT": "-1"}, "at least 0"),
        ({"JWT_SECRET_KEY": KEY, "EXPIRY_WARNING_DAYS": "3,one"}, "separated by commas"),
        ({"JWT_SECRET_KEY": KEY, "EXPIRY_WARNING_DAYS": "3,0"}, "at least 1"),
        ({"JWT_SECRET_KEY": KEY, "DEVICE_BLOCK_COOLDOWN_SECONDS": "9"}, "at least 10"),
        ({"JWT_SECRET_KEY": KEY, "DEVICE_BLOCK_COOLDOWN_SECONDS": "604801"}, "at most 604800"),
        ({"JWT_SECRET_KEY": KEY, "DEVICE_WINDOW_SECONDS": "86401"}, "at most 86400"),
        ({"JWT_SECRET_KEY": KEY, "WEBHOOK_TIMEOUT_SECONDS": "0"}, "at least 1"),
        ({"JWT_SECRET_KEY": KEY, "WEBHOOK_TIMEOUT_SECONDS": "31"}, "at most 30"),
        ({"JWT_SECRET_KEY": KEY, "WEBHOOK_MAX_ATTEMPTS": "26"}, "at most 25"),
        ({"JWT_SECRET_KEY": KEY, "WEBHOOK_BACKOFF_SECONDS": "0"}, "at least 1"),
        ({"JWT_SECRET_KEY": KEY, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "maybe"}, "true or false"),
    ],
)
def test_bad_settings_fail_with_a_readable_message(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_node_settings(tmp_path):
    base = {"JWT_SECRET_KEY": "k" * 40}
    defaults = Settings.from_env(base, instance_path=str(tmp_path))
    assert defaults.node_api_url == "" and defaults.node_stale_after_seconds == 180
    custom = Settings.from_env(
        {**base, "RAYFLEET_NODE_API_URL": "https://api.example.com/", "NODE_STALE_AFTER_SECONDS": "30"},
        instance_path=str(tmp_path),
    )
    assert custom.node_api_url == "https://api.example.com" and custom.node_stale_after_seconds == 30
    for bad in ("ftp://api.example.com", "https://user:pw@api.example.com", "api.example.com"):
        with pytest.raises(SettingsError, match="RAYFLEET_NODE_API_URL must be an http"):
            Settings.from_env({**base, "RAYFLEET_NODE_API_URL": bad}, instance_path=str(tmp_path))


def test_expiry_warning_days(tmp_path):
    base = {"JWT_SECRET_KEY": KEY}
    assert Settings.from_env(base, instance_path=str(tmp_path)).expiry_warning_days == (3, 1)
    assert Settings.from_env({**base, "EXPIRY_WARNING_DAYS": " 1, 7,3,3"}).expiry_warning_days == (7, 3, 1)
    assert Settings.from_env({**base, "EXPIRY_WARNING_DAYS": ""}).expiry_warning_days == ()


def test_console_settings(tmp_path):
    settings = Settings.from_env({"JWT_SECRET_KEY": KEY}, instance_path=str(tmp_path))
    assert settings.console_idle_timeout_seconds == 1800 and settings.console_cookie_secure is False
    env = {"JWT_SECRET_KEY": KEY, "CONSOLE_IDLE_TIMEOUT_SECONDS": "300", "CONSOLE_COOKIE_SECURE": "true"}
    settings = Settings.from_env(env, instance_path=str(tmp_path))
    assert settings.console_idle_timeout_seconds == 300 and settings.console_cookie_secure is True
    with pytest.raises(SettingsError, match="CONSOLE_IDLE_TIMEOUT_SECONDS must be at least 60"):
        Settings.from_env({"JWT_SECRET_KEY": KEY, "CONSOLE_IDLE_TIMEOUT_SECONDS": "5"})
