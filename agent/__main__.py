"""`python3 -m agent`: the node agent's loop.

Every interval: read per-user traffic from the core (with reset) into the journal first, restart a
dead core, collect host metrics, measure the latency (probes.py: the median TCP connect time to the
probe targets, by default the control API), and send heartbeats carrying the pending reports in
batches the API accepts (delivery.py) until the journal is drained or the interval is used up;
delivered reports leave the journal, reports the API can never accept are quarantined beside it.
The metrics go out even when no report can. Failures back off with full jitter; nothing is lost
meanwhile. Each round also reads the core's access log for the devices each config is used from
(access_log.py) and sends that list with its first heartbeat. Between rounds, configs the API named as
close to their cap (quota_watch) have their counters read every QUOTA_CHECK_SECONDS, and the next round
starts at once when one reaches its cap.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from . import core_api
from .access_log import AccessLogReader
from .backoff import backoff_delay
from .collectors import HostCollector, heal_core, unit_status
from .config import AgentConfig, ConfigError, load_config
from .delivery import (
    MAX_BATCH_BYTES,
    MAX_DEVICE_ENTRIES,
    MAX_REPORTS_PER_HEARTBEAT,
    MIN_BATCH_BYTES,
    UsageFilter,
    bounded_incident,
    encoded_size,
    next_batch,
    refused_indexes,
    split_usage,
)
from .journal import Journal
from .metrics import AgentMetrics, start_metrics_server
from .probes import probe_latency_ms
from .reporter import DeliveryError, Refused, Reporter

log = logging.getLogger("rayfleet.agent")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


QUOTA_CHECK_SECONDS = 0.5  # how often a watched config's counters are read between heartbeats


def devices_for_heartbeat(devices: list[dict[str, Any]], limits: dict[str, int]) -> list[dict[str, Any]]:
    """What leaves the node: each config's device count, and its addresses only when the count is over the
    config's limit as the API last told it (LIMITS; the first report of a config from two devices carries
    the count alone, the answer names its limit). At most MAX_DEVICE_ENTRIES configs (the API's bound),
    those seen from the most addresses first."""
    sent = [
        entry
        if "addresses" not in entry or entry["count"] > limits.get(entry["email"], entry["count"])
        else {"email": entry["email"], "count": entry["count"]}
        for entry in devices
    ]
    if len(sent) <= MAX_DEVICE_ENTRIES:
        return sent
    return sorted(sent, key=lambda entry: -entry["count"])[:MAX_DEVICE_ENTRIES]


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        journal: Journal,
        reporter: Reporter,
        core: Any = None,
        collector: Any = None,
        metrics: AgentMetrics | None = None,
        probe: Callable[..., float | None] = probe_latency_ms,
        access_log: AccessLogReader | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.reporter = reporter
        self.core = core
        self.collector = collector or HostCollector()
        self.metrics = metrics or AgentMetrics()
        self.probe = probe
        self.access_log = access_log
        self.devices: list[dict[str, Any]] = []  # the last observe_devices()
        # {email: bytes left} of configs close to their cap, from the last answer (wait_for_next_round)
        self.quota_watch: dict[str, int] = {}
        # {email: max_devices} of the configs last reported from two devices or more (devices_for_heartbeat)
        self.device_limits: dict[str, int] = {}
        self.period_start = _now()
        self.failures = 0
        self.usage_filter = UsageFilter()
        self.max_batch_bytes = MAX_BATCH_BYTES  # shrinks for good when the API says 413

    def record_traffic(self) -> None:
        """Move the core's counters into the journal (fsync'd) before anything is sent."""
        if self.core is None:
            return
        try:
            usage = core_api.read_user_traffic(self.core)
        except Exception as exc:  # noqa: BLE001 - a core that is down has nothing to read; heal_core handles it
            log.warning("could not read traffic from the core: %s", type(exc).__name__)
            return
        period_end = _now()
        self.metrics.add_traffic(usage)
        mapped = self.usage_filter(usage)
        for chunk in split_usage(mapped):
            self.journal.append({"period_start": self.period_start, "period_end": period_end, "usage": chunk})
        self.period_start = period_end

    def observe_devices(self, now: float | None = None) -> list[dict[str, Any]]:
        """The access log's news read, and the devices list for the heartbeat: per config seen within the
        window, {"email", "count"} and, from two addresses on, "addresses" [{"address", "first_seen", "last_seen"}]
        newest first (AccessLogReader.report). [] when the log is not read (RAYFLEET_AGENT_ACCESS_LOG empty).
        A failure costs this round's list, never the heartbeat."""
        if self.access_log is None:
            return []
        now = time.time() if now is None else now
        try:
            self.access_log.poll(now)
            self.devices = self.access_log.report(now)
        except Exception:
            log.exception("reading the access log failed; no device counts this round")
            self.devices = []
        return self.devices

    def heartbeat(self, reports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Host metrics, incidents (a dead core is restarted first) and REPORTS (default: the first batch)."""
        incident = heal_core(self.config.core_service)
        host = self.collector.collect()
        if reports is None:
            reports = next_batch(self._sendable(), self.max_batch_bytes)
        core_active = unit_status(self.config.core_service) == "active"
        self.metrics.observe_core(core_active, [incident] if incident else [])
        latency_ms = self.probe(self.config.probe_targets, self.config.probe_timeout_seconds)
        self.metrics.observe_probe(latency_ms)
        return {
            "cpu": min(host["cpu_percent"], 100.0),
            "mem": min(host["mem_percent"], 100.0),
            "bandwidth_in": int(host["bandwidth_in_bps"]),
            "bandwidth_out": int(host["bandwidth_out_bps"]),
            # The median TCP connect time from this node to its probe targets (null: none answered);
            # the network as the node sees it, not a customer's latency to the node.
            "latency_ms": latency_ms,
            "core_active": core_active,
            "incidents": [bounded_incident(incident)] if incident else [],
            "reports": reports,
            "devices": devices_for_heartbeat(self.devices, self.device_limits),
        }

    def _sendable(self) -> list[dict[str, Any]]:
        """The journal's reports as they may be sent: usage the API cannot map left out (older journals)."""
        return [{**report, "usage": self.usage_filter(report.get("usage", []))} for report in self.journal.pending()]

    def tick(self) -> bool:
        """One round; True when at least one heartbeat was delivered (metrics reached the API)."""
        self.record_traffic()
        self.observe_devices()
        pending = self._sendable()
        body = self.heartbeat(reports=[])
        deadline = time.monotonic() + self.config.interval_seconds
        count_limit, delivered = MAX_REPORTS_PER_HEARTBEAT, False
        while True:
            batch = next_batch(pending, self.max_batch_bytes)[:count_limit]
            started = time.monotonic()
            try:
                answer = self.reporter.send({**body, "reports": batch})
            except Refused as exc:
                if not batch:
                    return self._failed(f"the API refused the heartbeat itself: {exc}", 0)
                count_limit, pending = self._refused(exc, batch, pending, count_limit)
                continue
            except DeliveryError as exc:
                return self._failed(str(exc), len(pending)) or delivered
            delivered = True
            latency = time.monotonic() - started
            self.failures = 0
            if body.get("devices"):
                self.device_limits = {
                    item["email"]: item["max_devices"]
                    for item in answer.get("device_limits", [])
                    if isinstance(item, dict) and type(item.get("max_devices")) is int
                }
            self.quota_watch = {
                item["email"]: item["remaining_bytes"]
                for item in answer.get("quota_watch", [])
                if isinstance(item, dict) and type(item.get("remaining_bytes")) is int and item["remaining_bytes"] > 0
            }
            done = {*answer["accepted"], *answer["duplicates"]}
            self.journal.acknowledge(done)
            self.metrics.heartbeat_succeeded(time.time(), latency)
            pending = [report for report in pending if report["report_id"] not in done]
            body = {**body, "incidents": [], "devices": []}  # delivered once a round
            if not pending or not batch or time.monotonic() > deadline:
                break
        self.metrics.set_journal_pending(len(self.journal.pending()))
        return True

    def _failed(self, reason: str, kept: int) -> bool:
        self.failures += 1
        self.metrics.heartbeat_failed()
        self.metrics.set_journal_pending(len(self.journal.pending()))
        log.warning("heartbeat not delivered (%s); %d reports kept", reason, kept)
        return False

    def _refused(
        self, exc: Refused, batch: list[dict[str, Any]], pending: list[dict[str, Any]], count_limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """A batch the API can never take as it is: shrink it, or set aside the reports it names."""
        bad: list[dict[str, Any]] = []
        if exc.status == 413:
            if len(batch) == 1:
                bad = batch  # one report larger than the API takes
            else:  # learn a byte budget below what was refused, for this round and the next ones
                refused_bytes = sum(encoded_size(report) + 1 for report in batch)
                self.max_batch_bytes = max(min(self.max_batch_bytes, refused_bytes) // 2, MIN_BATCH_BYTES)
        else:
            named = refused_indexes(exc.details, len(batch))
            if named:
                bad = [batch[index] for index in sorted(named)]
            elif len(batch) == 1:
                bad = batch
            else:
                count_limit = max(len(batch) // 2, 1)  # halve until the bad report is alone
        if bad:
            ids = {report["report_id"] for report in bad}
            moved = self.journal.quarantine(ids, f"HTTP {exc.status}: {str(exc.details)[:500]}")
            self.metrics.reports_quarantined(moved)
            log.error("quarantined %d report(s) the API refused (HTTP %s); see %s", moved, exc.status,
                      self.journal.quarantine_path)  # fmt: skip
            pending = [report for report in pending if report["report_id"] not in ids]
            count_limit = MAX_REPORTS_PER_HEARTBEAT
        return count_limit, pending

    def safe_tick(self) -> bool:
        """tick(), but a bug in one round (an unexpected answer, a full disk) costs that round, not the process:
        the journal keeps every report, the round counts as failed, and the next one backs off."""
        try:
            return self.tick()
        except Exception:
            log.exception("heartbeat round failed unexpectedly")
            self.failures += 1
            self.metrics.heartbeat_failed()
            return False

    def cap_reached(self) -> bool:
        """Whether a watched config has used, since the counters were last moved to the journal, the bytes the
        API said it had left (the counters are read, not reset). Those configs are dropped from the watch: the
        next answer names them again if they are still served."""
        if not self.quota_watch or self.core is None:
            return False
        try:
            usage = core_api.peek_user_traffic(self.core)
        except Exception as exc:  # noqa: BLE001 - the next round reads (and heals) the core
            log.warning("could not read traffic from the core: %s", type(exc).__name__)
            return False
        reached = [
            entry["email"]
            for entry in usage
            if entry["email"] in self.quota_watch
            and entry["uplink"] + entry["downlink"] >= self.quota_watch[entry["email"]]
        ]
        for email in reached:
            del self.quota_watch[email]
        return bool(reached)

    def wait_for_next_round(self, delay: float, sleep: Callable[[float], Any] = time.sleep) -> None:
        """Sleep DELAY, but with configs on the quota watch, check their counters every QUOTA_CHECK_SECONDS and
        start the next round at once when one reached its cap (its usage then reaches the API seconds, not an
        interval, after it crossed)."""
        deadline = time.monotonic() + delay
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self.quota_watch:
                sleep(left)
                return
            sleep(min(QUOTA_CHECK_SECONDS, left))
            if self.cap_reached():
                return

    def run_forever(self) -> None:
        while True:
            delivered = self.safe_tick()
            if delivered:
                self.wait_for_next_round(self.config.interval_seconds)
            else:
                time.sleep(min(backoff_delay(self.failures), self.config.interval_seconds * 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="KEY=VALUE settings file (else RAYFLEET_AGENT_CONFIG / the environment)")
    parser.add_argument("--once", action="store_true", help="run one round and exit (0 when delivered)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"rayfleet agent: {exc}", file=sys.stderr)
        return 2
    core = core_api.connect(config.core_api_address, config.core)
    access_log = AccessLogReader(config.access_log, config.device_window_seconds) if config.access_log else None
    agent = Agent(config, Journal(config.journal_path), Reporter(config), core=core, access_log=access_log)
    if args.once:
        return 0 if agent.tick() else 1
    if config.metrics_port:
        try:
            start_metrics_server(agent.metrics, config.metrics_port, config.metrics_host)
        except OSError as exc:
            # Heartbeats and accounting matter more than the agent's own metrics: carry on without them.
            log.error("metrics endpoint not started on %s:%d: %s", config.metrics_host, config.metrics_port, exc)
    agent.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
