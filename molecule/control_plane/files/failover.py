"""Replica failover under load: a bounded loop of requests through nginx while one API replica is killed.

Run on the controller by molecule/control_plane's verify. Four threads take request numbers 0..N-1;
three of every four are reads (GET a plan list, GET a user), one is a write (PUT /users/telegram/ID,
an upsert keyed by the Telegram id, so sending it twice leaves one row). When request KILL_AT is taken,
KILL_COMMAND runs (SIGKILL to one replica; systemd restarts it). Afterwards every failed write is sent
again, then every write once more (as if its answer had been lost: it must find its row, 200), and
each written id is read back. Prints one JSON object with the figures; exits 1 when a GET
failed or a retried write did not land.

One GET failure is not nginx's to prevent: a response whose headers the killed replica had already sent
loses its body with the process (requests' ChunkedEncodingError), and nginx cannot pass a request on once
it has answered the client. Such a cut is allowed only within 5 s of the kill, for at most the THREADS
requests in flight, and only when reading it again (as a client retries a GET) succeeds; any other GET
failure (a 502, a refused connection: what proxy_next_upstream must cover) still fails the run.

The admin's bearer token comes in the environment (RAYFLEET_TOKEN), never on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the scenario's self-signed certificate

THREADS = 4


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class Load:
    def __init__(self, base: str, token: str, total: int, kill_at: int, kill_command: list[str], first_id: int):
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.total = total
        self.kill_at = kill_at
        self.kill_command = kill_command
        self.first_id = first_id
        self.next = 0
        self.lock = threading.Lock()
        self.results: list[dict[str, Any]] = []
        self.killed_at: float | None = None
        self.kill_rc: int | None = None

    def take(self) -> int | None:
        with self.lock:
            if self.next >= self.total:
                return None
            number = self.next
            self.next += 1
        if number == self.kill_at:
            threading.Thread(target=self.kill, daemon=True).start()
        return number

    def kill(self) -> None:
        self.killed_at = time.monotonic()
        # The command is the scenario's own (verify.yml), not input from elsewhere.
        self.kill_rc = subprocess.run(self.kill_command, capture_output=True, check=False).returncode  # noqa: S603

    def request(self, session: requests.Session, number: int) -> dict[str, Any]:
        if number % 4 == 3:
            method, path, body = "PUT", f"/api/v1/users/telegram/{self.first_id + number}", {"language": "en"}
        elif number % 4 == 1:
            method, path, body = "GET", f"/api/v1/users/telegram/{self.first_id + number - 2}", None
        else:
            method, path, body = "GET", "/api/v1/plans", None
        started = time.monotonic()
        try:
            response = session.request(
                method, self.base + path, json=body, headers=self.headers, verify=False, timeout=30
            )
            status: int | str = response.status_code
        except requests.RequestException as error:
            status = type(error).__name__
        return {
            "n": number,
            "method": method,
            "path": path,
            "status": status,
            "at": started,
            "seconds": time.monotonic() - started,
        }

    def worker(self) -> None:
        session = requests.Session()
        while (number := self.take()) is not None:
            result = self.request(session, number)
            with self.lock:
                self.results.append(result)

    def run(self) -> None:
        threads = [threading.Thread(target=self.worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def ok(result: dict[str, Any]) -> bool:
    # A read of an id whose write has not happened yet (another thread has it) is a correct 404.
    allowed = {200, 201} | ({404} if result["method"] == "GET" and "/telegram/" in result["path"] else set())
    return result["status"] in allowed


def cut_by_the_kill(result: dict[str, Any], killed_at: float | None) -> bool:
    """A GET whose body was cut off after its headers, within 5 s of the kill (see the module's docstring)."""
    return (
        result["method"] == "GET"
        and result["status"] == "ChunkedEncodingError"
        and killed_at is not None
        and abs(result["at"] - killed_at) < 5
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--kill-at", type=int, default=600)
    parser.add_argument("--kill-command", required=True, help="shell words, e.g. 'podman exec cp1 systemctl kill ...'")
    parser.add_argument("--first-telegram-id", type=int, default=9_100_000_000)
    args = parser.parse_args()

    load = Load(
        args.base,
        os.environ["RAYFLEET_TOKEN"],
        args.requests,
        args.kill_at,
        shlex.split(args.kill_command),
        args.first_telegram_id,
    )
    started = time.monotonic()
    load.run()
    elapsed = time.monotonic() - started

    results = sorted(load.results, key=lambda item: item["n"])
    gets = [item for item in results if item["method"] == "GET"]
    writes = [item for item in results if item["method"] == "PUT"]
    failed_gets = [item for item in gets if not ok(item)]
    failed_writes = [item for item in writes if not ok(item)]
    cut_gets = [item for item in failed_gets if cut_by_the_kill(item, load.killed_at)]
    failed_gets = [item for item in failed_gets if item not in cut_gets]

    # Every failed write again, as a client would retry it: an upsert, so it lands exactly once.
    session = requests.Session()
    reread = [load.request(session, item["n"]) for item in cut_gets]
    retried = [load.request(session, item["n"]) for item in failed_writes]
    # Safe to retry, shown for every write and not only the failed ones: each sent once more as if its
    # answer had been lost lands on the existing row (200, never a second 201).
    resent = [load.request(session, item["n"]) for item in writes]
    # Every write is there now, read back by its id.
    missing = [
        item["path"]
        for item in writes
        if session.get(load.base + item["path"], headers=load.headers, verify=False, timeout=30).status_code != 200
    ]

    around_kill = [item["seconds"] for item in results if load.killed_at and abs(item["at"] - load.killed_at) < 5]
    latencies = [item["seconds"] for item in results]
    figures = {
        "requests": len(results),
        "seconds": round(elapsed, 2),
        "kill_rc": load.kill_rc,
        "gets": len(gets),
        "failed_gets": len(failed_gets),
        "failed_get_samples": [f"{item['method']} {item['status']}" for item in failed_gets[:5]],
        "gets_cut_by_the_kill": len(cut_gets),
        "cut_gets_read_again_ok": sum(1 for item in reread if ok(item)),
        "writes": len(writes),
        "failed_writes": len(failed_writes),
        "failed_write_statuses": sorted({str(item["status"]) for item in failed_writes}),
        "retried_writes_ok": sum(1 for item in retried if item["status"] in (200, 201)),
        "retried_writes_created": sum(1 for item in retried if item["status"] == 201),
        "writes_missing_after_retry": len(missing),
        "resent_writes": len(resent),
        "resent_writes_unchanged": sum(1 for item in resent if item["status"] == 200),
        "first_telegram_id": args.first_telegram_id,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p95": round(percentile(latencies, 0.95) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "max_within_5s_of_kill": round(max(around_kill, default=0) * 1000, 1),
        },
    }
    print(json.dumps(figures))
    good = (
        load.kill_rc == 0
        and len(results) == args.requests
        and not failed_gets
        and len(cut_gets) <= THREADS
        and all(ok(item) for item in reread)
        and len(retried) == figures["retried_writes_ok"]
        and not missing
        and figures["resent_writes_unchanged"] == len(writes)
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
