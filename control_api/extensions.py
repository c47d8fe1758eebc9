"""Per-app resources: the database, the key-value store and the JWT manager.

Each app keeps its own instances in app.extensions, so tests can build many apps in one process.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.orm import Session

from .database import Database
from .jwt_claims import CachingJWTManager
from .kvstore import KeyValueStore, MemoryStore, RedisStore

jwt = CachingJWTManager()


def init_extensions(app: Flask, database_url: str, redis_url: str) -> None:
    app.extensions["rayfleet.db"] = Database(database_url)
    app.extensions["rayfleet.kv"] = RedisStore(redis_url) if redis_url else MemoryStore()

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        app.extensions["rayfleet.db"].session.remove()

    jwt.init_app(app)


def get_db() -> Database:
    return current_app.extensions["rayfleet.db"]


def db_session() -> Session:
    """The current request's session (scoped to the app context's thread)."""
    return get_db().session()


def kv_store() -> KeyValueStore:
    return current_app.extensions["rayfleet.kv"]
