"""Conversation state per Telegram user: a small JSON document with a TTL, in Redis or in memory.

Not telebot's StateStorage: its Redis keys never expire and its default instance is shared by every bot.
A purchase half-done is never lost: the document lives in Redis and survives a bot restart.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

import redis


class StateStore(Protocol):
    def get(self, user_id: int) -> dict[str, Any]: ...
    def set(self, user_id: int, state: dict[str, Any]) -> None: ...
    def clear(self, user_id: int) -> None: ...
    def cache_get(self, key: str) -> Any: ...
    def cache_set(self, key: str, value: Any, ttl: int) -> None: ...
    def cache_add(self, key: str, value: Any, ttl: int) -> bool: ...
    def cache_delete(self, key: str) -> None: ...


class MemoryStore:
    """The embedded default (no REDIS_URL): one process, lost on restart."""

    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = ttl_seconds
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _get(self, key: str) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            return json.loads(item[1])

    def _set(self, key: str, value: Any, ttl: int) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._data) > 10_000:  # a sweep, so memory stays bounded
                self._data = {k: v for k, v in self._data.items() if v[0] >= now}
            self._data[key] = (now + ttl, json.dumps(value))

    def get(self, user_id: int) -> dict[str, Any]:
        return self._get(f"conv:{user_id}") or {}

    def set(self, user_id: int, state: dict[str, Any]) -> None:
        self._set(f"conv:{user_id}", state, self.ttl)

    def clear(self, user_id: int) -> None:
        with self._lock:
            self._data.pop(f"conv:{user_id}", None)

    def cache_get(self, key: str) -> Any:
        return self._get(f"cache:{key}")

    def cache_set(self, key: str, value: Any, ttl: int) -> None:
        self._set(f"cache:{key}", value, ttl)

    def cache_add(self, key: str, value: Any, ttl: int) -> bool:
        """Store VALUE only if KEY holds nothing (atomically); True when it was stored."""
        with self._lock:
            item = self._data.get(f"cache:{key}")
            if item is not None and item[0] >= time.monotonic():
                return False
            self._data[f"cache:{key}"] = (time.monotonic() + ttl, json.dumps(value))
            return True

    def cache_delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(f"cache:{key}", None)


class RedisStore:
    """Production: every key has a TTL (refreshed on each write), under one prefix."""

    def __init__(self, url: str, ttl_seconds: int, prefix: str = "rayfleet:bot:") -> None:
        self.ttl = ttl_seconds
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def get(self, user_id: int) -> dict[str, Any]:
        raw = self._redis.get(f"{self.prefix}conv:{user_id}")
        return json.loads(raw) if raw else {}

    def set(self, user_id: int, state: dict[str, Any]) -> None:
        self._redis.set(f"{self.prefix}conv:{user_id}", json.dumps(state), ex=self.ttl)

    def clear(self, user_id: int) -> None:
        self._redis.delete(f"{self.prefix}conv:{user_id}")

    def cache_get(self, key: str) -> Any:
        raw = self._redis.get(f"{self.prefix}cache:{key}")
        return json.loads(raw) if raw else None

    def cache_set(self, key: str, value: Any, ttl: int) -> None:
        self._redis.set(f"{self.prefix}cache:{key}", json.dumps(value), ex=ttl)

    def cache_add(self, key: str, value: Any, ttl: int) -> bool:
        """Store VALUE only if KEY holds nothing (SET NX: atomic across processes); True when it was stored."""
        return bool(self._redis.set(f"{self.prefix}cache:{key}", json.dumps(value), ex=ttl, nx=True))

    def cache_delete(self, key: str) -> None:
        self._redis.delete(f"{self.prefix}cache:{key}")


def make_store(redis_url: str, ttl_seconds: int) -> StateStore:
    return RedisStore(redis_url, ttl_seconds) if redis_url else MemoryStore(ttl_seconds)
