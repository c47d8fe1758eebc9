"""The agent as the node_agent role installs it: the agent package and, beside it, exactly the three
files of the collection that make its gRPC client importable as plugins.module_utils.core_api (the
role's own list, roles/node_agent/vars/main.yml), nothing else from the repo, and only Debian-packaged
third-party modules (python3-psutil, python3-requests, python3-grpcio) importable in principle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"psutil", "grpc", "requests"}
ROLE_VARS = REPO / "roles" / "node_agent" / "vars" / "main.yml"


def client_files() -> list[str]:
    """What the node_agent role copies beside the agent package, relative to the collection's root."""
    return yaml.safe_load(ROLE_VARS.read_text())["__node_agent_client_files"]


def test_the_role_installs_exactly_the_client_and_its_packages():
    assert client_files() == [
        "plugins/__init__.py",
        "plugins/module_utils/__init__.py",
        "plugins/module_utils/core_api.py",
    ]
    for name in client_files():
        assert (REPO / name).is_file(), name
    assert (REPO / "plugins" / "__init__.py").read_text() == ""  # no code runs on import
    assert (REPO / "plugins" / "module_utils" / "__init__.py").read_text() == ""


def test_the_installed_layout_imports_the_client_and_needs_no_pip_packages(tmp_path: Path):
    prefix = tmp_path / "opt" / "rayfleet-agent"
    shutil.copytree(REPO / "agent", prefix / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    for name in client_files():
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, prefix / name)
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(prefix)!r})
        import grpc, psutil  # the Debian packages' own dependencies are not ours to judge
        before = set(sys.modules) - {{"grpc", "psutil"}}
        import agent.access_log, agent.backoff, agent.collectors, agent.config, agent.core_api, agent.journal
        client = agent.core_api.client
        agent.core_api.connect("127.0.0.1:1", "xray").close()  # imports grpc, as a real read would
        new = {{name.split(".")[0] for name in set(sys.modules) - before}}
        third_party = sorted(new - set(sys.stdlib_module_names) - {{"agent", "plugins"}})
        print(json.dumps({{"client": client.__file__, "third_party": third_party}}))
        """
    )
    # -I: no cwd, no PYTHONPATH, no user site; the repo is not importable from the child.
    completed = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["client"] == str(prefix / "plugins" / "module_utils" / "core_api.py")
    assert set(result["third_party"]) <= ALLOWED_THIRD_PARTY, result["third_party"]
