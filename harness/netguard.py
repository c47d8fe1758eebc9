"""Test traffic stays on this machine: the check every fixture, bench and scenario makes before it
connects to a test host.

An address passes when it is loopback, or when it lies inside a podman network that a test created
*and* whose bridge is up on this machine right now (the bridge appears only once a container has
joined the network). Test networks are the ones named `rayfleet-*` (TEST_NETWORK_PREFIX), unless the
caller names its own. Anything else, including podman's default bridge or an address that is
"usually" local, is refused with a message saying why: a connect to an address that is not on this
machine leaves through the default route.

    check_test_address(address)                                        # returns the address or raises
    check_test_address(address, networks=["rayfleet-molecule-node"])   # only inside that network
    python -m harness.netguard ADDRESS [--network NAME]                # exit 0, or 2 with the reason
    python -m harness.netguard --gateway-of NAME                       # the host's address on NAME
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

CONTAINERS_CONF = Path(__file__).resolve().parents[1] / "molecule" / "containers.conf"
# Every podman network a test or bench creates is named so; nothing else is a test network.
TEST_NETWORK_PREFIX = "rayfleet-"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NonLocalAddressError(RuntimeError):
    """A test was about to connect somewhere that is not loopback or a network it created."""


@dataclass(frozen=True)
class PodmanNetwork:
    name: str
    interface: str
    subnets: tuple[IPNetwork, ...]
    gateways: tuple[IPAddress, ...]


def _podman(*args: str) -> str | None:
    """podman's stdout, or None when podman is missing or fails."""
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
    try:
        result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        return None
    return result.stdout if result.returncode == 0 else None


def created_test_networks() -> list[str]:
    """The podman networks tests created (by their name prefix)."""
    listed = _podman("network", "ls", "--format", "{{.Name}}") or ""
    return [name for name in listed.split() if name.startswith(TEST_NETWORK_PREFIX)]


def podman_network(name: str) -> PodmanNetwork | None:
    """The network as podman defines it, or None when podman does not know it."""
    inspected = _podman("network", "inspect", name)
    if inspected is None:
        return None
    (spec,) = json.loads(inspected)
    subnets = spec.get("subnets") or []
    return PodmanNetwork(
        name=name,
        interface=spec.get("network_interface", ""),
        subnets=tuple(ipaddress.ip_network(item["subnet"]) for item in subnets),
        gateways=tuple(ipaddress.ip_address(item["gateway"]) for item in subnets if item.get("gateway")),
    )


def interface_addresses() -> dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """Every address on this machine's interfaces, with its prefix, keyed by interface name."""
    found: dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = {}
    for name, addresses in psutil.net_if_addrs().items():
        for item in addresses:
            if item.family not in (socket.AF_INET, socket.AF_INET6) or not item.netmask:
                continue
            address = item.address.split("%", 1)[0]  # fe80::1%eth0
            prefix = bin(int(ipaddress.ip_address(item.netmask.split("/", 1)[0]))).count("1")
            found.setdefault(name, []).append(ipaddress.ip_interface(f"{address}/{prefix}"))
    return found


def _describe_interfaces(addresses: dict[str, list]) -> str:
    return "; ".join(f"{name} {', '.join(map(str, items))}" for name, items in sorted(addresses.items())) or "none"


def check_test_address(address: str, networks: Iterable[str] | None = None) -> str:
    """Return ADDRESS when a test may connect to it, else raise NonLocalAddressError saying why.

    NETWORKS names the podman networks the test created (default: every `rayfleet-*` network); one
    of them must have its bridge up (a container of the test has joined it) and hold ADDRESS.
    """
    text = address.strip().strip("[]")
    if text == "localhost":
        return address
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise NonLocalAddressError(
            f"refusing to connect to {address!r}: test hosts are given as IP addresses (or 'localhost'), "
            "so that where the traffic goes can be checked"
        ) from None
    if ip.is_loopback:
        return address

    local = interface_addresses()
    reasons = []
    for name in created_test_networks() if networks is None else networks:
        network = podman_network(name)
        if network is None:
            reasons.append(f"podman network {name!r} does not exist")
            continue
        if not any(ip in subnet for subnet in network.subnets):
            reasons.append(f"podman network {name!r} is {', '.join(map(str, network.subnets))}")
            continue
        bridge = local.get(network.interface, [])
        if not any(item.ip in subnet for item in bridge for subnet in network.subnets):
            reasons.append(
                f"podman network {name!r} has no bridge up on this machine yet ({network.interface or '?'}: "
                "it appears once a container has joined the network)"
            )
            continue
        return address
    where = f" ({'; '.join(reasons)})" if reasons else f" (no podman network named {TEST_NETWORK_PREFIX}* exists)"
    raise NonLocalAddressError(
        f"refusing to connect to {address}: it is neither loopback nor inside a network a test created{where}. "
        "Tests connect only to loopback and to networks they created: an address that is not on this machine "
        f"is reached through the default route. Local interfaces: {_describe_interfaces(local)}"
    )


def interface_overlapping(subnet: str) -> str | None:
    """The local interface whose addresses overlap SUBNET (a pinned test network would shadow it), or None."""
    wanted = ipaddress.ip_network(subnet)
    for name, addresses in interface_addresses().items():
        if any(item.network.overlaps(wanted) for item in addresses if item.version == wanted.version):
            return name
    return None


def network_gateway(name: str) -> str:
    """The host's address on a podman network the test created, once its bridge is up (checked)."""
    network = podman_network(name)
    if network is None or not network.gateways:
        raise NonLocalAddressError(f"podman network {name!r} does not exist or has no gateway")
    return check_test_address(str(network.gateways[0]), [name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.netguard", description="Refuse a test address that is not on this machine."
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("address", nargs="?", help="the address a test is about to connect to")
    what.add_argument("--gateway-of", metavar="NETWORK", help="print the host's (checked) address on NETWORK")
    parser.add_argument(
        "--network",
        action="append",
        help=f"a podman network the test created (repeatable; default: {TEST_NETWORK_PREFIX}*)",
    )
    args = parser.parse_args(argv)
    try:
        print(network_gateway(args.gateway_of) if args.gateway_of else check_test_address(args.address, args.network))
    except NonLocalAddressError as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
