"""Server-side prepared statements for the hottest statements, on PostgreSQL.

psycopg2 sends every statement as text, and PostgreSQL parses and plans each one anew. For a node's heartbeat
that was most of PostgreSQL's CPU: at 20 configs a node, planning took 0.17-0.26 ms per statement and executing
0.02-0.03 ms (docs/runbooks/bench.md). A statement built with `.execution_options(**PREPARED)` is prepared once
per database connection, `PREPARE rf_<digest of its SQL> (<its parameters' SQL types>) AS <the SQL>`, and then
sent as `EXECUTE rf_<digest>(<the same parameters>)`: SQLAlchemy has processed the parameters as usual, psycopg2
binds them as usual, and the rows come back in the statement's own columns, so the result reads as before.

Anything else runs exactly as sent: another statement, another database, an executemany, SQL with a literal
percent sign, or a parameter whose SQL type SQLAlchemy does not know (PostgreSQL could not type it). A prepared
statement outlives a rolled-back transaction and is replanned by PostgreSQL after a schema change; a connection
that is replaced (invalidated) starts with none, and its record of what it prepared (`Connection.info`) goes with
it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.types import NullType

# Execution options that mark a statement to be prepared: `statement.execution_options(**PREPARED)`.
PREPARED = {"rayfleet_prepared": True}
_INFO_KEY = "rayfleet_prepared"
_PARAMETER = re.compile(r"%\((\w+)\)s")
_EXPANDED = re.compile(r"^(\w+)_\d+$")  # an IN list's element, rendered as <its parameter>_<n>
# Per connection. Every marked statement has one text (a fixed IN list, like the served statuses, renders the
# same each time), so this is a guard, not a cache size: past it, statements run unprepared.
MAX_PREPARED = 64


def install(engine: Engine) -> None:
    """Prepare the marked statements on ENGINE's connections (PostgreSQL through psycopg2 only)."""
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2":
        event.listen(engine, "before_cursor_execute", _execute_prepared, retval=True)


def _execute_prepared(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    if (
        executemany
        or context is None
        or not context.execution_options.get("rayfleet_prepared")
        or not isinstance(parameters, dict)
        or "%%" in statement
    ):
        return statement, parameters
    names = list(dict.fromkeys(_PARAMETER.findall(statement)))
    name = "rf_" + hashlib.sha256(statement.encode()).hexdigest()[:24]
    prepared = conn.info.setdefault(_INFO_KEY, set())
    if name not in prepared:
        if len(prepared) >= MAX_PREPARED:
            return statement, parameters
        types = _parameter_types(context.compiled, names, conn.dialect)
        if types is None:
            return statement, parameters
        position = {parameter: number for number, parameter in enumerate(names, start=1)}
        numbered = _PARAMETER.sub(lambda match: f"${position[match.group(1)]}", statement)
        declared = f" ({', '.join(types)})" if types else ""
        cursor.execute(f"PREPARE {name}{declared} AS {numbered}")
        prepared.add(name)
    arguments = ", ".join(f"%({parameter})s" for parameter in names)
    return f"EXECUTE {name}({arguments})" if names else f"EXECUTE {name}", parameters


def _parameter_types(compiled: Any, names: list[str], dialect: Any) -> list[str] | None:
    """The SQL type of each parameter NAMES (as the statement spells them), or None when one is unknown."""
    if compiled is None:
        return None
    spelled = {escaped: original for original, escaped in (compiled.escaped_bind_names or {}).items()}
    types = []
    for name in names:
        bind = compiled.binds.get(spelled.get(name, name))
        if bind is None and (element := _EXPANDED.match(name)):
            bind = compiled.binds.get(spelled.get(element.group(1), element.group(1)))
            bind = bind if bind is not None and bind.expanding else None
        if bind is None or isinstance(bind.type, NullType):
            return None
        sql_type = bind.type.dialect_impl(dialect)
        sql_type = getattr(sql_type, "impl_instance", sql_type)  # a TypeDecorator's own SQL type
        types.append(dialect.type_compiler_instance.process(sql_type))
    return types
