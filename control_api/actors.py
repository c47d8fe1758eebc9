"""Who acts: the principals the API authenticates, the system itself, and a Telegram admin acting
through the bot. Plain data, no Flask: services take these, and the audit log records them."""

from __future__ import annotations

from dataclasses import dataclass, field

PRINCIPAL_KINDS = ("admin", "node", "bot")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, or the system itself (CLI, sweeps). Doubles as the audit actor."""

    kind: str
    id: int | None
    name: str
    # Which secret the caller proved (services/auth.secret_version): a token minted before a rotation
    # carries an older one and is refused. Not part of the principal's identity.
    secret_version: int = field(default=0, compare=False)

    @property
    def actor_id(self) -> str | None:
        return None if self.id is None else str(self.id)


SYSTEM = Principal("system", None, "system")


@dataclass(frozen=True)
class TelegramAdmin(Principal):
    """A Telegram user with is_admin acting through the bot: audited as an admin named by Telegram id."""

    telegram_id: int = 0

    @property
    def actor_id(self) -> str:
        return f"tg:{self.telegram_id}"
