"""The device guard's reading of the access log and its blocks file (roles/xray/files/rayfleet_device_guard.py):
rotation by copytruncate and by replacement, partial and unparseable lines, a broken blocks file."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

GUARD_PATH = Path(__file__).resolve().parents[2] / "roles" / "xray" / "files" / "rayfleet_device_guard.py"
spec = importlib.util.spec_from_file_location("rayfleet_device_guard", GUARD_PATH)
assert spec is not None and spec.loader is not None
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)


def line(address: str, port: int, email: str) -> str:
    return f"2026/12/05 10:00:00 {address}:{port} accepted tcp:example.com:443 email: {email}\n"


def test_the_follower_reads_only_new_complete_lines_and_survives_rotation(tmp_path: Path):
    log = tmp_path / "access.log"
    log.write_text(line("198.51.100.1", 1000, "cfg-1"))
    follower = guard.LogFollower(str(log))
    follower.start_at_end()
    assert follower.lines() == []  # history is not replayed
    with log.open("a") as handle:
        handle.write(line("198.51.100.2", 1001, "cfg-1") + "garbage \x00\xff line\n" + "2026/12/05 10:00:01 198.51")
    assert [guard.live_sessions.parse_accepted(text) for text in follower.lines()] == [
        ("198.51.100.2", 1001, "cfg-1"),
        None,
    ]
    with log.open("a") as handle:
        handle.write(".100.3:1002 accepted tcp:example.com:443 email: cfg-2\n")  # the partial line completed
    assert guard.refused_peers(follower.lines(), {("cfg-2", "198.51.100.3")}) == {("198.51.100.3", 1002)}

    log.write_text(line("198.51.100.4", 1003, "cfg-1"))  # copytruncate, then a new line: shorter than before
    assert guard.refused_peers(follower.lines(), {("cfg-1", "198.51.100.4")}) == {("198.51.100.4", 1003)}

    replaced = tmp_path / "access.log.new"
    replaced.write_text(line("198.51.100.5", 1004, "cfg-1") * 50)
    os.replace(replaced, log)  # another file at the path: read from its start
    assert len(follower.lines()) == 50


def test_blocks_only_for_their_pair_until_their_time_and_a_broken_file_keeps_the_last_good(tmp_path: Path):
    path = tmp_path / "blocks.json"
    blocks = guard.Blocks(str(path))
    assert blocks.reload() is False and blocks.active(0) == set()  # no file yet: nothing blocked
    path.write_text(
        json.dumps(
            {
                "ports": [8443, 8444],
                "blocks": [
                    {"email": "cfg-1", "address": "2001:DB8::1", "until": 100},
                    {"email": "cfg-2", "address": "198.51.100.9", "until": 50},
                ],
            }
        )
    )
    assert blocks.reload() is True and blocks.ports == [8443, 8444]
    assert blocks.active(60) == {("cfg-1", "2001:db8::1")}  # normalised like the log's; cfg-2's block ended
    assert guard.refused_peers(
        [line("[2001:db8::1]", 5, "cfg-1"), line("[2001:db8::1]", 6, "cfg-3"), line("198.51.100.9", 7, "cfg-1")],
        blocks.active(60),
    ) == {("2001:db8::1", 5)}  # another customer at the same address, and the customer elsewhere: untouched

    path.write_text("{not json")
    assert blocks.reload() is False
    assert blocks.active(60) == {("cfg-1", "2001:db8::1")}
    path.unlink()
    assert blocks.reload() is True and blocks.active(60) == set()
