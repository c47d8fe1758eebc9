"""A customer who keeps using one share link: a sing-box client for the link, opening a new connection
through it for a small body again and again, in a background thread, and the longest stretch without a
successful fetch (make-before-break: a migration must not leave it without service).

    with LinkSampler(link, fleet.small_url) as sampler:
        ...                                   # move the config
    assert sampler.longest_gap() < 2, sampler.summary()

Every fetch is a fresh connection, because a core that stopped serving a user still lets an open
connection finish (RECIPES.md §3): only new connections show whether the link is served.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from typing import Any

from harness.singbox import ProxyError, fetch, singbox_client


class LinkSampler:
    """Fetch URL through LINK every INTERVAL seconds until stopped; record when each fetch succeeded."""

    def __init__(self, link: str, url: str, expect_bytes: int | None = None, interval: float = 0.1) -> None:
        self.link, self.url, self.expect_bytes, self.interval = link, url, expect_bytes, interval
        self.successes: list[float] = []  # time.monotonic() of each successful fetch
        self.failures: list[tuple[float, str]] = []
        self.started = self.stopped = 0.0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sampler {link[-24:]}", daemon=True)

    def _run(self) -> None:
        try:
            with singbox_client(self.link) as proxy:
                self._ready.set()
                while not self._stop.is_set():
                    self._once(proxy)
                    self._stop.wait(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self._error = exc
            self._ready.set()

    def _once(self, proxy: str) -> None:
        try:
            result = fetch(proxy, self.url, timeout=3)
        except ProxyError as exc:
            self.failures.append((time.monotonic(), str(exc)[:200]))
            return
        if result["status"] == 200 and (self.expect_bytes is None or result["bytes"] == self.expect_bytes):
            self.successes.append(time.monotonic())
        else:
            self.failures.append((time.monotonic(), f"status {result['status']}, {result['bytes']} bytes"))

    def start(self, first_success_within: float = 20) -> LinkSampler:
        """Start sampling; return once the link carried bytes once (the gap is measured from there)."""
        self._thread.start()
        self._ready.wait(30)
        deadline = time.monotonic() + first_success_within
        while not self.successes:
            if self._error is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the link never carried bytes before sampling began: {self.summary()}")
            time.sleep(0.02)
        self.started = self.successes[0]
        return self

    def stop(self) -> LinkSampler:
        """Stop sampling (a second call changes nothing); raise if the sampler itself broke."""
        if not self.stopped:
            self.stopped = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"the sampler failed: {self._error!r}") from self._error
        return self

    def __enter__(self) -> LinkSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()

    def longest_gap(self) -> float:
        """The longest time without a successful fetch, from the first success until stop()."""
        if not self.successes:
            return float("inf")
        marks = [*self.successes, self.stopped or time.monotonic()]
        return max((later - earlier for earlier, later in pairwise(marks)), default=0.0)

    def summary(self) -> dict[str, Any]:
        return {
            "link": self.link[:60],
            "successes": len(self.successes),
            "failures": len(self.failures),
            "first_failures": self.failures[:3],
            "longest_gap_s": round(self.longest_gap(), 3) if self.successes else None,
            "error": repr(self._error) if self._error else None,
        }
