"""The database engine and sessions, the same for the API, the workers, the CLI and tests (no Flask)."""

from __future__ import annotations

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import scoped_session, sessionmaker

from . import prepared_statements


class Database:
    """An engine plus a request-scoped session, removed when the app context ends."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        self.session = scoped_session(sessionmaker(self.engine, expire_on_commit=False))


def make_engine(url: str) -> Engine:
    """An engine for URL. hide_parameters: a database error never carries the statement's values (UUIDs,
    subscription tokens, secrets' hashes) into an exception message, and so never into a log.

    JSON columns are read with orjson: a node list reads three per node, and the standard library's decoder
    was a tenth of that request."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # SQLite ignores foreign keys unless asked; WAL lets readers run beside the writer.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True, json_deserializer=orjson.loads
    )
    prepared_statements.install(engine)  # the statements marked PREPARED are planned once per connection
    return engine
