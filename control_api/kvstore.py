"""The key-value store behind the token blocklist and the login rate limits: Redis, degrading to this
process's memory while Redis is down, or memory alone in the embedded default. No Flask."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Protocol

import redis

log = logging.getLogger(__name__)


class KeyValueStore(Protocol):
    """The two operations the blocklist and the rate limiter need."""

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one event in KEY's fixed window; return (count so far, seconds until the window ends)."""

    def peek(self, key: str) -> tuple[int, int]:
        """KEY's count in its current window and the seconds left in it, without counting; (0, 0) if none."""

    def put(self, key: str, ttl_seconds: int) -> None:
        """Remember KEY for TTL seconds."""

    def contains(self, key: str) -> bool: ...

    def ping(self) -> bool: ...


class RedisStore:
    """Redis for the blocklist and rate limits, degrading to this process's memory while Redis is down.

    An outage must not stop the API (writes keep working; the sweep re-enqueues their syncs later), so
    a failed Redis call falls back to a MemoryStore: limits then hold per process, and a token revoked
    during the outage is refused by the process that revoked it (and by all once it expires, within
    ACCESS_TOKEN_TTL_SECONDS). Revocations are also kept locally, so they survive Redis coming back empty.
    """

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.fallback = MemoryStore()
        self._warned_at = -math.inf

    def _degraded(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:  # one line a minute, not one per request
            self._warned_at = now
            log.warning("Redis is unavailable (%s); blocklist and rate limits are in-process", type(exc).__name__)

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        try:
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            pipe.ttl(key)
            count, _, ttl = pipe.execute()
        except redis.RedisError as exc:
            self._degraded(exc)
            return self.fallback.hit(key, window_seconds)
        return int(count), max(int(ttl), 1)

    def peek(self, key: str) -> tuple[int, int]:
        try:
            pipe = self.client.pipeline()
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = pipe.execute()
        except redis.RedisError as exc:
            self._degraded(exc)
            return self.fallback.peek(key)
        return (int(count), max(int(ttl), 1)) if count is not None else (0, 0)

    def put(self, key: str, ttl_seconds: int) -> None:
        self.fallback.put(key, ttl_seconds)
        try:
            self.client.set(key, b"1", ex=max(ttl_seconds, 1))
        except redis.RedisError as exc:
            self._degraded(exc)

    def contains(self, key: str) -> bool:
        if self.fallback.contains(key):
            return True
        try:
            return bool(self.client.exists(key))
        except redis.RedisError as exc:
            self._degraded(exc)
            return False

    def ping(self) -> bool:
        return bool(self.client.ping())


class MemoryStore:
    """In-process stand-in for Redis in the embedded default (one process, so it is exact)."""

    # Expired keys are dropped in a sweep once the store holds this many, so that ever-new
    # addresses or usernames cannot grow memory without bound.
    SWEEP_AT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}
        self._sweep_at = self.SWEEP_AT

    def _store(self, key: str, value: tuple[int, float], now: float) -> None:
        self._values[key] = value
        if len(self._values) >= self._sweep_at:
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            # Sweep again only after the store has grown as much again, keeping sweeps amortised O(1).
            self._sweep_at = max(self.SWEEP_AT, 2 * len(self._values))

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._values.get(key)
        if entry and entry[1] <= now:
            del self._values[key]
            return None
        return entry

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            count, expires = entry if entry else (0, now + window_seconds)
            self._store(key, (count + 1, expires), now)
            return count + 1, max(math.ceil(expires - now), 1)

    def peek(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            return (entry[0], max(math.ceil(entry[1] - now), 1)) if entry else (0, 0)

    def put(self, key: str, ttl_seconds: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._store(key, (1, now + max(ttl_seconds, 1)), now)

    def __len__(self) -> int:
        return len(self._values)

    def contains(self, key: str) -> bool:
        with self._lock:
            return self._live(key, time.monotonic()) is not None

    def ping(self) -> bool:
        return True
