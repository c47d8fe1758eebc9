"""The layer contracts of docs/architecture.md ("Layers"), read from the source with `ast`.

Every import statement counts, wherever it stands (a function-level import is a dependency too);
only `if TYPE_CHECKING:` blocks are left out. The graph is module to module inside control_api,
plus the first component of every third-party import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLASK = {"flask", "apiflask", "flask_jwt_extended", "werkzeug.routing", "werkzeug.middleware"}


@dataclass
class Module:
    name: str
    path: Path
    internal: set[str] = field(default_factory=set)  # control_api modules it imports
    external: set[str] = field(default_factory=set)  # dotted names of everything else it imports


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """Dotted names NODE imports: `from pkg import name` is pkg.name when that is a module, else pkg."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return {f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names}


@cache
def graph(package: str = "control_api") -> dict[str, Module]:
    modules = {
        _module_name(path): Module(_module_name(path), path)
        for path in sorted((REPO / package).rglob("*.py"))
        if "migrations" not in path.parts
    }
    for module in modules.values():
        tree = ast.parse(module.path.read_text())
        skipped = _type_checking_nodes(tree)
        is_package = module.path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in skipped:
                continue
            for name in _imported_names(module.name, is_package, node, set(modules)):
                target = name
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules:
                    if target != module.name:
                        module.internal.add(target)
                else:
                    module.external.add(name)
    return modules


def in_layer(name: str, layer: str) -> bool:
    return name == layer or name.startswith(f"{layer}.")


def violations(layer: str, forbidden: set[str]) -> list[str]:
    """`module imports target` for each module in LAYER importing anything in FORBIDDEN (layers or libraries)."""
    found = []
    for module in graph().values():
        if not in_layer(module.name, layer):
            continue
        for target in sorted(module.internal | module.external):
            if any(in_layer(target, banned) for banned in forbidden):
                found.append(f"{module.name} imports {target}")
    return found


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in modules[name].internal:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in modules:
        if name not in index:
            visit(name)
    return found


WEB = {
    "control_api.api",
    "control_api.console",
    "control_api.security",
    "control_api.extensions",
    "control_api.http_errors",
    "control_api.request_body",
    "control_api.metrics",
    "control_api.openapi",
    "control_api.cli",
}
CONTRACTS = {
    # Services: business rules on a session, a principal and a dispatch callable. No web, no jobs.
    "control_api.services": WEB | {"control_api.jobs", "control_api.runners", *FLASK, "ansible_runner", "rq"},
    # Handlers parse, call one service, serialise: no models, no SQL, no playbooks.
    "control_api.api": {
        "control_api.models",
        "control_api.runners",
        "control_api.jobs.tasks",
        "control_api.jobs.sync",
        "control_api.jobs.provisioning",
        "sqlalchemy",
        "ansible_runner",
    },
    # The web console is a second door onto the same services: no models, no SQL, no playbooks either.
    "control_api.console": {
        "control_api.models",
        "control_api.runners",
        "control_api.api",
        "control_api.jobs.tasks",
        "control_api.jobs.sync",
        "control_api.jobs.provisioning",
        "sqlalchemy",
        "ansible_runner",
    },
    # Models know only SQLAlchemy and each other.
    "control_api.models": {"control_api.services", "control_api.jobs", "control_api.api", *WEB, *FLASK},
    # The runner knows nothing of the app: it runs a playbook with what it is given.
    "control_api.runners": {"control_api.models", "control_api.services", "control_api.jobs", *WEB, *FLASK},
    # Jobs may use services and models; never the HTTP layer.
    "control_api.jobs": WEB,
}
# Plain modules every layer may use: they must stay Flask-free themselves.
FLASK_FREE = [
    "control_api.actors",
    "control_api.errors",
    "control_api.config",
    "control_api.database",
    "control_api.kvstore",
    "control_api.links",
    "control_api.reality",
    "control_api.subscription_documents",
    "control_api.log_redaction",
    "control_api.jobs.context",
    "control_api.jobs.queue",
    "control_api.jobs.sync",
    "control_api.jobs.tasks",
    "control_api.jobs.sweep",
    "control_api.jobs.webhooks",
]


@pytest.mark.parametrize("layer", sorted(CONTRACTS))
def test_layer_imports_only_what_it_may(layer):
    assert graph(), "no control_api modules found"
    assert not violations(layer, CONTRACTS[layer]), "\n".join(violations(layer, CONTRACTS[layer]))


@pytest.mark.parametrize("module", FLASK_FREE)
def test_shared_modules_are_flask_free(module):
    assert module in graph(), f"{module} is gone: update the contract"
    assert not violations(module, FLASK | WEB), "\n".join(violations(module, FLASK | WEB))


def test_only_jobs_import_the_playbook_runner():
    importers = {m.name for m in graph().values() if "control_api.runners" in m.internal}
    importers |= {m.name for m in graph().values() if any(in_layer(e, "ansible_runner") for e in m.external)}
    assert importers <= {"control_api.jobs.sync", "control_api.jobs.tasks", "control_api.runners.ansible"} | {
        "control_api.runners"
    }, sorted(importers)


def test_the_control_api_has_no_import_cycles():
    assert cycles() == []


@pytest.mark.parametrize("package", ["bot", "agent"])
def test_the_bot_and_the_agent_talk_http_only(package):
    """No import of control_api at all: they are clients of the API, with their own credentials."""
    offenders = [
        f"{module.name} imports {name}"
        for module in graph(package).values()
        for name in sorted(module.external)
        if in_layer(name, "control_api")
    ]
    assert not offenders, offenders


def test_the_checker_sees_a_known_edge():
    """A guard against a checker that finds nothing: api.payments uses services.payments."""
    assert "control_api.services.payments" in graph()["control_api.api.payments"].internal
    assert "control_api.services.revisions" in graph()["control_api.services.configs"].internal
