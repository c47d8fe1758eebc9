"""Conversation state per Telegram user: a small JSON document with a TTL, in Redis or in memory.

Not telebot's StateStorage: its Redis keys never expire and its default instance is shared by every bot.
A purchase half-done is never lost: the document lives in Redis and survives a bot restart.

Besides: short-lived cache entries, lists (the review cards posted of a payment), and tables of JSON values
(the admins' held decisions, bot/holds.py) whose take and move are atomic: of two callers taking the same
entry, exactly one gets it (in Redis by a Lua script, in memory under a lock).
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
    def list_add(self, key: str, value: Any, ttl: int) -> None: ...
    def list_get(self, key: str) -> list[Any]: ...
    def table_add(self, table: str, field: str, value: Any) -> bool: ...
    def table_put(self, table: str, field: str, value: Any) -> None: ...
    def table_get(self, table: str, field: str) -> Any: ...
    def table_all(self, table: str) -> dict[str, Any]: ...
    def table_take(self, table: str, field: str) -> Any: ...
    def table_move(self, source: str, target: str, field: str) -> Any: ...


class MemoryStore:
    """The embedded default (no REDIS_URL): one process, lost on restart."""

    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = ttl_seconds
        self._data: dict[str, tuple[float, str]] = {}
        self._tables: dict[str, dict[str, str]] = {}
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

    def list_add(self, key: str, value: Any, ttl: int) -> None:
        with self._lock:
            item = self._data.get(f"list:{key}")
            values = json.loads(item[1]) if item and item[0] >= time.monotonic() else []
            self._data[f"list:{key}"] = (time.monotonic() + ttl, json.dumps([*values, value]))

    def list_get(self, key: str) -> list[Any]:
        return self._get(f"list:{key}") or []

    # Tables: never expire in memory (a process's own; lost on restart, like everything here).
    def table_add(self, table: str, field: str, value: Any) -> bool:
        with self._lock:
            rows = self._tables.setdefault(table, {})
            if field in rows:
                return False
            rows[field] = json.dumps(value)
            return True

    def table_put(self, table: str, field: str, value: Any) -> None:
        with self._lock:
            self._tables.setdefault(table, {})[field] = json.dumps(value)

    def table_get(self, table: str, field: str) -> Any:
        with self._lock:
            raw = self._tables.get(table, {}).get(field)
        return json.loads(raw) if raw else None

    def table_all(self, table: str) -> dict[str, Any]:
        with self._lock:
            return {field: json.loads(raw) for field, raw in self._tables.get(table, {}).items()}

    def table_take(self, table: str, field: str) -> Any:
        with self._lock:
            raw = self._tables.get(table, {}).pop(field, None)
        return json.loads(raw) if raw else None

    def table_move(self, source: str, target: str, field: str) -> Any:
        with self._lock:
            raw = self._tables.get(source, {}).pop(field, None)
            if raw is None:
                return None
            self._tables.setdefault(target, {})[field] = raw
        return json.loads(raw)


# KEYS[1]: a table (hash); ARGV[1]: a field. Returns the value and deletes it, or nil: one caller gets it.
_TAKE = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value
"""
# KEYS[1] -> KEYS[2]: moves one field, or nil when it is gone (taken by someone else first).
_MOVE = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], value)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return value
"""


class RedisStore:
    """Production: every key has a TTL (refreshed on each write), under one prefix."""

    def __init__(self, url: str, ttl_seconds: int, prefix: str = "rayfleet:bot:") -> None:
        self.ttl = ttl_seconds
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self._redis.register_script(_TAKE)
        self._move = self._redis.register_script(_MOVE)

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

    def list_add(self, key: str, value: Any, ttl: int) -> None:
        name = f"{self.prefix}list:{key}"
        with self._redis.pipeline() as pipe:
            pipe.rpush(name, json.dumps(value)).expire(name, ttl).execute()

    def list_get(self, key: str) -> list[Any]:
        return [json.loads(raw) for raw in self._redis.lrange(f"{self.prefix}list:{key}", 0, -1)]

    # Tables are hashes; each write refreshes the whole table's TTL (BOT_STATE_TTL_SECONDS).
    def _table(self, table: str) -> str:
        return f"{self.prefix}table:{table}"

    def table_add(self, table: str, field: str, value: Any) -> bool:
        with self._redis.pipeline() as pipe:
            added, _expiry = (
                pipe.hsetnx(self._table(table), field, json.dumps(value)).expire(self._table(table), self.ttl).execute()
            )
        return bool(added)

    def table_put(self, table: str, field: str, value: Any) -> None:
        with self._redis.pipeline() as pipe:
            pipe.hset(self._table(table), field, json.dumps(value)).expire(self._table(table), self.ttl).execute()

    def table_get(self, table: str, field: str) -> Any:
        raw = self._redis.hget(self._table(table), field)
        return json.loads(raw) if raw else None

    def table_all(self, table: str) -> dict[str, Any]:
        return {field.decode(): json.loads(raw) for field, raw in self._redis.hgetall(self._table(table)).items()}

    def table_take(self, table: str, field: str) -> Any:
        raw = self._take(keys=[self._table(table)], args=[field])
        return json.loads(raw) if raw else None

    def table_move(self, source: str, target: str, field: str) -> Any:
        raw = self._move(keys=[self._table(source), self._table(target)], args=[field, self.ttl])
        return json.loads(raw) if raw else None


def make_store(redis_url: str, ttl_seconds: int) -> StateStore:
    return RedisStore(redis_url, ttl_seconds) if redis_url else MemoryStore(ttl_seconds)
