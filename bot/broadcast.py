"""Broadcasts: an admin's message to every customer of a segment, paced under Telegram's limits, resumed after
a restart, with a report at the end (the admin's side is bot/handlers/broadcast.py).

One broadcast at a time. It is one document in the bot's store (Redis in production, `rayfleet:bot:cache:
broadcast`, kept BROADCAST_TTL and refreshed by every write): the segment, the text, the chat and language of
the report, the counts, and the cursor, the user id of the last customer handled. Starting one is an atomic
add, so a second start (another admin, a double press) is refused with the first one's progress.

The runner (Broadcaster, a thread beside the notifier) pages through GET /users/segments/{segment}
?after_id=<cursor>, which the API pages by user id, and saves the document after every customer: a bot that
stops (or dies) resumes with the next customer, so nobody gets the message twice except at most the one in
flight when the process died. Telegram's answers:
- accepted: delivered;
- 403 (the user blocked the bot, or is deactivated) or 400 "chat not found": blocked;
- 429: wait its retry_after and send again;
- 5xx: SERVER_ERROR_TRIES more tries, then failed; any other refusal: failed;
- unreachable (a timeout, a refused connection): wait and send again (the one in flight may arrive twice).
The pace is BOT_BROADCAST_PER_SECOND (default 25, under Telegram's ~30 a second): sends start evenly spaced,
and a send starts only a full second after the one `rate` sends before it was answered, so Telegram never
receives more than `rate` of them in any second. The document keeps the time of the last send, so a restart
does not squeeze a burst into the second before it. The report gives delivered, blocked, failed and the
duration from the start (a restart included).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Any

import redis
import requests
from telebot.apihelper import ApiException, ApiTelegramException

from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .i18n import t

log = logging.getLogger(__name__)
KEY = "broadcast"
BROADCAST_TTL = 30 * 24 * 3600
SEGMENTS = ("all", "active", "expired", "never_bought")
OUTCOMES = ("delivered", "blocked", "failed")
PAGE_SIZE = 100
SERVER_ERROR_TRIES = 3
MAX_BACKOFF = 60.0
# 400 descriptions that mean the customer's chat is gone for good (counted as blocked, like a 403).
GONE = ("chat not found", "user not found", "peer_id_invalid")


class Stopped(Exception):
    """The bot is stopping: the broadcast stays in the store and resumes at the next start."""


def current(shop: Shop) -> dict[str, Any] | None:
    """The broadcast in progress (or finished but not yet reported), if any."""
    return shop.store.cache_get(KEY)


def new(segment: str, text: str, total: int, chat_id: int, language: str, admin_id: int) -> dict[str, Any]:
    """A broadcast document: TEXT (Telegram HTML, as customers will see it) to SEGMENT, reported to CHAT_ID."""
    return {
        "segment": segment,
        "text": text,
        "total": total,
        "chat_id": chat_id,
        "language": language,
        "admin_id": admin_id,
        "started_at": time.time(),
        "cursor": 0,
        **dict.fromkeys(OUTCOMES, 0),
        "last_sent_at": 0.0,
        "finished_at": None,
        "error": None,
    }


def start(shop: Shop, job: dict[str, Any]) -> bool:
    """Store JOB as the broadcast and wake the runner; False when another one is in progress."""
    if not shop.store.cache_add(KEY, job, BROADCAST_TTL):
        return False
    shop.wake_broadcaster.set()
    return True


def handled(job: dict[str, Any]) -> int:
    return sum(int(job.get(outcome) or 0) for outcome in OUTCOMES)


def segment_label(language: str, segment: str) -> str:
    return t(language, f"segment_{segment}") if segment in SEGMENTS else segment


def progress_text(language: str, job: dict[str, Any]) -> str:
    return t(
        language,
        "broadcast_running",
        segment=segment_label(language, job["segment"]),
        done=handled(job),
        total=job.get("total", 0),
        **{outcome: job.get(outcome, 0) for outcome in OUTCOMES},
    )


def duration_text(language: str, seconds: float) -> str:
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return t(language, "duration_hms", hours=hours, minutes=minutes, seconds=secs)
    if minutes:
        return t(language, "duration_ms", minutes=minutes, seconds=secs)
    return t(language, "duration_s", seconds=secs)


def report_text(job: dict[str, Any]) -> str:
    language = job["language"]
    text = t(
        language,
        "broadcast_report",
        segment=segment_label(language, job["segment"]),
        duration=duration_text(language, (job.get("finished_at") or time.time()) - job["started_at"]),
        **{outcome: job.get(outcome, 0) for outcome in OUTCOMES},
    )
    if job.get("error"):
        text += "\n" + t(language, "broadcast_aborted", message=job["error"])
    return text


class Pacer:
    """At most RATE sends in any second: starts spaced 1/RATE apart, and each start a full second after the
    answer to the send RATE places before it (so however long answers take, no second holds more)."""

    def __init__(self, rate: float, resume_after: float = 0.0) -> None:
        self.interval = 1.0 / rate
        self.window: deque[float] = deque(maxlen=max(1, math.floor(rate)))
        self.next_start = resume_after

    def delay(self, now: float) -> float:
        wait = self.next_start - now
        if len(self.window) == self.window.maxlen:
            wait = max(wait, self.window[0] + 1.0 - now)
        return max(0.0, wait)

    def started(self, now: float) -> None:
        self.next_start = now + self.interval

    def answered(self, now: float) -> None:
        self.window.append(now)


class Runner:
    """Runs one broadcast document to its end (or until STOPPED is set: then raises Stopped)."""

    def __init__(self, shop: Shop, stopped: threading.Event) -> None:
        self.shop, self.stopped = shop, stopped

    def _sleep(self, seconds: float) -> None:
        if (seconds > 0 and self.stopped.wait(seconds)) or self.stopped.is_set():
            raise Stopped

    def run(self, job: dict[str, Any]) -> None:
        if job.get("finished_at") is None:
            try:
                self._send_all(job)
            except ApiError as exc:  # the API refuses the list (a 4xx): retrying would not change that
                log.warning("Broadcast stopped: the API refused the customer list: %s", exc)
                job["error"] = exc.message
            job["finished_at"] = time.time()
            self._save(job)
        self._report(job)
        self.shop.store.cache_delete(KEY)
        log.info("Broadcast finished: %s", {outcome: job.get(outcome) for outcome in OUTCOMES})

    def _send_all(self, job: dict[str, Any]) -> None:
        # The last send of a previous run (another process) was at last_sent_at: keep its second clear.
        since_last = time.time() - float(job.get("last_sent_at") or 0)
        pacer = Pacer(self.shop.settings.broadcast_per_second, time.monotonic() + max(0.0, 1.0 - since_last))
        while True:
            page = self._page(job["segment"], int(job["cursor"]), int(job["admin_id"]))
            for member in page["items"]:
                outcome = self._send(pacer, member, job["text"])
                job[outcome] += 1
                job["cursor"] = member["user_id"]
                job["last_sent_at"] = time.time()
                self._save(job)
            if page.get("next_after_id") is None:
                return

    def _page(self, segment: str, after_id: int, admin_id: int) -> dict[str, Any]:
        backoff = 1.0
        while True:
            try:
                return self.shop.api.segment_page(segment, after_id, admin_id, PAGE_SIZE)
            except ApiUnavailable as exc:
                log.warning("API unavailable for the broadcast (%s); trying again in %.0f s", exc, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _send(self, pacer: Pacer, member: dict[str, Any], text: str) -> str:
        """Send TEXT to the customer; the outcome (one of OUTCOMES). Retries what is worth retrying."""
        server_errors, backoff = 0, 1.0
        while True:
            self._sleep(pacer.delay(time.monotonic()))
            pacer.started(time.monotonic())
            try:
                self.shop.say(member["telegram_id"], text)
            except ApiTelegramException as exc:
                pacer.answered(time.monotonic())
                description = exc.description or ""
                if exc.error_code == 429:
                    retry_after = (exc.result_json.get("parameters") or {}).get("retry_after") or 1
                    log.warning("Telegram asks the broadcast to wait %s s", retry_after)
                    self._sleep(float(retry_after))
                    continue
                if exc.error_code == 403 or (
                    exc.error_code == 400 and any(gone in description.lower() for gone in GONE)
                ):
                    return "blocked"
                if exc.error_code >= 500 and server_errors < SERVER_ERROR_TRIES:
                    server_errors += 1
                    self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                log.warning("Broadcast to user %s failed: %s", member["user_id"], description)
                return "failed"
            except (ApiException, requests.RequestException) as exc:
                pacer.answered(time.monotonic())
                # The class only: a requests message carries the URL, which holds the bot token.
                log.warning("Telegram not reachable (%s); the broadcast waits %.0f s", type(exc).__name__, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            pacer.answered(time.monotonic())
            return "delivered"

    def _save(self, job: dict[str, Any]) -> None:
        backoff = 1.0
        while True:
            try:
                self.shop.store.cache_set(KEY, job, BROADCAST_TTL)
                return
            except redis.RedisError as exc:
                log.warning("Broadcast progress not saved (%s); trying again in %.0f s", type(exc).__name__, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _report(self, job: dict[str, Any]) -> None:
        backoff = 1.0
        while True:
            try:
                self.shop.say(job["chat_id"], report_text(job))
                return
            except ApiTelegramException as exc:  # the admin's chat refuses it: nothing more to do
                log.warning("Broadcast report not delivered: %s", exc.description)
                return
            except (ApiException, requests.RequestException) as exc:
                log.warning("Broadcast report not sent yet (%s)", type(exc).__name__)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)


class Broadcaster(threading.Thread):
    """A daemon thread: runs the stored broadcast when there is one (at start: a resumed one; later: woken by
    the admin's confirmation, or found within INTERVAL)."""

    def __init__(self, shop: Shop, interval: float = 5.0) -> None:
        super().__init__(name="rayfleet-broadcaster", daemon=True)
        self.shop, self.interval = shop, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        wake = self.shop.wake_broadcaster
        while not self.stopped.is_set():
            wake.clear()
            try:
                job = current(self.shop)
                if job is not None:
                    Runner(self.shop, self.stopped).run(job)
                    continue
            except Stopped:
                return
            except Exception:  # noqa: BLE001 -- the store or a bug: the broadcast stays stored; try again later
                log.warning("Broadcast round failed", exc_info=True)
                if self.stopped.wait(self.interval):
                    return
                continue
            wake.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.shop.wake_broadcaster.set()
