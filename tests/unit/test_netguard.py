"""harness.netguard: which addresses a test may connect to. podman and the interface list are faked
here (the real ones: tests/integration/test_netguard.py)."""

from __future__ import annotations

import ipaddress

import pytest

from harness import netguard
from harness.netguard import NonLocalAddressError, PodmanNetwork, check_test_address

TEST_NET = PodmanNetwork(
    name="rayfleet-molecule-node",
    interface="cni-podman3",
    subnets=(ipaddress.ip_network("10.89.3.0/24"),),
    gateways=(ipaddress.ip_address("10.89.3.1"),),
)
DEFAULT_NET = PodmanNetwork(
    name="podman",
    interface="cni-podman0",
    subnets=(ipaddress.ip_network("10.88.0.0/16"),),
    gateways=(ipaddress.ip_address("10.88.0.1"),),
)


def interfaces(**bridges: str) -> dict:
    found = {
        "lo": [ipaddress.ip_interface("127.0.0.1/8"), ipaddress.ip_interface("::1/128")],
        "eth0": [ipaddress.ip_interface("192.0.2.2/24")],
    }
    found.update({name: [ipaddress.ip_interface(address)] for name, address in bridges.items()})
    return found


@pytest.fixture
def machine(monkeypatch):
    """A machine with podman's default network and one test network defined; no bridge up yet."""
    state = {"interfaces": interfaces(), "networks": {net.name: net for net in (TEST_NET, DEFAULT_NET)}}
    monkeypatch.setattr(netguard, "interface_addresses", lambda: state["interfaces"])
    monkeypatch.setattr(netguard, "podman_network", lambda name: state["networks"].get(name))
    monkeypatch.setattr(
        netguard, "created_test_networks", lambda: [n for n in state["networks"] if n.startswith("rayfleet-")]
    )
    return state


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"])
def test_loopback_always_passes(machine, address):
    assert check_test_address(address) == address


def test_a_fresh_machines_default_bridge_address_is_refused(machine):
    """The bug of issue 11: 10.88.0.1 before any container has created cni-podman0."""
    with pytest.raises(NonLocalAddressError, match=r"refusing to connect to 10\.88\.0\.1") as refused:
        check_test_address("10.88.0.1")
    assert "default route" in str(refused.value)


def test_the_default_bridge_is_refused_even_when_it_is_up(machine):
    """podman's default network is nobody's test network: a test must create its own."""
    machine["interfaces"] = interfaces(**{"cni-podman0": "10.88.0.1/16"})
    with pytest.raises(NonLocalAddressError):
        check_test_address("10.88.0.1")
    with pytest.raises(NonLocalAddressError, match="'podman' is"):
        check_test_address("10.89.3.1", networks=["podman"])


def test_a_test_network_passes_only_once_its_bridge_is_up(machine):
    with pytest.raises(NonLocalAddressError, match="no bridge up on this machine yet"):
        check_test_address("10.89.3.1")
    machine["interfaces"] = interfaces(**{"cni-podman3": "10.89.3.1/24"})
    assert check_test_address("10.89.3.1") == "10.89.3.1"  # the gateway: the host itself
    assert check_test_address("10.89.3.7", networks=["rayfleet-molecule-node"]) == "10.89.3.7"  # a container


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.2",  # this machine's own LAN address: local, but no network a test made
        "192.0.2.10",  # a neighbour on that LAN
        "10.89.4.1",  # outside the test network's subnet
        "8.8.8.8",
        "fd00::2",
    ],
)
def test_anything_else_is_refused(machine, address):
    machine["interfaces"] = interfaces(**{"cni-podman3": "10.89.3.1/24"})
    with pytest.raises(NonLocalAddressError, match=f"refusing to connect to {address}"):
        check_test_address(address)


def test_host_names_are_refused_so_the_destination_can_be_checked(machine):
    with pytest.raises(NonLocalAddressError, match="IP addresses"):
        check_test_address("node1.rayfleet.test")


def test_an_unknown_network_is_named_in_the_refusal(machine):
    with pytest.raises(NonLocalAddressError, match="'rayfleet-gone' does not exist"):
        check_test_address("10.89.3.1", networks=["rayfleet-gone"])


def test_gateway_of_reads_the_address_and_checks_it(machine):
    with pytest.raises(NonLocalAddressError, match="no bridge up"):
        netguard.network_gateway("rayfleet-molecule-node")
    machine["interfaces"] = interfaces(**{"cni-podman3": "10.89.3.1/24"})
    assert netguard.network_gateway("rayfleet-molecule-node") == "10.89.3.1"
    with pytest.raises(NonLocalAddressError, match="does not exist"):
        netguard.network_gateway("rayfleet-missing")


def test_the_cli_exits_2_with_the_reason(machine, capsys):
    assert netguard.main(["10.88.0.1"]) == 2
    assert "netguard: refusing to connect to 10.88.0.1" in capsys.readouterr().err
    assert netguard.main(["127.0.0.1"]) == 0
    assert capsys.readouterr().out == "127.0.0.1\n"


def test_a_pinned_subnet_that_overlaps_a_local_interface_is_found(machine):
    assert netguard.interface_overlapping("192.0.2.128/25") == "eth0"
    assert netguard.interface_overlapping("10.89.250.0/24") is None


def test_interface_addresses_reads_this_machine():
    """The real interface list (psutil) always has loopback, with its prefix."""
    found = netguard.interface_addresses()
    assert ipaddress.ip_interface("127.0.0.1/8") in found["lo"]
