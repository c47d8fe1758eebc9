"""The PostgreSQL statement that stores a report compiles for exactly the parameters store_report sends."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy.dialects.postgresql import psycopg2

from control_api.services import report_store


class CapturingConnection:
    """Records what store_report executes; no database (the statement's effect is tested on PostgreSQL)."""

    def __init__(self) -> None:
        self.dialect = SimpleNamespace(name="postgresql")
        self.executed: list[tuple[object, dict]] = []

    def execute(self, statement, parameters):
        self.executed.append((statement, parameters))
        return SimpleNamespace(scalar=lambda: 41)


def test_no_parameter_adds_a_column_to_the_statements_writes():
    """SQLAlchemy compiles a statement for its parameters' keys, and a key named after a column of a nested UPDATE
    becomes one more SET (user_configs has user_id and node_id): the keys sent must add nothing."""
    connection = CapturingConnection()
    now = datetime(2026, 12, 6, tzinfo=UTC)
    rows = [{"user_id": 7, "config_id": 3, "bytes_in": 10, "bytes_out": 20}]
    assert report_store.store_report(connection, 5, "r-1", now, (now, now), rows, {3: 30, 4: 0}) == 41
    [(statement, parameters)] = connection.executed
    compiled = statement.compile(dialect=psycopg2.dialect(), column_keys=list(parameters))
    assert sorted(compiled.binds) == sorted(parameters)
    sql = " ".join(str(compiled).split())
    assert re.search(r"UPDATE user_configs SET used_bytes=\(user_configs.used_bytes \+ moved.amount\) FROM", sql), sql
    assert parameters["moved_ids"] == [3] and parameters["moved_amounts"] == [30]  # nothing moved, nothing added
    assert parameters["entry_config_id"] == [3] and parameters["reporting_node"] == 5
