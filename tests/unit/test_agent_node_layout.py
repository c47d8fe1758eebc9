"""The agent as the node_agent role will install it: the agent package with the xray role's
rayfleet_core_api.py copied next to it, nothing else from the repo, and only Debian-packaged
third-party modules (python3-psutil, python3-requests, python3-grpcio) importable in principle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"psutil", "grpc", "requests"}


def test_the_installed_layout_loads_the_copied_client_and_needs_no_pip_packages(tmp_path: Path):
    prefix = tmp_path / "opt" / "rayfleet-agent"
    shutil.copytree(REPO / "agent", prefix / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "roles" / "xray" / "module_utils" / "rayfleet_core_api.py", prefix)
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(prefix)!r})
        import grpc, psutil  # the Debian packages' own dependencies are not ours to judge
        before = set(sys.modules) - {{"grpc", "psutil"}}
        import agent.backoff, agent.collectors, agent.config, agent.core_api, agent.journal
        client = agent.core_api.client_module()
        client.CoreAPI("127.0.0.1:1", "xray").close()  # imports grpc, as a real read would
        new = {{name.split(".")[0] for name in set(sys.modules) - before}}
        third_party = sorted(new - set(sys.stdlib_module_names) - {{"agent", "rayfleet_core_api"}})
        print(json.dumps({{"client": client.__file__, "third_party": third_party}}))
        """
    )
    # -I: no cwd, no PYTHONPATH, no user site; the repo is not importable from the child.
    completed = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["client"] == str(prefix / "rayfleet_core_api.py")
    assert set(result["third_party"]) <= ALLOWED_THIRD_PARTY, result["third_party"]
