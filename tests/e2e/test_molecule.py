"""Every molecule scenario on disk, end to end (`molecule test`), in real systemd containers (podman).

Scenarios are found at collection time: the whole-node one (molecule/node, run from the repo root)
and each role's (roles/NAME/molecule/SCENARIO, run from roles/NAME). A scenario that exists always
runs; none is skipped. The environment molecule needs is set here, not by hand: see ENV below and
docs/runbooks/testing.md.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from control_api.runners.ansible import link_collection
from harness.netguard import interface_addresses, podman_network
from harness.podman_node import molecule_lock

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "molecule" / "containers.conf"
# Where every scenario's ansible.env looks for the collection rayfleet.fleet (the repository, linked).
COLLECTIONS_DIR = REPO / ".ansible" / "collections"
VENV_BIN = Path(sys.prefix) / "bin"
TIMEOUT_SECONDS = 1800
TAIL_LINES = 150


def discover_scenarios() -> list[tuple[str, str]]:
    """(directory to run molecule from, relative to the repo; scenario name) for each scenario on disk."""
    found = [(".", path.parent.name) for path in sorted(REPO.glob("molecule/*/molecule.yml"))]
    for path in sorted(REPO.glob("roles/*/molecule/*/molecule.yml")):
        found.append((str(path.parents[2].relative_to(REPO)), path.parent.name))
    return found


SCENARIOS = discover_scenarios()


def molecule_env(ephemeral: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if ephemeral is not None:
        # Molecule keys its state directory on the *basename* of the project directory: a private
        # one keeps this run apart from a hand-run `molecule converge` or another checkout.
        env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(ephemeral)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        # Project-local podman settings (runc, explicit ulimits, cgroupfs); /etc stays untouched.
        CONTAINERS_CONF=str(CONTAINERS_CONF),
        # Plain logs: they end up in a file and in the failure message.
        PY_COLORS="0",
        NO_COLOR="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=molecule_env(), capture_output=True, text=True, check=False)


def platforms(cwd: Path, scenario: str) -> list[dict]:
    return yaml.safe_load((cwd / "molecule" / scenario / "molecule.yml").read_text()).get("platforms", [])


def remove_stale_networks(cwd: Path, scenario: str) -> list[str]:
    """Each scenario's own network (molecule creates it in create and removes it in destroy): remove one
    a killed run left, so that every run starts as on a fresh machine, with no bridge for it."""
    names = sorted({platform["network"] for platform in platforms(cwd, scenario)})
    for name in names:
        podman("network", "rm", "-f", name)
    return names


def remove_stale_containers(cwd: Path, scenario: str) -> list[str]:
    """A killed run leaves its containers behind: remove them by label and by platform name."""
    names = {platform["name"] for platform in platforms(cwd, scenario)}
    labelled = podman("ps", "-a", "--filter", f"label=io.rayfleet.molecule={scenario}", "--format", "{{.Names}}")
    names.update(labelled.stdout.split())
    removed = [name for name in sorted(names) if podman("container", "exists", name).returncode == 0]
    for name in removed:
        podman("rm", "-f", "-t", "5", name)
    return removed


@pytest.fixture(scope="module")
def node_image() -> None:
    """The image the scenarios boot; cached per machine, so a no-op once built (scripts/test.sh builds it too)."""
    result = subprocess.run(
        ["bash", "scripts/node_image.sh"],
        cwd=REPO,
        env=molecule_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"scripts/node_image.sh failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def scenario_lock() -> Iterator[None]:
    """One scenario at a time on the machine (scenarios may share container names); the harness's
    containers (the fleets) take another lock and may run meanwhile (harness/podman_node.py)."""
    with molecule_lock():
        yield


class MoleculeRun:
    """`molecule ARGS` from CWD: output to LOG (complete) and a tail kept in memory for the report."""

    def __init__(self, cwd: Path, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.process = subprocess.Popen(
            [str(VENV_BIN / "molecule"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a timeout kills molecule with its ansible-playbook children
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.log.open("w") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                self.tail.append(line)

    def wait(self, timeout: float) -> int | None:
        try:
            rc = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            rc = None
        self.reader.join(timeout=30)
        return rc

    def report(self) -> str:
        return f"(full log: {self.log})\n" + "".join(self.tail)


def test_the_node_scenario_is_found():
    assert (".", "node") in SCENARIOS


@pytest.mark.slow
@pytest.mark.parametrize(("directory", "scenario"), SCENARIOS, ids=[f"{d}:{s}" for d, s in SCENARIOS])
def test_molecule_scenario(directory, scenario, node_image, scenario_lock, tmp_path):
    assert os.geteuid() == 0, "molecule scenarios run rootful podman: run the tests as root (CI does)"
    cwd = REPO / directory
    removed = remove_stale_containers(cwd, scenario)
    if removed:
        print(f"removed containers left by an earlier run: {removed}")
    # The fresh-machine case, every run: the scenario's network and its bridge do not exist yet, so
    # an address written down instead of read from podman (issue 11) fails here, at once.
    for network in remove_stale_networks(cwd, scenario):
        assert podman_network(network) is None, f"network {network} is still defined"
        bridges = [name for name in interface_addresses() if name.startswith("cni-")]
        print(f"{scenario}: network {network} absent before the run; bridges up now: {bridges or 'none'}")
    log = tmp_path / f"molecule-{scenario}.log"
    print(f"molecule test -s {scenario} in {cwd}, log: {log}")

    # The scenarios use the repository as the collection rayfleet.fleet (from `syntax` on, before any
    # playbook of theirs runs): link it where their ansible.env looks, as scripts/lib.sh does.
    link_collection(COLLECTIONS_DIR)
    env = molecule_env(ephemeral=tmp_path / "ephemeral")
    started = time.monotonic()
    run = MoleculeRun(cwd, ["test", "-s", scenario], log, env)
    rc = run.wait(TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    print(f"molecule test -s {scenario}: rc={rc} in {elapsed:.0f} s")
    if rc is None:
        # Killed mid-way: take the containers down now rather than leave them to the next run.
        MoleculeRun(cwd, ["destroy", "-s", scenario], tmp_path / f"molecule-{scenario}-destroy.log", env).wait(300)
        pytest.fail(f"molecule test -s {scenario} timed out after {TIMEOUT_SECONDS} s {run.report()}")
    assert rc == 0, f"molecule test -s {scenario} failed with rc={rc} {run.report()}"
