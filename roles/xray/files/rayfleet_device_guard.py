#!/usr/bin/python3
"""rayfleet-device-guard: refuse a customer's blocked devices, and nobody else (issue 17, device limits).

The control API blocks, for a cool-down, the newest client addresses of a config used from more devices
than its plan allows; every sync writes the node's blocks to BLOCKS (JSON: {"ports": [the core's inbound
ports], "blocks": [{"email": "cfg-12", "address": "198.51.100.7", "until": <epoch seconds>}]}). This root
service follows the core's access log and resets every connection the core accepts for a blocked
(email, address) pair, and, when the blocks change, the pair's connections already open. A pair is one
customer at one address: another customer behind the same address (a NAT) is never touched, and neither
are the core's process or anyone else's connections (the sockets are destroyed one by one, SOCK_DESTROY
through `ss -K`, as a sync does for removed users: live_sessions.py, shipped beside this file).

The connection is refused after the core accepted it: the client sees a reset within one poll of the
log (POLL_SECONDS) plus an `ss` run. Nothing about who was refused is logged here (personal data): the
journal gets counts only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_sessions  # shipped beside this file by the role

log = logging.getLogger("rayfleet-device-guard")

POLL_SECONDS = 0.05
REPORT_SECONDS = 60.0
MAX_READ_BYTES = 8 * 1024 * 1024  # per poll; older backlog is skipped (its connections were swept)
MAX_BLOCKS_BYTES = 4 * 1024 * 1024


class Blocks:
    """The blocks file, reread when it changes; a broken file keeps the last good blocks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int, int] | None = None
        self.ports: list[int] = []
        self.entries: list[tuple[str, str, float]] = []

    def reload(self) -> bool:
        """True when the file changed (and was read)."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            changed = self.stamp is not None
            self.stamp, self.ports, self.entries = None, [], []
            return changed
        stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        try:
            if status.st_size > MAX_BLOCKS_BYTES:
                raise ValueError(f"larger than {MAX_BLOCKS_BYTES} bytes")
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
            ports = sorted({int(port) for port in document.get("ports", []) if 0 < int(port) < 65536})
            entries = [
                (str(block["email"]), live_sessions.normal_address(block["address"]), float(block["until"]))
                for block in document.get("blocks", [])
            ]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("the blocks file %s is unreadable (%s); the previous blocks stay", self.path, exc)
            return False
        self.ports, self.entries = ports, entries
        log.info("%d block(s) on %d port(s)", len(entries), len(ports))
        return True

    def active(self, now: float) -> set[tuple[str, str]]:
        return {(email, address) for email, address, until in self.entries if until > now}


class LogFollower:
    """New lines of the access log since the previous call; survives copytruncate and replacement."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""

    def start_at_end(self) -> None:
        try:
            status = os.stat(self.path)
        except OSError:
            return
        self.inode, self.offset = status.st_ino, status.st_size

    def lines(self) -> list[str]:
        try:
            status = os.stat(self.path)
        except OSError:
            return []
        if status.st_ino != self.inode or status.st_size < self.offset:
            self.inode, self.offset, self.partial = status.st_ino, 0, b""  # rotated or replaced: from its start
        if status.st_size == self.offset:
            return []
        if status.st_size - self.offset > MAX_READ_BYTES:
            self.offset, self.partial = status.st_size - MAX_READ_BYTES, b""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(MAX_READ_BYTES)
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        complete, _sep, self.partial = data.rpartition(b"\n")
        return complete.decode("utf-8", errors="replace").splitlines() if _sep else []


def refused_peers(lines: list[str], active: set[tuple[str, str]]) -> set[tuple[str, int]]:
    """{(address, port)} of the connections LINES accepted for an ACTIVE (email, address) pair."""
    peers = set()
    for line in lines:
        parsed = live_sessions.parse_accepted(line)
        if parsed is not None and (parsed[2], parsed[0]) in active:
            peers.add(parsed[:2])
    return peers


def open_peers(log_path: str, active: set[tuple[str, str]]) -> set[tuple[str, int]]:
    """{(address, port)} of open connections whose latest accept was for an ACTIVE pair."""
    owners = live_sessions.latest_owners(live_sessions.log_lines(log_path))
    return {peer for peer, email in owners.items() if (email, peer[0]) in active}


def run(blocks_path: str, log_path: str, poll_seconds: float = POLL_SECONDS, rounds: int | None = None) -> None:
    blocks, follower = Blocks(blocks_path), LogFollower(log_path)
    follower.start_at_end()
    active: set[tuple[str, str]] = set()
    refused_total, reported_at = 0, time.monotonic()
    done = 0
    while rounds is None or done < rounds:
        done += 1
        now = time.time()
        changed = blocks.reload()
        current = blocks.active(now)
        try:
            if changed and current - active:
                # New blocks: the pairs' connections that are already open go too.
                swept = live_sessions.destroy_peers(blocks.ports, open_peers(log_path, current - active))
                if swept:
                    log.info("reset %d open connection(s) of newly blocked devices", swept)
            peers = refused_peers(follower.lines(), current)
            if peers:
                refused_total += live_sessions.destroy_peers(blocks.ports, peers)
        except Exception:  # a failed ss run costs this round, never the guard
            log.exception("resetting blocked devices' connections failed")
        # A blocked client retries all the time: one journal line a minute at most.
        if refused_total and time.monotonic() - reported_at >= REPORT_SECONDS:
            log.info("refused %d connection(s) of blocked devices", refused_total)
            refused_total, reported_at = 0, time.monotonic()
        active = current
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", required=True, help="the blocks file the sync writes")
    parser.add_argument("--access-log", required=True, help="the core's access log")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    run(args.blocks, args.access_log, max(0.01, args.poll_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
