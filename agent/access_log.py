"""The devices each config is used from: distinct client addresses in the core's access log (issue 17).

The core writes one line per connection it accepts, naming the client's address and the user's email
(V2Ray 4: ``<date> <time> <addr>:<port> accepted <dest> email: cfg-12``; Xray adds ``from`` before the
address and ``[inbound >> outbound]`` before ``email:``; IPv6 clients as ``[2001:db8::1]:5555``).
AccessLogReader.poll() reads only what was appended since the previous poll and keeps, per config, the
distinct client addresses (no ports) with the time they were first and last seen; report() lists them
for the heartbeat. The Ansible side reads the same lines (plugins/module_utils/live_sessions.py); the
two cannot import each other, so parse_accepted() here is the agent's own, and a unit test proves both
read the same lines alike.

- Times are the poll's (the agent polls once per heartbeat), not the lines' own: the core writes its
  local time without a zone, and a zone guessed wrong would age out every address at once. A seen time
  is therefore late by at most one interval; lines read in the same poll keep their order.
- The first poll starts at the end of the log (its history carries no usable time); a log that appears
  or is replaced later is read from its start. After an agent restart the counts are low for at most one
  window, never high.
- Rotation: ``copytruncate`` (the file is shorter than the offset read, or its first bytes changed) ->
  read it again from 0; rename (another file at the path) -> the new file from 0. Lines appended to the
  old file after the previous poll are not read: a device shows again at its next connection.
- A missing or unreadable log is no error: it is counted and logged once (again only after it was
  readable in between); what was seen ages out as usual.
- A partial last line waits for its newline. Lines that are no accepted connection with an email
  (rejected connections, garbage, binary, a line cut by rotation) are skipped and counted; a line longer
  than ``max_line_bytes`` is skipped whole. At most ``max_read_bytes`` are read per poll: the older part
  of a larger backlog is skipped (counted).
- Memory: at most ``max_addresses_per_config`` addresses per config (the most recently seen stay), at
  most ``max_configs`` configs (the least recently active one goes) and ``max_addresses`` in all (the
  least recently seen goes). An address not seen for ``window_seconds`` is forgotten.

Addresses are personal data: report() names them only for configs seen from two or more addresses (one
device can never exceed a limit); for the others it gives the count.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .delivery import CONFIG_EMAIL

log = logging.getLogger(__name__)

DEFAULT_PATH = "/var/log/rayfleet-core/access.log"
MAX_LINE_BYTES = 4096  # a real line is under 400 bytes (a 253-character domain as the destination)
MAX_READ_BYTES = 64 * 1024 * 1024  # per poll: ~500k connections
CHUNK_BYTES = 1024 * 1024
HEAD_BYTES = 256  # the first bytes of the file, to notice a copytruncate that the file outgrew since

# <date> <time> [from ][tcp:|udp:]<address>:<port> accepted <destination>[ [<route>]][ email: <email>]
_ACCEPTED = re.compile(
    r"^\S+ \S+ (?:from )?(?:(?:tcp|udp):)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})"
    r" accepted \S+(?: \[[^\]]*\])?(?: email: (?P<email>\S+))?\s*$"
)


def parse_accepted(line: str) -> tuple[str, int, str] | None:
    """(client address, client port, email) of a line naming an accepted connection; None for anything
    else (rejected connections, the core's own messages, no email, a cut line, garbage)."""
    match = _ACCEPTED.match(line)
    if match is None or not match.group("email"):
        return None
    try:
        address = ipaddress.ip_address(match.group("v6") or match.group("v4"))
    except ValueError:
        return None
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        return None
    return str(address), port, match.group("email")


@dataclass
class _Seen:
    first: float
    last: float
    order: int  # lines read in the same poll share a time; this keeps their order


class AccessLogReader:
    """Distinct client addresses per config in the last WINDOW_SECONDS of the access log at PATH."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        window_seconds: float,
        max_addresses_per_config: int = 32,
        max_configs: int = 50_000,
        max_addresses: int = 200_000,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_read_bytes: int = MAX_READ_BYTES,
    ) -> None:
        self.path = os.fspath(path)
        self.window_seconds = window_seconds
        self.max_addresses_per_config = max_addresses_per_config
        self.max_configs = max_configs
        self.max_addresses = max_addresses
        self.max_line_bytes = max_line_bytes
        self.max_read_bytes = max_read_bytes
        self.counts = dict.fromkeys(
            (
                "lines",  # complete lines read
                "accepted",  # of them, accepted connections of a config
                "skipped",  # not an accepted connection with an email: rejected, garbage, cut by rotation
                "foreign",  # accepted for an email that is no config (cfg-<id>)
                "overlong",  # longer than max_line_bytes, skipped whole
                "truncated",  # copytruncate rotations noticed
                "replaced",  # another file at the path (rename rotation, recreated)
                "unreadable",  # polls that could not read the log
                "skipped_bytes",  # backlog beyond max_read_bytes, not read
                "evicted",  # addresses forgotten for a cap before the window ended
            ),
            0,
        )
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file read
        self._offset = 0
        self._head = b""
        self._partial = b""
        self._discarding = False  # inside a line whose start was not read (or too long): drop to its newline
        self._first_poll = True
        self._problem: str | None = None
        self._order = 0
        # (email, address) -> when seen, least recently seen first; and per email its addresses, likewise
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self._configs: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    # -- reading

    def poll(self, now: float) -> None:
        """Read the lines appended since the previous poll, recording them as seen at NOW; forget what
        the window left behind."""
        skip_existing, self._first_poll = self._first_poll, False
        try:
            self._read(now, skip_existing)
        except OSError as exc:
            self._unreadable(exc.strerror or type(exc).__name__)
        self._expire(now)

    def _read(self, now: float, skip_existing: bool) -> None:
        # O_NONBLOCK: a FIFO put at the path must not hang the agent (no effect on a regular file's reads)
        with open(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                self._unreadable("not a regular file")
                return
            identity = (info.st_dev, info.st_ino)
            size = info.st_size
            if identity != self._file:
                if self._file is not None:
                    self.counts["replaced"] += 1
                self._file = identity
                self._restart(size if skip_existing else 0)
                if skip_existing and size and _last_byte(handle, size) != b"\n":
                    self._discarding = True  # the core is writing a line we saw no start of
            elif size < self._offset or _read_at(handle, 0, len(self._head)) != self._head:
                self.counts["truncated"] += 1
                self._restart(0)
            if self._problem is not None:
                log.info("the access log %s is readable again", self.path)
                self._problem = None
            if len(self._head) < HEAD_BYTES:
                self._head = _read_at(handle, 0, HEAD_BYTES)
            if size - self._offset > self.max_read_bytes:
                self.counts["skipped_bytes"] += size - self.max_read_bytes - self._offset
                self._offset = size - self.max_read_bytes
                self._partial, self._discarding = b"", True
            handle.seek(self._offset)
            while self._offset < size:
                chunk = handle.read(min(CHUNK_BYTES, size - self._offset))
                if not chunk:
                    break
                self._offset += len(chunk)
                self._feed(chunk, now)

    def _restart(self, offset: int) -> None:
        self._offset, self._head, self._partial, self._discarding = offset, b"", b"", False

    def _unreadable(self, reason: str) -> None:
        self.counts["unreadable"] += 1
        if self._problem is None:  # once per spell, not every interval
            log.warning("cannot read the access log %s (%s): device counts are not measured", self.path, reason)
        self._problem = reason

    def _feed(self, chunk: bytes, now: float) -> None:
        if self._discarding:
            newline = chunk.find(b"\n")
            if newline < 0:
                return
            self._discarding = False
            chunk = chunk[newline + 1 :]
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            self._line(raw, now)
        if len(self._partial) > self.max_line_bytes:
            self.counts["lines"] += 1
            self.counts["overlong"] += 1
            self._partial, self._discarding = b"", True

    def _line(self, raw: bytes, now: float) -> None:
        self.counts["lines"] += 1
        if len(raw) > self.max_line_bytes:
            self.counts["overlong"] += 1
            return
        # A writer without O_APPEND leaves NULs where a copytruncate cut the file.
        parsed = parse_accepted(raw.lstrip(b"\0").decode("utf-8", errors="replace"))
        if parsed is None:
            self.counts["skipped"] += 1
            return
        address, _port, email = parsed
        if not CONFIG_EMAIL.match(email):
            self.counts["foreign"] += 1
            return
        self.counts["accepted"] += 1
        self._record(email, address, now)

    # -- remembering

    def _record(self, email: str, address: str, now: float) -> None:
        key = (email, address)
        seen = self._seen.get(key)
        if seen is not None:
            seen.last = now
            self._seen.move_to_end(key)
            self._configs[email].move_to_end(address)
            self._configs.move_to_end(email)
            return
        addresses = self._configs.get(email)
        if addresses is None:
            if len(self._configs) >= self.max_configs:
                stale_email, stale = self._configs.popitem(last=False)
                for stale_address in stale:
                    del self._seen[(stale_email, stale_address)]
                self.counts["evicted"] += len(stale)
            addresses = self._configs[email] = OrderedDict()
        else:
            self._configs.move_to_end(email)
            if len(addresses) >= self.max_addresses_per_config:
                oldest, _ = addresses.popitem(last=False)
                del self._seen[(email, oldest)]
                self.counts["evicted"] += 1
        if len(self._seen) >= self.max_addresses:
            self._forget_oldest()
            self.counts["evicted"] += 1
            addresses = self._configs.setdefault(email, OrderedDict())  # the oldest may have been this config's
        self._order += 1
        self._seen[key] = _Seen(now, now, self._order)
        addresses[address] = None

    def _forget_oldest(self) -> None:
        (email, address), _ = self._seen.popitem(last=False)
        addresses = self._configs[email]
        del addresses[address]
        if not addresses:
            del self._configs[email]

    def _expire(self, now: float) -> None:
        cutoff = now - self.window_seconds
        while self._seen and next(iter(self._seen.values())).last < cutoff:
            self._forget_oldest()

    # -- reporting

    def report(self, now: float) -> list[dict[str, Any]]:
        """Per config seen within the window: its number of distinct client addresses, and, when there
        are two or more, the addresses with the unix times each was first and last seen, newest first (the
        list's order decides between addresses first seen in the same poll)."""
        self._expire(now)
        devices: list[dict[str, Any]] = []
        for email in sorted(self._configs, key=lambda name: int(name[4:])):
            addresses = self._configs[email]
            entry: dict[str, Any] = {"email": email, "count": len(addresses)}
            if len(addresses) >= 2:
                seen = sorted(
                    ((address, self._seen[(email, address)]) for address in addresses),
                    key=lambda item: (item[1].first, item[1].order),
                    reverse=True,
                )
                entry["addresses"] = [
                    {"address": address, "first_seen": int(when.first), "last_seen": int(when.last)}
                    for address, when in seen
                ]
            devices.append(entry)
        return devices


def _read_at(handle: Any, offset: int, length: int) -> bytes:
    if length <= 0:
        return b""
    return os.pread(handle.fileno(), length, offset)


def _last_byte(handle: Any, size: int) -> bytes:
    return _read_at(handle, size - 1, 1)
