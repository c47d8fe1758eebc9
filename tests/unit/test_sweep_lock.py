"""The embedded default's sweep guard: one sweep per machine's database, across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import time

from control_api.jobs.sweep import embedded_lock, embedded_lock_path

HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(30)
"""


def test_the_lock_file_sits_beside_a_sqlite_database(tmp_path):
    assert embedded_lock_path(f"sqlite:///{tmp_path}/rayfleet.sqlite3") == tmp_path / "rayfleet.sqlite3.sweep.lock"
    other = embedded_lock_path("postgresql://db.example/rayfleet")
    assert other.name.startswith("rayfleet-sweep-") and other == embedded_lock_path("postgresql://db.example/rayfleet")


def test_a_second_sweep_in_this_process_or_another_one_is_refused(tmp_path):
    path = tmp_path / "db.sweep.lock"
    with embedded_lock(path) as first:
        assert first is True
        with embedded_lock(path) as second:  # another thread of this process
            assert second is False
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with embedded_lock(path) as taken:  # another process holds it
            assert taken is False
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.05)
    with embedded_lock(path) as again:
        assert again is True
