"""The bot's settings: read once, in main(), from the environment (see .env.example)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _secret(env: Mapping[str, str], name: str, required: bool = True) -> str:
    value = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if value and path:
        raise SettingsError(f"Set {name} or {name}_FILE, not both.")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if required and not value:
        raise SettingsError(f"{name} (or {name}_FILE) is required.")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}.")
    return value


def _whole_numbers(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Comma-separated positive whole numbers ('1,5,10'), ascending, without repeats."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        values = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise SettingsError(f"{name} must be whole numbers separated by commas, not {raw!r}.") from None
    if not values or min(values) < 1 or max(values) > 99_999:
        raise SettingsError(f"{name} must list numbers from 1 to 99999.")
    return tuple(sorted(values))


@dataclass(frozen=True)
class BotSettings:
    token: str
    api_url: str
    client_id: str
    client_secret: str
    admin_chat_id: int | None = None
    redis_url: str = ""
    state_ttl_seconds: int = 7 * 24 * 3600
    mode: str = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str = ""
    notify_interval_seconds: float = 10.0
    long_polling_timeout: int = 20
    api_timeout_seconds: float = 10.0
    currency: str = "USD"
    payment_instructions: str = ""
    protocol: str = "vless"
    admin_language: str = "en"
    # The amounts of extra data (GB of 1024 MB) a customer may add to a paid config; the API prices them.
    extra_data_gb: tuple[int, ...] = (1, 5, 10)
    # Broadcast messages a second (bot/broadcast.py): under Telegram's limit of about 30 a second.
    broadcast_per_second: float = 25.0
    # The shop's time zone (SHOP_TIMEZONE, the API's setting too): times on the admins' review cards.
    shop_timezone: str = "UTC"
    # How long an admin's decision is held (with an Undo button) before the bot makes it; 0: no hold.
    undo_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        api_url = env.get("RAYFLEET_API_URL", "").strip().rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise SettingsError("RAYFLEET_API_URL is required, e.g. http://127.0.0.1:8080.")
        client_id = env.get("RAYFLEET_BOT_CLIENT_ID", "").strip()
        if not client_id:
            raise SettingsError("RAYFLEET_BOT_CLIENT_ID is required (flask --app control_api create-bot-client NAME).")
        admin_chat = env.get("TELEGRAM_ADMIN_CHAT_ID", "").strip()
        try:
            admin_chat_id = int(admin_chat) if admin_chat else None
        except ValueError:
            raise SettingsError(f"TELEGRAM_ADMIN_CHAT_ID must be a chat id (an integer), not {admin_chat!r}.") from None
        mode = env.get("TELEGRAM_BOT_MODE", "polling").strip() or "polling"
        if mode not in ("polling", "webhook"):
            raise SettingsError("TELEGRAM_BOT_MODE is polling or webhook.")
        webhook_url = env.get("TELEGRAM_WEBHOOK_URL", "").strip()
        if mode == "webhook" and not webhook_url.startswith("https://"):
            raise SettingsError("TELEGRAM_WEBHOOK_URL (https://...) is required in webhook mode.")
        protocol = env.get("BOT_PROTOCOL", "vless").strip() or "vless"
        if protocol not in ("vless", "vmess"):
            raise SettingsError("BOT_PROTOCOL is vless or vmess.")
        admin_language = env.get("BOT_ADMIN_LANGUAGE", "en").strip() or "en"
        if admin_language not in ("en", "fa"):
            raise SettingsError("BOT_ADMIN_LANGUAGE is en or fa.")
        shop_timezone = env.get("SHOP_TIMEZONE", "UTC").strip() or "UTC"
        try:
            ZoneInfo(shop_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"SHOP_TIMEZONE must be an IANA time zone such as Asia/Tehran, not {shop_timezone!r}."
            ) from None
        return cls(
            admin_language=admin_language,
            shop_timezone=shop_timezone,
            undo_seconds=_number(env, "BOT_UNDO_SECONDS", 20.0, minimum=0),
            token=_secret(env, "TELEGRAM_BOT_TOKEN"),
            api_url=api_url,
            client_id=client_id,
            client_secret=_secret(env, "RAYFLEET_BOT_CLIENT_SECRET"),
            admin_chat_id=admin_chat_id,
            redis_url=env.get("REDIS_URL", "").strip(),
            state_ttl_seconds=int(_number(env, "BOT_STATE_TTL_SECONDS", 7 * 24 * 3600, minimum=60)),
            mode=mode,
            webhook_url=webhook_url,
            webhook_listen=env.get("TELEGRAM_WEBHOOK_LISTEN", "127.0.0.1").strip() or "127.0.0.1",
            webhook_port=int(_number(env, "TELEGRAM_WEBHOOK_PORT", 8443, minimum=1)),
            webhook_secret=_secret(env, "TELEGRAM_WEBHOOK_SECRET", required=mode == "webhook"),
            notify_interval_seconds=_number(env, "BOT_NOTIFY_INTERVAL_SECONDS", 10.0, minimum=0.05),
            long_polling_timeout=int(_number(env, "BOT_LONG_POLLING_TIMEOUT", 20, minimum=1)),
            api_timeout_seconds=_number(env, "BOT_API_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            currency=env.get("BOT_CURRENCY", "USD").strip() or "USD",
            payment_instructions=env.get("BOT_PAYMENT_INSTRUCTIONS", "").strip(),
            protocol=protocol,
            extra_data_gb=_whole_numbers(env, "BOT_EXTRA_DATA_GB", (1, 5, 10)),
            broadcast_per_second=_number(env, "BOT_BROADCAST_PER_SECOND", 25.0, minimum=0.1),
        )
