"""No test, scenario, bench or doc writes down a podman bridge address it hopes is local (issue 11).

Podman's default network (10.88.0.0/16) is nobody's test network: its bridge exists only after some
container joined it, so on a fresh machine 10.88.0.1 is routed off the machine. Tests create their
own networks and read addresses from podman. The one pinned subnet is the fleet harness's own
(10.89.250.0/24), which the harness creates before anything connects to it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRIDGE = re.compile(r"\b10\.88\.\d{1,3}\.\d{1,3}")
OTHER_PODMAN = re.compile(r"\b10\.89\.(?!250\.)\d{1,3}\.\d{1,3}")
# Where 10.88.x.x is the example of what is refused.
EXPLAINS_THE_RULE = {"tests/unit/test_netguard.py", "tests/unit/test_no_fixed_test_addresses.py", "RECIPES.md"}


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    paths = [REPO / name for name in listed.split("\0") if name]
    return [path for path in paths if path.is_file() and path.suffix not in {".png", ".gz", ".zip"}]


def test_no_file_hard_codes_a_podman_bridge_address():
    found = []
    for path in tracked_text_files():
        relative = str(path.relative_to(REPO))
        if relative in EXPLAINS_THE_RULE:
            continue
        text = path.read_text(errors="replace")
        for pattern in (DEFAULT_BRIDGE, OTHER_PODMAN):
            found += [f"{relative}: {match.group(0)}" for match in pattern.finditer(text)]
    assert not found, "derive these from the network the test creates (harness.netguard):\n" + "\n".join(found)


def test_every_molecule_platform_is_on_a_network_of_its_own():
    networks = {}
    for path in [*REPO.glob("molecule/*/molecule.yml"), *REPO.glob("roles/*/molecule/*/molecule.yml")]:
        for platform in yaml.safe_load(path.read_text()).get("platforms", []):
            network = platform.get("network", "")
            assert network.startswith("rayfleet-molecule-"), f"{path}: {platform['name']} needs its own network"
            networks.setdefault(network, []).append(str(path.relative_to(REPO)))
    shared = {name: paths for name, paths in networks.items() if len(set(paths)) > 1}
    assert networks and not shared, f"scenarios share a network: {shared}"
