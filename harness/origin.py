"""An HTTP origin for traffic tests: random bytes on a local address, and their checksum."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


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
