"""Every role's handlers and registers follow one convention (DESIGN.md §7).

- A handler has a capitalised name saying what it does and `listen`s on a topic named for the event,
  `<role>_<what>_changed`; tasks `notify` topics, never a handler's name, and every topic is notified
  by some task (no dead handler).
- Every `register` inside a role is an internal: `__<role>_...`.

The roles are found by listing roles/, so a new role is checked the moment it exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks").is_dir())
BLOCK_KEYS = ("block", "rescue", "always")


def _tasks(items: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """Every task in ITEMS, blocks flattened."""
    for item in items or []:
        yield item
        for key in BLOCK_KEYS:
            yield from _tasks(item.get(key))


def role_tasks(role: str) -> list[tuple[str, dict[str, Any]]]:
    """(file name, task) for every task in the role's tasks/ and handlers/."""
    found = []
    for directory in ("tasks", "handlers"):
        for path in sorted((ROLES_DIR / role / directory).glob("*.yml")):
            found += [(f"{directory}/{path.name}", task) for task in _tasks(yaml.safe_load(path.read_text()))]
    return found


def handlers(role: str) -> list[dict[str, Any]]:
    path = ROLES_DIR / role / "handlers" / "main.yml"
    return yaml.safe_load(path.read_text()) or [] if path.is_file() else []


def notified(role: str) -> set[str]:
    topics: set[str] = set()
    for _where, task in role_tasks(role):
        value = task.get("notify")
        topics.update([value] if isinstance(value, str) else value or [])
    return topics


def test_there_are_roles_to_check():
    assert {"base", "xray", "node_agent"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_handlers_listen_on_role_prefixed_event_topics(role: str):
    topic = re.compile(rf"^{role}_[a-z0-9_]+_changed$")
    for handler in handlers(role):
        assert handler.get("name", "")[:1].isupper(), (
            f"{role}: handler {handler.get('name')!r} needs a capitalised name"
        )
        assert topic.match(str(handler.get("listen", ""))), (
            f"{role}: handler {handler['name']!r} must listen on {role}_<what>_changed, not {handler.get('listen')!r}"
        )


@pytest.mark.parametrize("role", ROLES)
def test_tasks_notify_topics_and_every_topic_is_notified(role: str):
    topics = {handler["listen"] for handler in handlers(role)}
    names = {handler["name"] for handler in handlers(role)}
    used = notified(role)
    assert not used & names, f"{role}: notify the listen topic, not the handler's name: {sorted(used & names)}"
    assert used <= topics, f"{role}: notified but no handler listens: {sorted(used - topics)}"
    assert topics <= used, f"{role}: no task notifies: {sorted(topics - used)}"


@pytest.mark.parametrize("role", ROLES)
def test_registers_are_internal(role: str):
    wrong = [
        f"{where}: {task.get('name')!r} registers {task['register']!r}"
        for where, task in role_tasks(role)
        if "register" in task and not str(task["register"]).startswith(f"__{role}_")
    ]
    assert not wrong, f"{role}: registers must be named __{role}_...:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_its_default_scenario_on_a_network_of_its_own(role: str):
    """roles/<role>/molecule/default (DESIGN.md §6), run by tests/e2e/test_molecule.py."""
    scenario = ROLES_DIR / role / "molecule" / "default" / "molecule.yml"
    assert scenario.is_file(), f"{role}: molecule/default is missing"
    config = yaml.safe_load(scenario.read_text())
    (platform,) = config["platforms"]
    assert platform["network"] == f"rayfleet-molecule-{role.replace('_', '-')}", platform["network"]
    assert f"--label=io.rayfleet.molecule={role}-default" in platform["extra_opts"]
    assert config["prerun"] is False and config["dependency"]["enabled"] is False
    assert ".ansible/collections" in config["ansible"]["env"]["ANSIBLE_COLLECTIONS_PATH"]


SCENARIO_FILES = sorted(ROLES_DIR.parent.glob("molecule/*/molecule.yml")) + sorted(
    ROLES_DIR.glob("*/molecule/*/molecule.yml")
)


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda path: str(path.parent.relative_to(ROLES_DIR.parent)))
def test_every_scenario_reaches_its_containers_pipelined(scenario: Path):
    """One `podman exec` per module (plugins/connection/podman_pipelined.py), not four."""
    config = yaml.safe_load(scenario.read_text())
    assert config["provisioner"]["connection_options"] == {"ansible_connection": "rayfleet.fleet.podman_pipelined"}
