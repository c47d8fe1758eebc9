"""An HTTP origin for traffic tests: random bytes on a local address, and their checksum."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.netguard import check_test_address


@contextlib.contextmanager
def origin_server(directory: Path, size: int = 256 * 1024, host: str = "127.0.0.1") -> Iterator[tuple[str, str]]:
    """An HTTP origin on HOST serving SIZE random bytes; yields (URL, SHA-256 of the body)."""
    body = os.urandom(size)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "blob.bin").write_bytes(body)

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = ThreadingHTTPServer((host, 0), partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/blob.bin", hashlib.sha256(body).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


# --- a detached origin for the molecule scenarios ----------------------------------------------
# Ansible plays start it on the host, at the gateway of the scenario's own network, and stop it in
# cleanup: the nodes reach it as the "internet" their customers' traffic goes to.
#   python -m harness.origin start --directory DIR --host ADDRESS --port PORT --pidfile FILE
#   python -m harness.origin stop --pidfile FILE


def _start(directory: Path, host: str, port: int, pidfile: Path) -> int:
    _stop(pidfile)  # one left by a killed run
    check_test_address(host)
    log = directory.parent / f"{directory.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", host, "--directory", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the Ansible task that started it
        )
    pidfile.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the origin exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return process.pid
        time.sleep(0.1)
    raise SystemExit(f"the origin did not listen on {host}:{port}")


def _stop(pidfile: Path) -> bool:
    """Stop the origin PIDFILE names, if it is still ours (a stale pidfile may name a recycled pid)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    stopped = False
    try:
        if b"http.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            stopped = True
    except (FileNotFoundError, ProcessLookupError):
        pass
    pidfile.unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.origin", description="A detached HTTP origin.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start")
    start.add_argument("--directory", type=Path, required=True)
    start.add_argument("--host", required=True, help="an address on a network the test created (checked)")
    start.add_argument("--port", type=int, required=True)
    start.add_argument("--pidfile", type=Path, required=True)
    stop = commands.add_parser("stop")
    stop.add_argument("--pidfile", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        print(f"origin started: pid {_start(args.directory, args.host, args.port, args.pidfile)}")
    else:
        print("origin stopped" if _stop(args.pidfile) else "no origin to stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
