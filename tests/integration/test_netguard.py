"""harness.netguard against real podman: a network a test creates passes only once a container has
brought its bridge up, and podman's own default network never does."""

from __future__ import annotations

import pytest

from harness.netguard import NonLocalAddressError, check_test_address, network_gateway, podman_network
from harness.podman_node import IMAGE, NodeNetwork, build_node_image, harness_lock, podman

pytestmark = pytest.mark.slow

NETWORK = "rayfleet-netguard-it"
CONTAINER = "rayfleet-netguard-it"
LABEL = "netguard"


def test_a_test_network_is_refused_until_a_container_joins_it_and_after_it_is_gone():
    build_node_image()
    network = NodeNetwork(NETWORK, LABEL)
    with harness_lock():
        podman("rm", "-f", "-t", "0", CONTAINER)
        network.create()
        try:
            defined = podman_network(NETWORK)
            assert defined is not None and defined.gateways
            gateway = str(defined.gateways[0])
            # Defined, but no bridge yet: exactly a fresh machine's state.
            with pytest.raises(NonLocalAddressError, match="no bridge up on this machine yet"):
                check_test_address(gateway)

            podman(
                "run", "-d", "--name", CONTAINER, "--label", f"io.rayfleet.test={LABEL}", "--network", NETWORK,
                "--runtime=runc", IMAGE, "sleep", "120", check=True,
            )  # fmt: skip
            address = podman(
                "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", CONTAINER, check=True
            ).stdout.strip()
            assert network_gateway(NETWORK) == gateway
            assert check_test_address(address) == address
            assert check_test_address(address, networks=[NETWORK]) == address
            # Only the networks named (when named), and never podman's default one.
            with pytest.raises(NonLocalAddressError):
                check_test_address(address, networks=["podman"])
        finally:
            podman("rm", "-f", "-t", "0", CONTAINER)
            network.remove()
        with pytest.raises(NonLocalAddressError, match="does not exist"):
            check_test_address(gateway, networks=[NETWORK])
