"""agent.journal: durable append, torn-line tolerance, atomic acknowledge, no loss, no interleaving.

Crashes are real: a child process is SIGKILLed mid-operation, then a fresh Journal reads the file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agent.journal import Journal, JournalError

REPO = Path(__file__).resolve().parents[2]


def report(n: int, email: str = "cfg-1") -> dict:
    return {
        "period_start": f"2026-01-01T00:{n % 60:02d}:00+00:00",
        "period_end": f"2026-01-01T00:{n % 60:02d}:30+00:00",
        "usage": [{"email": email, "uplink": n, "downlink": 10 * n}],
    }


def without_id(stored: dict) -> dict:
    return {key: value for key, value in stored.items() if key != "report_id"}


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )


def test_append_pending_acknowledge(tmp_path: Path):
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    assert journal.pending() == []
    ids = [journal.append(report(n)) for n in range(3)]

    assert len(set(ids)) == 3
    pending = journal.pending()
    assert [item["report_id"] for item in pending] == ids
    assert [without_id(item) for item in pending] == [report(n) for n in range(3)]
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"

    assert journal.acknowledge([ids[1]]) == 1
    assert [item["report_id"] for item in journal.pending()] == [ids[0], ids[2]]
    assert journal.acknowledge([ids[1], "not-a-known-id"]) == 0
    assert journal.acknowledge([]) == 0
    assert journal.acknowledge(ids) == 2
    assert journal.pending() == []


def test_every_line_is_one_whole_json_report(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    report_id = journal.append(report(7))
    (line,) = journal.path.read_text().splitlines()
    assert json.loads(line) == {**report(7), "report_id": report_id}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**report(1), "report_id": "mine"}, "assigns report_id"),
        ({**report(1), "period_end": ""}, "period_end"),
        ({**report(1), "usage": {}}, "usage must be a list"),
        ({**report(1), "usage": [{"email": "", "uplink": 1, "downlink": 1}]}, "email"),
        ({**report(1), "usage": [{"email": "cfg-1", "uplink": -1, "downlink": 1}]}, "uplink"),
        ({**report(1), "usage": [{"email": "cfg-1", "uplink": 1, "downlink": 1.5}]}, "downlink"),
    ],
)
def test_malformed_reports_are_refused_and_nothing_is_written(tmp_path: Path, bad: dict, message: str):
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(JournalError, match=message):
        journal.append(bad)
    assert journal.pending() == []


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    ids = [journal.append(report(n)) for n in range(2)]
    whole = journal.path.read_bytes()
    # A crash mid-write: half of a third line, no newline.
    line = json.dumps({**report(2), "report_id": "torn"}).encode()
    journal.path.write_bytes(whole + line[: len(line) // 2])

    assert [item["report_id"] for item in Journal(journal.path).pending()] == ids

    # The next append must not glue itself onto the fragment.
    later = journal.append(report(3))
    assert [item["report_id"] for item in journal.pending()] == [*ids, later]
    assert journal.acknowledge([ids[0]]) == 1
    assert [item["report_id"] for item in journal.pending()] == [ids[1], later]


def test_a_process_killed_after_appending_loses_nothing(tmp_path: Path):
    path = tmp_path / "journal.jsonl"
    child = run_child(
        f"""
        import os, signal
        from agent.journal import Journal
        journal = Journal({str(path)!r})
        for n in range(5):
            print(journal.append({{"period_start": "a", "period_end": "b",
                                   "usage": [{{"email": "cfg-" + str(n), "uplink": n, "downlink": n}}]}}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # dies before any acknowledge
        """
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    ids = child.stdout.split()
    assert len(ids) == 5
    assert [item["report_id"] for item in Journal(path).pending()] == ids


def test_a_process_killed_inside_acknowledge_before_the_replace_loses_nothing(tmp_path: Path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    ids = [journal.append(report(n)) for n in range(4)]
    child = run_child(
        f"""
        import os, signal
        from agent.journal import Journal
        # Die at the very moment the new file would replace the journal: it is written and fsynced.
        os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
        Journal({str(path)!r}).acknowledge({ids[:2]!r})
        """
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert path.with_name(path.name + ".tmp").exists(), "the child did not get as far as the replace"
    assert [item["report_id"] for item in Journal(path).pending()] == ids  # nothing delivered was lost either

    # The leftover temporary file does not get in the way of the next acknowledge.
    assert Journal(path).acknowledge(ids[:2]) == 2
    assert [item["report_id"] for item in Journal(path).pending()] == ids[2:]


def test_concurrent_appends_from_threads_never_interleave(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    big_usage = [{"email": f"cfg-{n}", "uplink": n, "downlink": n} for n in range(300)]  # ~12 KB lines
    ids: list[str] = []
    ids_lock = threading.Lock()

    def writer(worker: int) -> None:
        for n in range(25):
            report_id = journal.append(
                {"period_start": str(worker), "period_end": str(n), "usage": big_usage[: 1 + (worker * n) % 300]}
            )
            with ids_lock:
                ids.append(report_id)

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = journal.path.read_text().splitlines()
    assert len(lines) == 200
    parsed = [json.loads(line) for line in lines]  # each line is one whole document
    assert sorted(item["report_id"] for item in parsed) == sorted(ids)
    assert len(journal.pending()) == 200


def test_acknowledging_a_subset_while_appending_never_loses_a_report(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    appended: list[str] = []
    done = threading.Event()

    def producer() -> None:
        for n in range(150):
            appended.append(journal.append(report(n)))
        done.set()

    acknowledged: set[str] = set()
    thread = threading.Thread(target=producer)
    thread.start()
    rounds = 0
    while not done.is_set() or rounds == 0:
        rounds += 1
        durable = list(appended)  # append() has returned for these, so they must be pending
        pending = [item["report_id"] for item in journal.pending()]
        assert set(durable) - acknowledged <= set(pending)
        subset = pending[::2]
        journal.acknowledge(subset)
        acknowledged.update(subset)
    thread.join()

    remaining = [item["report_id"] for item in journal.pending()]
    assert acknowledged, "the test acknowledged nothing"
    assert remaining == [report_id for report_id in appended if report_id not in acknowledged]
