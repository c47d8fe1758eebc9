"""agent.access_log: the devices each config is used from, read from the core's access log (issue 17).

The reader survives rotation (copytruncate and rename), a missing or unreadable log, partial lines,
lines it cannot parse (garbage, binary, over-long); it forgets what the window left behind and bounds its
memory; its parser reads the core's lines exactly as the sync's live_sessions.parse_accepted does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest

from agent.__main__ import Agent
from agent.access_log import AccessLogReader, parse_accepted
from agent.config import ConfigError, config_from_values

REPO = Path(__file__).resolve().parents[2]
WINDOW = 600
T0 = 1_800_000_000.0


def v2ray(address: str, port: int, email: str, dest: str = "tcp:127.0.0.1:41365") -> str:
    """V2Ray 4.34's line; ADDRESS as the core writes it (IPv6 in brackets)."""
    return f"2026/12/05 06:23:56 {address}:{port} accepted {dest} email: {email}\n"


def xray(address: str, port: int, email: str, dest: str = "tcp:www.example.com:443") -> str:
    return f"2026/12/05 06:23:56.123456 from {address}:{port} accepted {dest} [in-vless >> direct] email: {email}\n"


def live_sessions():
    """plugins/module_utils/live_sessions.py by path: the agent and the collection cannot import each other."""
    spec = importlib.util.spec_from_file_location(
        "rayfleet_live_sessions_under_test", REPO / "plugins" / "module_utils" / "live_sessions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLES = [
    "2026/12/05 06:23:56 127.0.0.1:54750 accepted tcp:127.0.0.1:41365 email: cfg-1",
    "2026/12/05 06:23:56 203.0.113.5:54750 accepted udp:8.8.8.8:53 email: cfg-12",
    "2026/12/05 06:23:56 tcp:203.0.113.5:54750 accepted tcp:example.com:443 email: cfg-12",
    "2026/12/05 06:23:56 [2001:db8::1]:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 [2001:DB8:0:0::1]:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 [::ffff:203.0.113.9]:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56.123456 from 198.51.100.7:40000 accepted tcp:www.example.com:443 [in >> direct] email: cfg-9",
    "2026/12/05 06:23:56 from [2001:db8::2]:1 accepted tcp:[2001:db8::9]:443 [in-vmess >> out] email: cfg-9",
    "2026/12/05 06:23:56 from tcp:198.51.100.7:40000 accepted tcp:x.example:443 [a >> b] email: cfg-9",
    "2026/12/05 06:23:56 from 198.51.100.7:40000 accepted tcp:x.example:443 [] email: cfg-9",
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 email: cfg-9   ",
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 email: cfg-9\r",
    "2026/12/05 06:23:56 198.51.100.7:65535 accepted tcp:x.example:443 email: admin@example.com",
    # not an accepted connection of a user
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443",
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 email:",
    "2026/12/05 06:23:56 198.51.100.7:40000 rejected  proxy/vless/encoding: invalid request user id",
    "2026/12/05 06:23:56 198.51.100.7:0 accepted tcp:x.example:443 email: cfg-9",
    "2026/12/05 06:23:56 198.51.100.7:70000 accepted tcp:x.example:443 email: cfg-9",
    "2026/12/05 06:23:56 198.51.100.7:123456 accepted tcp:x.example:443 email: cfg-9",
    "2026/12/05 06:23:56 999.51.100.7:40000 accepted tcp:x.example:443 email: cfg-9",
    "2026/12/05 06:23:56 198.51.100:40000 accepted tcp:x.example:443 email: cfg-9",
    "2026/12/05 06:23:56 2001:db8::1:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 [2001:db8::zz]:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 [fe80::1%eth0]:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 example.com:5555 accepted tcp:example.com:443 email: cfg-3",
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 email: cfg-9 extra",
    "2026/12/05 06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 [unclosed email: cfg-9",
    "06:23:56 198.51.100.7:40000 accepted tcp:x.example:443 email: cfg-9",
    "ted tcp:x.example:443 email: cfg-9",  # the tail of a line cut by rotation
    "[Warning] core: Xray 1.8.4 started",
    "",
    "\x00\x00\x00\x00",
    "\ufffd\ufffd\x01\x02 garbage \u202e",
]


def test_both_formats_and_ipv6_are_read():
    assert parse_accepted(SAMPLES[0]) == ("127.0.0.1", 54750, "cfg-1")
    assert parse_accepted(SAMPLES[3]) == ("2001:db8::1", 5555, "cfg-3")
    assert parse_accepted(SAMPLES[4]) == ("2001:db8::1", 5555, "cfg-3")  # one spelling per address
    assert parse_accepted(SAMPLES[6]) == ("198.51.100.7", 40000, "cfg-9")
    assert parse_accepted(SAMPLES[7]) == ("2001:db8::2", 1, "cfg-9")
    assert parse_accepted(v2ray("[2001:db8::1]", 5555, "cfg-3")) == ("2001:db8::1", 5555, "cfg-3")
    assert parse_accepted(xray("203.0.113.5", 1234, "cfg-4")) == ("203.0.113.5", 1234, "cfg-4")
    assert parse_accepted(SAMPLES[13]) is None  # no email
    assert parse_accepted(SAMPLES[15]) is None  # rejected


@pytest.mark.parametrize("line", SAMPLES)
def test_the_agent_reads_every_line_as_the_sync_does(line: str):
    theirs = live_sessions().parse_accepted(line)
    assert parse_accepted(line) == theirs
    assert parse_accepted(line + "\n") == live_sessions().parse_accepted(line + "\n")


def test_the_parity_samples_cover_both_answers():
    parsed = [parse_accepted(line) for line in SAMPLES]
    assert sum(result is not None for result in parsed) == 13
    assert sum(result is None for result in parsed) == len(SAMPLES) - 13


# -- the reader


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "access.log"


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as handle:
        handle.write(data)


def poll(reader: AccessLogReader, now: float) -> dict[str, int]:
    """Poll at NOW; {email: count} of the report then."""
    reader.poll(now)
    return {entry["email"]: entry["count"] for entry in reader.report(now)}


def test_the_first_poll_starts_at_the_end_and_later_polls_read_only_what_was_appended(log_path: Path):
    append(log_path, v2ray("203.0.113.1", 1000, "cfg-1"))  # history: no usable time, not counted
    reader = AccessLogReader(log_path, WINDOW)
    assert poll(reader, T0) == {}
    append(log_path, v2ray("203.0.113.2", 1001, "cfg-1") + v2ray("203.0.113.2", 1002, "cfg-1"))
    append(log_path, xray("198.51.100.3", 1003, "cfg-2"))
    assert poll(reader, T0 + 60) == {"cfg-1": 1, "cfg-2": 1}
    assert poll(reader, T0 + 120) == {"cfg-1": 1, "cfg-2": 1}  # nothing new, nothing read twice
    assert reader.counts["lines"] == 3 and reader.counts["accepted"] == 3


def test_a_first_poll_in_the_middle_of_a_line_skips_that_line(log_path: Path):
    append(log_path, v2ray("203.0.113.1", 1000, "cfg-1")[:30])
    reader = AccessLogReader(log_path, WINDOW)
    assert poll(reader, T0) == {}
    append(log_path, v2ray("203.0.113.1", 1000, "cfg-1")[30:] + v2ray("203.0.113.2", 1, "cfg-2"))
    assert poll(reader, T0 + 1) == {"cfg-2": 1}
    assert reader.counts["skipped"] == 0  # the cut line was dropped, not mistaken for garbage


def test_a_partial_line_is_kept_until_its_newline_arrives(log_path: Path):
    reader = AccessLogReader(log_path, WINDOW)
    log_path.touch()
    poll(reader, T0)
    line = xray("[2001:db8::7]", 443, "cfg-5")
    append(log_path, v2ray("203.0.113.1", 1, "cfg-4") + line[:25])
    assert poll(reader, T0 + 60) == {"cfg-4": 1}
    append(log_path, line[25:-1])
    assert poll(reader, T0 + 120) == {"cfg-4": 1}  # still no newline
    append(log_path, "\n")
    assert poll(reader, T0 + 180) == {"cfg-4": 1, "cfg-5": 1}
    assert reader.counts["skipped"] == 0
    assert reader.report(T0 + 180)[1] == {"email": "cfg-5", "count": 1}


def test_copytruncate_while_polling_reads_the_file_again_from_its_start(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, "".join(v2ray(f"203.0.113.{n}", 2000 + n, "cfg-1") for n in range(1, 4)))
    assert poll(reader, T0 + 60) == {"cfg-1": 3}
    # logrotate's copytruncate: copy to .1, truncate in place; the core goes on writing to the same file
    Path(str(log_path) + ".1").write_bytes(log_path.read_bytes())
    os.truncate(log_path, 0)
    append(log_path, v2ray("198.51.100.1", 1, "cfg-2"))
    assert poll(reader, T0 + 120) == {"cfg-1": 3, "cfg-2": 1}
    assert reader.counts["truncated"] == 1
    assert reader.counts["skipped"] == 0  # no line was cut: it started again at 0


def test_a_copytruncate_the_file_outgrew_before_the_poll_is_noticed(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, v2ray("203.0.113.1", 1, "cfg-1"))
    poll(reader, T0 + 60)
    os.truncate(log_path, 0)
    # more than was read before the rotation: the size alone cannot tell
    append(log_path, "".join(xray(f"198.51.100.{n}", n, "cfg-2") for n in range(1, 5)))
    assert poll(reader, T0 + 120) == {"cfg-1": 1, "cfg-2": 4}
    assert reader.counts["truncated"] == 1 and reader.counts["skipped"] == 0


def test_rotation_by_rename_while_polling_opens_the_new_file_from_its_start(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, v2ray("203.0.113.1", 1, "cfg-1"))
    assert poll(reader, T0 + 60) == {"cfg-1": 1}
    os.rename(log_path, str(log_path) + ".1")
    append(Path(str(log_path) + ".1"), v2ray("203.0.113.9", 9, "cfg-1"))  # after the rename: not read
    append(log_path, v2ray("203.0.113.2", 2, "cfg-3") + v2ray("203.0.113.3", 3, "cfg-3"))
    assert poll(reader, T0 + 120) == {"cfg-1": 1, "cfg-3": 2}
    assert reader.counts["replaced"] == 1
    append(log_path, v2ray("203.0.113.4", 4, "cfg-3"))
    assert poll(reader, T0 + 180) == {"cfg-1": 1, "cfg-3": 3}


def test_a_missing_or_unreadable_log_is_counted_and_logged_once(log_path: Path, caplog: pytest.LogCaptureFixture):
    reader = AccessLogReader(log_path, WINDOW)
    with caplog.at_level(logging.WARNING, logger="agent.access_log"):
        assert poll(reader, T0) == {}
        assert poll(reader, T0 + 60) == {}
    assert reader.counts["unreadable"] == 2
    assert len([record for record in caplog.records if "cannot read the access log" in record.message]) == 1

    append(log_path, v2ray("203.0.113.1", 1, "cfg-1"))  # appeared after the first poll: read from 0
    assert poll(reader, T0 + 120) == {"cfg-1": 1}

    os.rename(log_path, str(log_path) + ".1")
    log_path.mkdir()  # something the agent cannot read where the log was
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.access_log"):
        assert poll(reader, T0 + 180) == {"cfg-1": 1}  # what was seen ages out as usual
        assert poll(reader, T0 + 240) == {"cfg-1": 1}
    assert len([record for record in caplog.records if "cannot read the access log" in record.message]) == 1
    assert poll(reader, T0 + 120 + WINDOW + 1) == {}
    log_path.rmdir()
    os.mkfifo(log_path)  # nobody writes it: opening it must not block
    assert poll(reader, T0 + 790) == {}
    log_path.unlink()
    append(log_path, v2ray("203.0.113.2", 2, "cfg-2"))
    assert poll(reader, T0 + 800) == {"cfg-2": 1}


def _unreadable_log_is_no_crash(log_path: Path) -> None:
    append(log_path, v2ray("203.0.113.1", 1, "cfg-1"))
    log_path.chmod(0)
    reader = AccessLogReader(log_path, WINDOW)
    assert poll(reader, T0) == {}
    assert reader.counts["unreadable"] == 1
    log_path.chmod(0o600)
    append(log_path, v2ray("203.0.113.2", 2, "cfg-1"))
    assert poll(reader, T0 + 60) == {"cfg-1": 2}  # the first poll never saw it: all of it is news


def test_a_log_without_read_permission_is_no_crash(log_path: Path):
    if os.geteuid() != 0:
        _unreadable_log_is_no_crash(log_path)
        return
    # Root reads a file whatever its mode: the reader runs in a child that gave root up (nobody), on a log
    # of its own in a directory it may enter, as the agent's unprivileged service does.
    nobody = 65534
    directory = Path(tempfile.mkdtemp(prefix="rayfleet-unreadable-"))
    try:
        directory.chmod(0o755)
        os.chown(directory, nobody, nobody)
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                _unreadable_log_is_no_crash(directory / "access.log")
                code = 0
            except BaseException:  # noqa: BLE001 - any failure is reported through the exit code
                traceback.print_exc()
            finally:
                os._exit(code)
        _pid, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the check failed as nobody (traceback above)"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_lines_it_cannot_parse_binary_garbage_and_over_long_lines_are_skipped_and_counted(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW, max_line_bytes=512)
    poll(reader, T0)
    append(log_path, "this is no access log line\n")
    append(log_path, b"\xff\xfe\x00\x01\x80binary\x00garbage\xc3\x28\n")
    append(log_path, "2026/12/05 06:23:56 203.0.113.1:1 rejected proxy/vmess: invalid user\n")
    append(log_path, v2ray("203.0.113.2", 2, "admin@example.com"))  # no config of ours
    append(log_path, "2026/12/05 06:23:56 203.0.113.3:3 accepted tcp:" + "a" * 600 + ":443 email: cfg-7\n")
    append(log_path, b"\x00" * 40 + v2ray("203.0.113.4", 4, "cfg-8").encode())  # NULs left by a copytruncate
    append(log_path, v2ray("203.0.113.5", 5, "cfg-8"))
    assert poll(reader, T0 + 60) == {"cfg-8": 2}
    assert reader.counts["skipped"] == 3
    assert reader.counts["foreign"] == 1
    assert reader.counts["overlong"] == 1
    assert reader.counts["accepted"] == 2


def test_an_over_long_line_without_a_newline_is_dropped_in_pieces(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW, max_line_bytes=512)
    poll(reader, T0)
    append(log_path, "x" * 2000)  # no newline yet: not kept whole in memory
    poll(reader, T0 + 60)
    assert reader.counts["overlong"] == 1 and reader._partial == b""
    append(log_path, "y" * 2000)
    poll(reader, T0 + 120)
    append(log_path, "z\n" + v2ray("203.0.113.1", 1, "cfg-1"))
    assert poll(reader, T0 + 180) == {"cfg-1": 1}
    assert reader.counts["overlong"] == 1 and reader.counts["skipped"] == 0


def test_a_backlog_beyond_the_read_limit_is_skipped_not_read(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW, max_read_bytes=1000)
    poll(reader, T0)
    append(log_path, "".join(v2ray(f"203.0.113.{n}", n, f"cfg-{n}") for n in range(1, 101)))
    seen = poll(reader, T0 + 60)
    assert 0 < len(seen) < 20 and "cfg-100" in seen  # the newest lines
    assert reader.counts["skipped_bytes"] > 0 and reader.counts["skipped"] == 0


def test_the_window_forgets_addresses_not_seen_within_it(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, v2ray("203.0.113.1", 1, "cfg-1") + v2ray("203.0.113.2", 2, "cfg-1"))
    assert poll(reader, T0 + 60) == {"cfg-1": 2}
    append(log_path, v2ray("203.0.113.1", 3, "cfg-1"))  # the first device connects again
    assert poll(reader, T0 + 400) == {"cfg-1": 2}
    assert poll(reader, T0 + 60 + WINDOW) == {"cfg-1": 2}  # the window's edge still counts
    assert poll(reader, T0 + 61 + WINDOW) == {"cfg-1": 1}
    report = reader.report(T0 + 61 + WINDOW)
    assert report == [{"email": "cfg-1", "count": 1}]  # one device: no address leaves the node
    assert reader.report(T0 + 401 + WINDOW) == []


def test_the_report_names_addresses_from_two_devices_on_newest_first(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, v2ray("203.0.113.5", 1, "cfg-13") + v2ray("203.0.113.6", 2, "cfg-12"))
    poll(reader, T0 + 60.7)
    append(log_path, xray("[2001:db8::1]", 3, "cfg-13") + xray("198.51.100.2", 4, "cfg-13"))
    append(log_path, v2ray("203.0.113.5", 5, "cfg-13"))  # seen again: still first seen at T0+60
    poll(reader, T0 + 120)
    assert reader.report(T0 + 120) == [
        {"email": "cfg-12", "count": 1},
        {
            "email": "cfg-13",
            "count": 3,
            "addresses": [
                {"address": "198.51.100.2", "first_seen": int(T0 + 120), "last_seen": int(T0 + 120)},  # newer
                {"address": "2001:db8::1", "first_seen": int(T0 + 120), "last_seen": int(T0 + 120)},
                {"address": "203.0.113.5", "first_seen": int(T0 + 60), "last_seen": int(T0 + 120)},
            ],
        },
    ]


def test_ports_and_spellings_of_one_address_are_one_device(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW)
    poll(reader, T0)
    append(log_path, v2ray("[2001:db8::1]", 1, "cfg-1") + xray("[2001:DB8:0::1]", 2, "cfg-1"))
    append(log_path, v2ray("203.0.113.1", 3, "cfg-1") + v2ray("203.0.113.1", 4, "cfg-1"))
    assert poll(reader, T0 + 1) == {"cfg-1": 2}


def test_the_per_config_cap_keeps_the_most_recently_seen(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW, max_addresses_per_config=3)
    poll(reader, T0)
    for n in range(1, 6):
        append(log_path, v2ray(f"203.0.113.{n}", n, "cfg-1"))
    append(log_path, v2ray("203.0.113.1", 9, "cfg-2"))
    poll(reader, T0 + 10)
    append(log_path, v2ray("203.0.113.3", 3, "cfg-1") + v2ray("203.0.113.6", 6, "cfg-1"))
    poll(reader, T0 + 20)
    (cfg1,) = [entry for entry in reader.report(T0 + 20) if entry["email"] == "cfg-1"]
    assert cfg1["count"] == 3
    assert {item["address"] for item in cfg1["addresses"]} == {"203.0.113.3", "203.0.113.5", "203.0.113.6"}
    assert reader.counts["evicted"] == 3


def test_the_total_caps_forget_the_least_recently_active(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, WINDOW, max_configs=3, max_addresses=5)
    poll(reader, T0)
    for n in range(1, 5):
        append(log_path, v2ray(f"203.0.113.{n}", n, f"cfg-{n}"))
    append(log_path, v2ray("203.0.113.9", 9, "cfg-2"))  # cfg-2 active again
    assert poll(reader, T0 + 10) == {"cfg-2": 2, "cfg-3": 1, "cfg-4": 1}  # cfg-1 went for cfg-4
    append(log_path, "".join(v2ray(f"198.51.100.{n}", n, "cfg-4") for n in range(1, 4)))
    assert poll(reader, T0 + 20) == {"cfg-2": 1, "cfg-4": 4}  # five addresses in all: the oldest went
    assert len(reader._seen) == 5 == sum(len(addresses) for addresses in reader._configs.values())


def test_a_long_run_stays_bounded(log_path: Path):
    log_path.touch()
    reader = AccessLogReader(log_path, 60, max_addresses_per_config=4, max_configs=50, max_addresses=120)
    poll(reader, T0)
    for minute in range(1, 30):
        lines = (v2ray(f"203.0.{minute}.{n % 250}", n, f"cfg-{n % 97}") for n in range(1, 400))
        append(log_path, "".join(lines))
        poll(reader, T0 + 60 * minute)
        assert len(reader._seen) <= 120 and len(reader._configs) <= 50
        assert all(len(addresses) <= 4 for addresses in reader._configs.values())
        assert len(reader._seen) == sum(len(addresses) for addresses in reader._configs.values())


# -- settings and the agent's loop

REQUIRED = {
    "RAYFLEET_AGENT_API_URL": "https://api.rayfleet.test/",
    "RAYFLEET_AGENT_CLIENT_ID": "node-7",
    "RAYFLEET_AGENT_CLIENT_SECRET": "secret",
}


def test_the_settings_default_to_the_cores_log_and_ten_minutes():
    config = config_from_values(REQUIRED)
    assert config.access_log == Path("/var/log/rayfleet-core/access.log")
    assert config.device_window_seconds == 600
    config = config_from_values(
        {**REQUIRED, "RAYFLEET_AGENT_ACCESS_LOG": "/srv/core/access.log", "RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS": "60"}
    )
    assert (config.access_log, config.device_window_seconds) == (Path("/srv/core/access.log"), 60)
    assert config_from_values({**REQUIRED, "RAYFLEET_AGENT_ACCESS_LOG": ""}).access_log is None  # not read


def test_bad_device_settings_give_readable_problems():
    with pytest.raises(ConfigError) as caught:
        config_from_values(
            {**REQUIRED, "RAYFLEET_AGENT_ACCESS_LOG": "access.log", "RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS": "9"}
        )
    assert caught.value.problems == [
        "RAYFLEET_AGENT_ACCESS_LOG must be an absolute path (or empty: not read), got 'access.log'",
        "RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS must be between 10 and 86400, got 9",
    ]
    for window in ("86401", "ten minutes", "0"):
        with pytest.raises(ConfigError, match="DEVICE_WINDOW_SECONDS must be"):
            config_from_values({**REQUIRED, "RAYFLEET_AGENT_DEVICE_WINDOW_SECONDS": window})


class _Nothing:
    def collect(self) -> dict[str, float]:
        raise AssertionError("not asked for in these tests")


def test_the_agents_loop_reads_the_devices_list_each_round(log_path: Path, tmp_path: Path):
    config = config_from_values({**REQUIRED, "RAYFLEET_AGENT_ACCESS_LOG": str(log_path)})
    reader = AccessLogReader(config.access_log, config.device_window_seconds)  # type: ignore[arg-type]
    agent = Agent(config, None, None, collector=_Nothing(), access_log=reader)  # type: ignore[arg-type]
    assert agent.observe_devices(T0) == []  # no log yet: no crash, nothing measured
    append(log_path, v2ray("203.0.113.1", 1, "cfg-1") + xray("203.0.113.2", 2, "cfg-1"))
    assert agent.observe_devices(T0 + 60) == [
        {
            "email": "cfg-1",
            "count": 2,
            "addresses": [
                {"address": "203.0.113.2", "first_seen": int(T0 + 60), "last_seen": int(T0 + 60)},
                {"address": "203.0.113.1", "first_seen": int(T0 + 60), "last_seen": int(T0 + 60)},
            ],
        }
    ]
    assert agent.devices == agent.observe_devices(T0 + 61)

    def broken(now: float) -> None:
        raise RuntimeError("a bug")

    reader.poll = broken  # type: ignore[method-assign]
    assert agent.observe_devices(T0 + 120) == []  # a bug costs the list, never the heartbeat
    disabled = Agent(config_from_values({**REQUIRED, "RAYFLEET_AGENT_ACCESS_LOG": ""}), None, None,  # type: ignore[arg-type]
                     collector=_Nothing())  # fmt: skip
    assert disabled.observe_devices(T0) == []


def test_the_devices_list_a_heartbeat_carries_names_addresses_only_over_the_limit_and_stays_bounded():
    from agent.__main__ import devices_for_heartbeat
    from agent.delivery import MAX_DEVICE_ENTRIES

    two = [
        {"address": "198.51.100.2", "first_seen": 2, "last_seen": 3},
        {"address": "198.51.100.1", "first_seen": 1, "last_seen": 3},
    ]
    devices = [{"email": "cfg-1", "count": 2, "addresses": two}, {"email": "cfg-2", "count": 1}]
    # The limit not known yet, or not exceeded: counts only (addresses are personal data).
    assert devices_for_heartbeat(devices, {}) == [{"email": "cfg-1", "count": 2}, {"email": "cfg-2", "count": 1}]
    assert devices_for_heartbeat(devices, {"cfg-1": 2}) == [
        {"email": "cfg-1", "count": 2},
        {"email": "cfg-2", "count": 1},
    ]
    # Over it: the addresses go, for the API to choose the newest.
    assert devices_for_heartbeat(devices, {"cfg-1": 1}) == devices

    many = [{"email": f"cfg-{n}", "count": 1} for n in range(MAX_DEVICE_ENTRIES)] + [{"email": "cfg-x", "count": 3}]
    bounded = devices_for_heartbeat(many, {})
    assert len(bounded) == MAX_DEVICE_ENTRIES and bounded[0]["email"] == "cfg-x"
