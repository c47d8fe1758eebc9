"""Wall time of `terraform apply` and `terraform destroy` of terraform/envs/example, by fleet size,
against moto on loopback (no cloud account needed).

    .venv/bin/python bench/terraform_apply.py [--nodes 3 30] [--parallelism 30]

Each size gets a fresh emulator state and a scratch copy of terraform/ (split: 1/3 local, 2/3
abroad). Timed through the operators' wrapper (terraform_ops.runner), provider start-up included;
init is timed apart. The emulator answers at once, so the figures are Terraform's and the AWS
provider's own overhead (waiters, polling), a floor for a real cloud.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.aws_emulator import PLUGIN_MIRROR, aws_env, moto_server, reset_moto, scratch_env  # noqa: E402
from terraform_ops.runner import Terraform  # noqa: E402


def measure(url: str, nodes: int, parallelism: int) -> dict[str, float]:
    reset_moto(url)
    local = max(1, nodes // 3)
    with tempfile.TemporaryDirectory(prefix="rayfleet-bench-tf-") as workdir:
        root = scratch_env(Path(workdir), local_nodes=local, abroad_nodes=nodes - local)
        terraform = Terraform(root, plugin_mirror=PLUGIN_MIRROR, env=aws_env(url), progress=None)
        figures = {}
        for step, action in (
            ("init", terraform.init),
            ("apply", lambda: terraform.apply(parallelism=parallelism)),
            ("replan", lambda: terraform.has_drift() and sys.exit("drift after apply")),
            ("destroy", lambda: terraform.destroy(parallelism=parallelism)),
        ):
            started = time.monotonic()
            action()
            figures[step] = time.monotonic() - started
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 30])
    parser.add_argument("--parallelism", type=int, default=30)
    args = parser.parse_args()
    header = f"{'nodes':>5} {'init s':>7} {'apply s':>8} {'re-plan s':>9} {'destroy s':>9}"
    print(f"{header}   (-parallelism={args.parallelism})")
    with moto_server() as url:
        for nodes in args.nodes:
            f = measure(url, nodes, args.parallelism)
            row = f"{nodes:>5} {f['init']:>7.1f} {f['apply']:>8.1f} {f['replan']:>9.1f} {f['destroy']:>9.1f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
