"""agent.collectors: bandwidth from two counter samples (resets too) and live psutil readings."""

from __future__ import annotations

import pytest

from agent.collectors import HostCollector, NetSample, bandwidth, check_unit_name, heal_core, unit_status


def test_bandwidth_is_the_counter_delta_over_the_elapsed_time():
    before = NetSample(at=10.0, received={"eth0": 1000, "eth1": 0}, sent={"eth0": 500})
    after = NetSample(at=12.0, received={"eth0": 5000, "eth1": 2000}, sent={"eth0": 1500})
    assert bandwidth(before, after) == {"in": 3000.0, "out": 500.0}


def test_a_counter_reset_counts_from_zero_and_a_new_interface_from_its_first_sample():
    before = NetSample(at=0.0, received={"eth0": 10_000_000}, sent={"eth0": 10_000})
    after = NetSample(at=1.0, received={"eth0": 300, "wg0": 999_999}, sent={"eth0": 20_000})
    assert bandwidth(before, after) == {"in": 300.0, "out": 10_000.0}  # never negative


def test_no_elapsed_time_means_no_rate():
    sample = NetSample(at=5.0, received={"eth0": 1}, sent={"eth0": 1})
    assert bandwidth(sample, sample) == {"in": 0.0, "out": 0.0}


def test_host_collector_reads_real_numbers():
    collector = HostCollector()
    reading = collector.collect()
    assert set(reading) == {"cpu_percent", "mem_percent", "bandwidth_in_bps", "bandwidth_out_bps"}
    assert 0 <= reading["cpu_percent"] <= 100
    assert 0 < reading["mem_percent"] <= 100
    assert reading["bandwidth_in_bps"] >= 0
    assert reading["bandwidth_out_bps"] >= 0


@pytest.mark.parametrize("name", ["-rf", "a b", "x;reboot", "", "../etc"])
def test_unit_names_that_could_be_options_or_paths_are_refused(name: str):
    with pytest.raises(ValueError, match="not a systemd unit name"):
        check_unit_name(name)
    assert check_unit_name("rayfleet-core.service") == "rayfleet-core.service"


def test_unit_status_and_heal_core_against_this_machines_systemctl():
    """Real systemctl: a unit that does not exist is "inactive" under systemd (and its restart fails),
    or "unknown" where systemd is not PID 1 (then nothing is restarted blindly)."""
    service = "rayfleet-agent-test-no-such-unit"
    status = unit_status(service)
    assert status in ("inactive", "unknown")
    incident = heal_core(service)
    if status == "unknown":
        assert incident is None
    else:
        assert incident is not None
        assert incident["kind"] == "core_restart_failed"
        assert service in incident["detail"]
