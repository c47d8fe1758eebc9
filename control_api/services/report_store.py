"""The writes that store one traffic report: its report row (once per node and report id), its usage rows and the
configs' used_bytes.

    report_row = store_report(connection, node_id, report_id, received_at, usage_rows, moved)

The report row goes in first with ON CONFLICT DO NOTHING on the unique (node_id, report_id): a repeated delivery of
the same id inserts nothing (None is returned and nothing else is written), and a concurrent one waits on the
first's row and then does the same, never counted twice.

On PostgreSQL the three writes are one constant statement (prepared once per connection): the report row's INSERT
is a data-modifying WITH, the usage rows are inserted FROM unnest() of one array per column joined to its RETURNING,
and used_bytes is raised FROM unnest(ids, amounts) only when it returned a row. One statement where there were three
is two round trips, and two of SQLAlchemy's executions, fewer on every heartbeat. The foreign keys of the usage
rows are checked at the statement's end, when the report row is there. SQLite (the embedded default) runs the three
as separate statements in the same transaction.

used_bytes is added in SQL, so that concurrent reports for one config add up instead of overwriting. PostgreSQL
locks the configs in the join's order, which is not guaranteed to be the ids' order: two nodes reporting the same
moving configs at the same moment may deadlock, and PostgreSQL then aborts one heartbeat, whose agent sends the
report again from its journal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Connection, bindparam, case, exists, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import Usage, UsageReport, UserConfig
from ..prepared_statements import PREPARED

# The per-config columns of a usage row; report_id, period_start and period_end are the report's.
USAGE_COLUMNS = ("user_id", "config_id", "bytes_in", "bytes_out")
# The reports of a heartbeat interval name a few dozen configs at most, so their counts repeat: those statements
# are kept. A larger report builds its own: a statement keeps three expression objects per config, and a node
# choosing its report sizes must not grow every worker's memory.
MAX_CACHED_USED_BYTES = 64


def store_report(
    connection: Connection,
    node_id: int,
    report_id: str,
    received_at: datetime,
    period: tuple[datetime, datetime],
    usage_rows: Sequence[Mapping[str, int]],
    moved: Mapping[int, int],
) -> int | None:
    """Store the report REPORT_ID of NODE_ID: its row, the USAGE_ROWS (USAGE_COLUMNS each) of PERIOD (start, end),
    and used_bytes += MOVED[id] for each config in MOVED. Returns the report row's id, or None (and writes nothing)
    when the node stored that report id before."""
    amounts = {config_id: amount for config_id, amount in moved.items() if amount}
    if connection.dialect.name == "postgresql":
        ids = sorted(amounts)
        parameters: dict[str, Any] = {
            f"entry_{column}": [row[column] for row in usage_rows] for column in USAGE_COLUMNS
        }
        parameters.update(
            reporting_node=node_id,
            report_key=report_id,
            received=received_at,
            from_time=period[0],
            to_time=period[1],
            moved_ids=ids,
            moved_amounts=[amounts[config_id] for config_id in ids],
        )
        return connection.execute(_postgresql_statement(), parameters).scalar()
    report_row = connection.execute(
        _sqlite_report_insert(), {"node_id": node_id, "report_id": report_id, "received_at": received_at}
    ).scalar()
    if report_row is None:
        return None
    if usage_rows:
        shared = {"report_id": report_row, "period_start": period[0], "period_end": period[1]}
        connection.execute(insert(Usage.__table__), [{**row, **shared} for row in usage_rows])
    if amounts:
        _add_used_bytes_sqlite(connection, amounts)
    return report_row


@functools.cache
def _postgresql_statement() -> Any:
    """WITH report AS (INSERT the report row ON CONFLICT DO NOTHING RETURNING id), stored AS (INSERT the usage rows
    from the column arrays, joined to report), added AS (UPDATE used_bytes from (ids, amounts) WHERE report has a
    row) SELECT report.id. Built once.

    No parameter is named after a column of the tables it writes: SQLAlchemy compiles a statement for the keys of
    its parameters, and a key that names a column of a nested UPDATE becomes one more SET of that column."""
    reports, usage, configs = UsageReport.__table__, Usage.__table__, UserConfig.__table__
    report = (
        postgresql_insert(reports)
        .values(
            node_id=bindparam("reporting_node", type_=reports.c.node_id.type),
            report_id=bindparam("report_key", type_=reports.c.report_id.type),
            received_at=bindparam("received", type_=reports.c.received_at.type),
        )
        .on_conflict_do_nothing(index_elements=["node_id", "report_id"])
        .returning(reports.c.id)
        .cte("report")
    )
    rows = (
        func.unnest(*[bindparam(f"entry_{column}", type_=ARRAY(BigInteger)) for column in USAGE_COLUMNS])
        .table_valued(*USAGE_COLUMNS)
        .render_derived(name="entry")
    )
    stored = (
        insert(usage)
        .from_select(
            [*USAGE_COLUMNS, "report_id", "period_start", "period_end"],
            select(
                *[rows.c[column] for column in USAGE_COLUMNS],
                report.c.id,
                bindparam("from_time", type_=usage.c.period_start.type),
                bindparam("to_time", type_=usage.c.period_end.type),
            ).select_from(rows.join(report, true())),
        )
        .cte("stored")
    )
    moved = (
        func.unnest(
            bindparam("moved_ids", type_=ARRAY(BigInteger)), bindparam("moved_amounts", type_=ARRAY(BigInteger))
        )
        .table_valued("id", "amount")
        .render_derived(name="moved")
    )
    added = (
        update(configs)
        .where(configs.c.id == moved.c.id, exists(select(report.c.id)))
        .values(used_bytes=configs.c.used_bytes + moved.c.amount)
        .cte("added")
    )
    return select(report.c.id).add_cte(stored, added).execution_options(**PREPARED)


@functools.cache
def _sqlite_report_insert() -> Any:
    reports = UsageReport.__table__
    return (
        sqlite_insert(reports)
        .values(node_id=bindparam("node_id"), report_id=bindparam("report_id"), received_at=bindparam("received_at"))
        .on_conflict_do_nothing(index_elements=["node_id", "report_id"])
        .returning(reports.c.id)
    )


def _add_used_bytes_sqlite(connection: Connection, amounts: Mapping[int, int]) -> None:
    """used_bytes += AMOUNTS[id] in one UPDATE: a CASE over the ids (IN), SQLite having no arrays."""
    parameters = {}
    for number, config_id in enumerate(sorted(amounts)):
        parameters[f"id_{number}"] = config_id
        parameters[f"bytes_{number}"] = amounts[config_id]
    count = len(amounts)
    statement = _cached_used_bytes_update(count) if count <= MAX_CACHED_USED_BYTES else _used_bytes_update(count)
    connection.execute(statement, parameters)


@functools.lru_cache(maxsize=MAX_CACHED_USED_BYTES)
def _cached_used_bytes_update(count: int) -> Any:
    return _used_bytes_update(count)


def _used_bytes_update(count: int) -> Any:
    """The SQLite UPDATE for COUNT configs, with parameters :id_0, :bytes_0, ..."""
    configs = UserConfig.__table__
    ids = [bindparam(f"id_{number}", type_=configs.c.id.type) for number in range(count)]
    added = case(
        *[(configs.c.id == ids[number], bindparam(f"bytes_{number}", type_=BigInteger())) for number in range(count)],
        else_=0,
    )
    return update(configs).where(configs.c.id.in_(ids)).values(used_bytes=configs.c.used_bytes + added)
