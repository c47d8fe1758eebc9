"""`python3 -m agent`: the node agent's loop.

Every interval: read per-user traffic from the core (with reset) into the journal first, restart a
dead core, collect host metrics, and send one heartbeat carrying every pending report; delivered
reports leave the journal. Failures back off with full jitter; nothing is lost meanwhile.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
from typing import Any

from . import core_api
from .backoff import backoff_delay
from .collectors import HostCollector, heal_core, unit_status
from .config import AgentConfig, ConfigError, load_config
from .journal import Journal
from .metrics import AgentMetrics, start_metrics_server
from .reporter import MAX_REPORTS_PER_HEARTBEAT, DeliveryError, Reporter

log = logging.getLogger("rayfleet.agent")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        journal: Journal,
        reporter: Reporter,
        core: Any = None,
        collector: Any = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.reporter = reporter
        self.core = core
        self.collector = collector or HostCollector()
        self.metrics = metrics or AgentMetrics()
        self.period_start = _now()
        self.failures = 0
        self.last_latency_ms: float | None = None

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
        if usage:
            self.journal.append({"period_start": self.period_start, "period_end": period_end, "usage": usage})
        self.period_start = period_end

    def heartbeat(self) -> dict[str, Any]:
        incident = heal_core(self.config.core_service)
        host = self.collector.collect()
        pending = self.journal.pending()[:MAX_REPORTS_PER_HEARTBEAT]
        core_active = unit_status(self.config.core_service) == "active"
        self.metrics.observe_core(core_active, [incident] if incident else [])
        return {
            "cpu": min(host["cpu_percent"], 100.0),
            "mem": min(host["mem_percent"], 100.0),
            "bandwidth_in": int(host["bandwidth_in_bps"]),
            "bandwidth_out": int(host["bandwidth_out_bps"]),
            # The round trip of the previous heartbeat: the control plane's latency as this node sees it.
            "latency_ms": self.last_latency_ms,
            "core_active": core_active,
            "incidents": [incident] if incident else [],
            "reports": pending,
        }

    def tick(self) -> bool:
        """One round; True when the heartbeat was delivered."""
        self.record_traffic()
        body = self.heartbeat()
        started = time.monotonic()
        try:
            answer = self.reporter.send(body)
        except DeliveryError as exc:
            self.failures += 1
            self.metrics.heartbeat_failed()
            self.metrics.set_journal_pending(len(self.journal.pending()))
            log.warning("heartbeat not delivered (%s); %d reports kept", exc, len(body["reports"]))
            return False
        latency = time.monotonic() - started
        self.failures = 0
        self.last_latency_ms = round(latency * 1000, 1)
        self.journal.acknowledge([*answer["accepted"], *answer["duplicates"]])
        self.metrics.heartbeat_succeeded(time.time(), latency)
        self.metrics.set_journal_pending(len(self.journal.pending()))
        return True

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

    def run_forever(self) -> None:
        while True:
            delivered = self.safe_tick()
            delay = self.config.interval_seconds if delivered else backoff_delay(self.failures)
            time.sleep(min(delay, self.config.interval_seconds * 10))


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
    agent = Agent(config, Journal(config.journal_path), Reporter(config), core=core)
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
