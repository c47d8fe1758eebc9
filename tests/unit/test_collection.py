"""The repository is the Ansible collection rayfleet.fleet: its metadata, how it is linked where Ansible
looks for it, what a build of it holds, and the collections it pins.

link_collection (control_api/runners/ansible.py) is the one place that makes
<dir>/ansible_collections/rayfleet/fleet point at the repository: the runner per run, scripts/lib.sh
for hand runs, ansible-lint and molecule (.ansible/collections), the molecule scenarios' prepare and
the tests all call it.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion
from ansible.release import __version__ as ansible_core_version

from control_api.runners.ansible import COLLECTION_NAME, COLLECTION_NAMESPACE, link_collection

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
SITE_COLLECTIONS = Path(yaml.__file__).resolve().parents[1] / "ansible_collections"
FQCN_PREFIX = re.compile(r"\b([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")


def test_galaxy_names_the_collection_the_runner_links():
    assert (GALAXY["namespace"], GALAXY["name"]) == (COLLECTION_NAMESPACE, COLLECTION_NAME) == ("rayfleet", "fleet")
    assert re.fullmatch(r"\d+\.\d+\.\d+", GALAXY["version"])
    assert (REPO / GALAXY["readme"]).is_file()


def test_requires_ansible_admits_the_ansible_core_we_run():
    requires = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert requires.startswith(">=")
    assert LooseVersion(ansible_core_version) >= LooseVersion(requires.removeprefix(">="))


def test_a_link_outside_the_repository_is_absolute_and_idempotent(tmp_path: Path):
    link = link_collection(tmp_path / "collections")
    assert link == tmp_path / "collections" / "ansible_collections" / "rayfleet" / "fleet"
    assert os.readlink(link) == str(REPO)
    assert (link / "galaxy.yml").read_text() == (REPO / "galaxy.yml").read_text()
    assert link_collection(tmp_path / "collections") == link
    assert sorted(path.name for path in link.parent.iterdir()) == ["fleet"]  # no staged leftovers


def test_a_link_inside_the_repository_is_relative(tmp_path: Path):
    inside = REPO / ".ansible" / f"test-link-{os.getpid()}"
    try:
        link = link_collection(inside)
        assert not os.readlink(link).startswith("/")
        assert link.resolve() == REPO
    finally:
        link.unlink(missing_ok=True)
        for directory in (link.parent, link.parent.parent, inside):
            directory.rmdir()


def test_a_stale_link_or_an_installed_copy_is_replaced_anything_else_refused(tmp_path: Path):
    namespace_dir = tmp_path / "ansible_collections" / "rayfleet"
    namespace_dir.mkdir(parents=True)
    (namespace_dir / "fleet").symlink_to(tmp_path)  # a checkout that moved
    assert link_collection(tmp_path).resolve() == REPO

    (namespace_dir / "fleet").unlink()
    copy = namespace_dir / "fleet"
    copy.mkdir()  # what ansible-lint without --offline installs there
    manifest = {"collection_info": {"namespace": "rayfleet", "name": "fleet", "version": "1.0.0"}}
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    assert link_collection(tmp_path).is_symlink()

    (namespace_dir / "fleet").unlink()
    (namespace_dir / "fleet").mkdir()
    (namespace_dir / "fleet" / "notes.txt").write_text("someone's work")
    with pytest.raises(FileExistsError):
        link_collection(tmp_path)
    assert (namespace_dir / "fleet" / "notes.txt").is_file()


def test_ansible_cfg_looks_in_the_linked_directory_first():
    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    paths = config["defaults"]["collections_path"].split(":")
    assert paths[0] == ".ansible/collections"  # relative to ansible.cfg, i.e. the repository
    assert ".ansible/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The members of `ansible-galaxy collection build` of the repository."""
    out = tmp_path_factory.mktemp("build")
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    result = subprocess.run(
        [str(galaxy), "collection", "build", "--output-path", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (tarball,) = out.glob("rayfleet-fleet-*.tar.gz")
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def test_the_collection_builds_with_its_content_only(built: list[str]):
    tops = {name.split("/")[0] for name in built}
    assert tops == {
        "MANIFEST.json",
        "FILES.json",
        "README.md",
        "CHANGELOG.md",
        "requirements.yml",
        "meta",
        "plugins",
        "roles",
        "playbooks",
        "agent",  # the node_agent role installs it on every node
    }
    for needed in (
        "plugins/modules/core_users.py",
        "plugins/filter/core_config.py",
        "plugins/filter/core_config_check.py",
        "plugins/module_utils/core_api.py",
        "plugins/module_utils/core_clients.py",
        "plugins/module_utils/inbound_profiles.py",
        "roles/node_agent/tasks/main.yml",
        "agent/__main__.py",
    ):
        assert needed in built, needed
    assert not [name for name in built if "__pycache__" in name or "/molecule" in name or name.endswith(".pyc")]


def _fqcn_collections() -> set[str]:
    """Every collection the roles, playbooks, scenarios, tests and tools name by FQCN (ansible.builtin and
    ours aside); containers.podman is also molecule's podman driver and the test nodes' connection."""
    files = [
        *REPO.glob("roles/**/*.yml"),
        *REPO.glob("playbooks/*.yml"),
        *REPO.glob("molecule/**/*.yml"),
        *REPO.glob("tests/**/*.py"),
        *REPO.glob("harness/*.py"),
        *REPO.glob("bench/*.py"),
    ]
    files.remove(Path(__file__).resolve())  # this file names them to check them
    found = {match.group(1) for path in files for match in FQCN_PREFIX.finditer(path.read_text())}
    known = {"ansible.builtin", "rayfleet.fleet"}
    return {name for name in found if (SITE_COLLECTIONS / name.replace(".", "/")).is_dir()} - known


def test_requirements_pin_every_collection_used_at_the_bundled_version():
    pinned = {
        item["name"]: item["version"] for item in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    }
    used = _fqcn_collections()
    assert {"ansible.posix", "ansible.utils", "community.general", "containers.podman"} <= used
    assert set(pinned) == used, f"used: {sorted(used)}, pinned: {sorted(pinned)}"
    for name, version in pinned.items():
        manifest = json.loads((SITE_COLLECTIONS / name.replace(".", "/") / "MANIFEST.json").read_text())
        assert manifest["collection_info"]["version"] == version, name
