"""One sync (or provisioning) at a time per node, whichever job runs it: a node's own job or a fleet batch.

    with node_locks(session_factory, [3, 4, 5]) as held:    # held: the ids this run may sync
        ...

RQ's unique job ids keep two `sync-node-<id>` jobs apart, but a fleet batch (jobs/tasks.py sync_fleet_job)
syncs nodes under another id. On PostgreSQL the lock is a session-level advisory lock taken on a connection
held for the run: a worker that dies mid-run loses its connection, and PostgreSQL releases the lock with it,
so no lock outlives its holder. On SQLite (the embedded default, one process) it is a lock in this process.
A node whose lock is taken is left out (try, never wait): its holder is syncing it already and drains
what changed meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import text

from .context import SessionFactory

# The advisory lock space: (this key, node id). Any constant works; it names rayfleet's node syncs.
ADVISORY_KEY = 0x52464E53  # "RFNS"

_local_guard = threading.Lock()
_local_held: set[int] = set()


@contextmanager
def node_locks(session_factory: SessionFactory, node_ids: Iterable[int]) -> Iterator[set[int]]:
    """Take the sync lock of each of NODE_IDS that is free; yield the ids taken; release them after."""
    wanted = sorted(set(node_ids))
    with session_factory() as session:
        engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        yield from _local_locks(wanted)
        return
    with engine.connect() as connection:
        held: set[int] = set()
        try:
            for node_id in wanted:
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:key, :node)"), {"key": ADVISORY_KEY, "node": node_id}
                ).scalar()
                if taken:
                    held.add(node_id)
            # The locks belong to the session, not a transaction: end the implicit one so the held
            # connection is idle (not "idle in transaction") while the playbook runs.
            connection.commit()
            yield held
        finally:
            for node_id in held:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key, :node)"), {"key": ADVISORY_KEY, "node": node_id}
                )
            connection.commit()


def _local_locks(wanted: list[int]) -> Iterator[set[int]]:
    with _local_guard:
        held = {node_id for node_id in wanted if node_id not in _local_held}
        _local_held.update(held)
    try:
        yield held
    finally:
        with _local_guard:
            _local_held.difference_update(held)
