"""Alembic environment: the engine comes from control_api.migrate (config.attributes["engine"]).

On SQLite, batch mode rebuilds a table (copy, DROP, rename). With foreign keys enforced (database.py
turns them on for every connection) that DROP deletes the rows first and fires the foreign keys of
the tables that point at it: RESTRICT refuses (a plan with configs cannot be rebuilt), CASCADE and SET
NULL would silently delete or unlink rows (usage, ledger entries). So foreign keys are off while the
migrations run, as SQLite's ALTER TABLE documentation prescribes, and PRAGMA foreign_key_check must find
nothing broken before they commit.
"""

from __future__ import annotations

from alembic import context

from control_api.models import Base

config = context.config
engine = config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        # A no-op inside a transaction: set before the migration's transaction begins.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER constraints; batch mode rebuilds tables instead.
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
