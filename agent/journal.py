"""An append-only local journal of traffic reports, written before anything is sent (DESIGN.md §5).

One JSON object per line. append() returns only after the line is on disk (write + fsync, and an
fsync of the directory when the file is created), so a counter read with reset is never lost to a
crash. pending() returns every report not yet acknowledged; a torn line (a crash mid-write) is
skipped and the rest kept. acknowledge() removes delivered reports by rewriting the file to a
temporary sibling, fsyncing it and os.replace()-ing it over the journal: a crash at any point leaves
either the old or the new file, never a mix.

Writers serialise on a threading lock (threads) and an flock on a sidecar `<journal>.lock` file
(processes); the sidecar, not the journal, carries the lock because acknowledge() replaces the journal's
inode. quarantine() moves reports the API can never accept to `<journal>.quarantine` (appended, fsync'd,
one JSON object a line with the reason), out of the way of the rest but never silently dropped. A report:

    {"report_id": "<uuid4>", "period_start": "<ISO 8601>", "period_end": "<ISO 8601>",
     "usage": [{"email": "cfg-12", "uplink": 123, "downlink": 4567}]}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Report = dict[str, Any]


class JournalError(ValueError):
    """A report that cannot be journaled as given."""


def _validate(report: Mapping[str, Any]) -> None:
    if "report_id" in report:
        raise JournalError("the journal assigns report_id itself")
    for key in ("period_start", "period_end"):
        if not isinstance(report.get(key), str) or not report[key]:
            raise JournalError(f"{key} must be a non-empty string (ISO 8601)")
    usage = report.get("usage")
    if not isinstance(usage, list):
        raise JournalError("usage must be a list")
    for entry in usage:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("email"), str) or not entry["email"]:
            raise JournalError("every usage entry needs a non-empty email")
        for direction in ("uplink", "downlink"):
            value = entry.get(direction)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise JournalError(f"{direction} of {entry['email']} must be a non-negative integer")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Journal:
    """The journal at PATH (created on first append, with its directory, mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _fsync_directory(self.path.parent.parent)  # the new directory's entry is durable too
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def append(self, report: Mapping[str, Any]) -> str:
        """Journal REPORT under a fresh report id; returns the id once the line is durable."""
        _validate(report)
        report_id = str(uuid.uuid4())
        record = {**report, "report_id": report_id}
        line = json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A torn line from a crash: end it, so the new report starts on a line of its own.
                    line = b"\n" + line
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_directory(self.path.parent)
        return report_id

    def _read_lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return data.split(b"\n")

    def _parse(self, lines: Iterable[bytes]) -> list[tuple[Report, bytes]]:
        parsed: list[tuple[Report, bytes]] = []
        torn = 0
        for raw in lines:
            if not raw.strip():
                continue
            try:
                report = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                torn += 1
                continue
            if not isinstance(report, dict) or not isinstance(report.get("report_id"), str):
                torn += 1
                continue
            parsed.append((report, raw))
        if torn:
            log.warning("journal %s: skipped %d torn or unreadable line(s)", self.path, torn)
        return parsed

    def pending(self) -> list[Report]:
        """Every journaled, unacknowledged report, oldest first."""
        with self._locked():
            return [report for report, _raw in self._parse(self._read_lines())]

    @property
    def quarantine_path(self) -> Path:
        return self.path.with_name(self.path.name + ".quarantine")

    def quarantined(self) -> list[Report]:
        """The reports set aside so far, each with its `quarantine_reason`."""
        try:
            lines = self.quarantine_path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        return [report for report, _raw in self._parse(lines)]

    def quarantine(self, report_ids: Iterable[str], reason: str) -> int:
        """Move REPORT_IDS to the quarantine file (kept, with REASON), then out of the journal; how many moved."""
        wanted = set(report_ids)
        if not wanted:
            return 0
        with self._locked():
            moving = [report for report, _raw in self._parse(self._read_lines()) if report["report_id"] in wanted]
            if not moving:
                return 0
            lines = b"".join(
                json.dumps({**report, "quarantine_reason": reason}, separators=(",", ":"), sort_keys=True).encode()
                + b"\n"
                for report in moving
            )
            fd = os.open(self.quarantine_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _write_all(fd, lines)
                os.fsync(fd)
            finally:
                os.close(fd)
            # Only once they are durable beside it do they leave the journal.
            self._drop({report["report_id"] for report in moving})
        return len(moving)

    def acknowledge(self, report_ids: Iterable[str]) -> int:
        """Remove the reports REPORT_IDS (delivered); returns how many were removed. Unknown ids are ignored."""
        delivered = set(report_ids)
        if not delivered:
            return 0
        with self._locked():
            return self._drop(delivered)

    def _drop(self, report_ids: set[str]) -> int:
        """Rewrite the journal without REPORT_IDS (the caller holds the lock); how many were dropped."""
        parsed = self._parse(self._read_lines())
        kept = [raw for report, raw in parsed if report["report_id"] not in report_ids]
        removed = len(parsed) - len(kept)
        if not removed:
            return 0
        # Torn lines are dropped with the rewrite: they never held a whole report.
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, b"".join(raw + b"\n" for raw in kept))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp_path, self.path)
        _fsync_directory(self.path.parent)
        return removed
